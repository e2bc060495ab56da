import Identity

/// A 32-byte Ed25519 public key: how QoS messages name nodes. Ordered by its bytes.
public struct NodeKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(_ bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    public init(_ key: Ed25519KeyPair) { bytes = key.publicKeyBytes }

    public init?(peerID: PeerID) {
        guard let key = peerID.inlinedPublicKey, key.type == .ed25519, key.data.count == 32 else { return nil }
        bytes = key.data
    }

    public var peerID: PeerID { PeerID(publicKey: LibP2PPublicKey(type: .ed25519, data: bytes)) }
    public var description: String { peerID.description }

    public static func < (a: NodeKey, b: NodeKey) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}

/// Tickets and sortition (Specs/qos.md "Assignment").
///
/// A node's **ticket** for epoch e is its ECVRF output β over `"drtc-qos-ticket/1" ‖ u64be(e)`:
/// unique per key and epoch, unpredictable to everyone else, checkable by anyone from the
/// 80-byte proof. The node reveals it in its bundle of epoch e − 1. Its first 8 bytes decide
/// whether the node is **active** in e; challenger c tests prover P in e when both are active
/// and `pairDraw(β_P, c)` falls below τ_e.
public enum Ticket {
    static let domain = Array("drtc-qos-ticket/1".utf8)

    public static func alpha(epoch: UInt64) -> [UInt8] {
        var out = domain
        withUnsafeBytes(of: epoch.bigEndian) { out += $0 }
        return out
    }

    /// The proof of `key`'s ticket for `epoch`.
    public static func prove(epoch: UInt64, key: Ed25519KeyPair) -> [UInt8] {
        ECVRF.prove(alpha(epoch: epoch), key: key)
    }

    /// β when `proof` is `node`'s ticket for `epoch`, else nil.
    public static func verify(proof: [UInt8], node: NodeKey, epoch: UInt64) -> [UInt8]? {
        ECVRF.verify(proof: proof, publicKey: node.bytes, alpha: alpha(epoch: epoch))
    }
}

public enum Sortition {
    static let pairDomain = Array("drtc-qos-assign/1".utf8)

    /// The activity draw: β's first 8 bytes, big endian (β is uniform).
    public static func activityDraw(_ beta: [UInt8]) -> UInt64 { readBE(beta) }

    /// The pair draw of challenger `c` for the prover whose ticket is `proverBeta`:
    /// SHA-256("drtc-qos-assign/1" ‖ β_P ‖ c)[0..8], big endian. Neither side can bias it: β_P
    /// is the prover's unique VRF output, unknown before it is revealed, and c's key must be
    /// older than that (a challenger needs a measured history, "Eligibility").
    public static func pairDraw(proverBeta: [UInt8], challenger: NodeKey) -> UInt64 {
        readBE(SHA256.hash(pairDomain + proverBeta + challenger.bytes))
    }

    /// `p · 2^64`, saturating: a draw below it is selected.
    public static func threshold(_ probability: Double) -> UInt64 {
        if probability >= 1 { return .max }
        let scaled = probability * 18_446_744_073_709_551_616.0
        if scaled <= 0 { return 0 }
        return scaled >= 18_446_744_073_709_549_568.0 ? .max : UInt64(scaled)
    }

    public static func selected(_ draw: UInt64, probability: Double) -> Bool {
        probability >= 1 || draw < threshold(probability)
    }

    static func readBE(_ b: [UInt8]) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
        return v
    }

    /// The network-size estimate used for an epoch, rounded up to a quarter octave
    /// (…, 16, 20, 23, 27, 32, …) so that replicas whose counts differ slightly still agree.
    public static func bucketedSize(_ n: Int) -> Int {
        guard n > 1 else { return 1 }
        var k = 0
        while sizeBucket(k) < n { k += 1 }
        return sizeBucket(k)
    }

    static func sizeBucket(_ k: Int) -> Int {
        // 2^(k/4), rounded up: exact integers for whole octaves, table for the quarters.
        let quarters: [Double] = [1, 1.189207115002721, 1.4142135623730951, 1.681792830507429]
        let base = Double(1 << (k / 4))
        return Int((base * quarters[k % 4]).rounded(.up))
    }
}

/// What every replica derives for one epoch before counting its reports.
public struct EpochPlan: Hashable, Sendable {
    public var epoch: UInt64
    /// Distinct nodes with a ticket in the lookback (the network-size count), and its bucket.
    public var observedNodes: Int
    public var networkSize: Int
    /// Nodes active: min(networkSize, activeTarget) expected, until `setActive` gives the
    /// count of active tickets (rounded up to a quarter octave like the network size).
    public var expectedActive: Int
    /// λ: expected challengers per prover.
    public var expectedChallengers: Double
    /// τ: probability that a given active node challenges a given active prover.
    public var tau: Double
    /// Base activity probability (doubled for nodes not measured recently).
    public var activeProbability: Double
    /// Epochs without a measurement after which a node's activity is doubled.
    public var biasGapEpochs: UInt64

    public init(epoch: UInt64, observedNodes: Int, parameters p: QoSParameters) {
        self.epoch = epoch
        self.observedNodes = observedNodes
        networkSize = Sortition.bucketedSize(max(1, observedNodes))
        expectedActive = min(networkSize, p.activeTarget)
        expectedChallengers = p.expectedChallengers(active: expectedActive)
        tau = min(1, expectedChallengers / Double(max(1, expectedActive - 1)))
        activeProbability = min(1, Double(p.activeTarget) / Double(networkSize))
        let ratio = (networkSize + p.activeTarget - 1) / p.activeTarget
        biasGapEpochs = UInt64(2 * max(1, ratio))
    }

    /// Fixes τ to the epoch's active nodes, once activity is decided: stale nodes' doubled
    /// chance can make more nodes active than `activeTarget`, and each prover still gets λ
    /// challengers in expectation.
    public mutating func setActive(count: Int, parameters p: QoSParameters) {
        expectedActive = Sortition.bucketedSize(max(1, count))
        expectedChallengers = p.expectedChallengers(active: expectedActive)
        tau = min(1, expectedChallengers / Double(max(1, expectedActive - 1)))
    }

    /// Whether the holder of `beta` is active; `stale`: not measured within `biasGapEpochs`
    /// (or never), which doubles the chance (whitepaper: bias for untested nodes).
    public func isActive(beta: [UInt8], stale: Bool) -> Bool {
        Sortition.selected(Sortition.activityDraw(beta), probability: activeProbability * (stale ? 2 : 1))
    }

    public func isAssigned(proverBeta: [UInt8], challenger: NodeKey) -> Bool {
        Sortition.selected(Sortition.pairDraw(proverBeta: proverBeta, challenger: challenger), probability: tau)
    }
}
