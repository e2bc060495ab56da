import HTTPTypes
import Hummingbird
import Identity
import NIOCore
import Rewards

/// What `/rewards` needs from the node.
public protocol RewardsBackend: Sendable {
    /// The ledger of `epoch` (nil: the current epoch, provisional).
    func rewardLedger(epoch: UInt64?) throws(RewardsLookupError) -> RewardsReport
    /// Countersigned session receipts held, of `node` and `epoch` when given (Specs/rewards.md).
    func sessionReceipts(node: PeerID?, epoch: UInt64?) -> [SignedSessionReceipt]
    /// b_av, for each receipt's b in `/rewards/receipts`.
    var streamBitrateKbps: Double { get }
}

/// One epoch's ledger as the node holds it.
public struct RewardsReport: Sendable {
    public var ledger: RewardLedger
    public var epochs: RewardEpochs
    /// False while the epoch is running: its values still change.
    public var final: Bool
    /// Where each input came from (Specs/rewards.md "Inputs"); names a placeholder as such.
    public var sources: RewardSources

    public init(ledger: RewardLedger, epochs: RewardEpochs, final: Bool, sources: RewardSources) {
        self.ledger = ledger
        self.epochs = epochs
        self.final = final
        self.sources = sources
    }
}

/// The provenance of each input of a ledger, as published in `/rewards.sources`.
public struct RewardSources: Codable, Hashable, Sendable {
    public var availability: String
    public var quality: String
    public var dataSupplied: String
    public var demand: String
    public var positions: String

    public init(availability: String, quality: String, dataSupplied: String, demand: String, positions: String) {
        self.availability = availability
        self.quality = quality
        self.dataSupplied = dataSupplied
        self.demand = demand
        self.positions = positions
    }
}

public enum RewardsLookupError: Error, Sendable {
    /// The epoch has not started yet (a 404 as well: no such ledger exists anywhere).
    case future(current: UInt64)
    /// This node computes no ledger for the epoch (older than the QoS set's GC horizon).
    case unknown(oldest: UInt64?, current: UInt64)
}

/// `GET /rewards?epoch=E[&node=PEERID]` and `GET /rewards.csv?epoch=E` (Specs/rewards.md "HTTP").
public enum RewardsAPI {
    public static func add(to router: Router<BasicRequestContext>, backend: some RewardsBackend) {
        router.get("/rewards") { request, _ in
            let params = try QueryParameters(request, allowed: ["epoch", "node"])
            let report = try lookup(params, backend: backend)
            var json = RewardsJSON(report)
            // A filter, not a lookup: a PeerID the ledger does not hold gives no rows.
            if let node = params["node"] {
                guard node.utf8.count <= 128 else { throw APIError.badParameter("node", "a PeerID is at most 128 characters (Ed25519 ones are 52)") }
                json.nodes = json.nodes.filter { $0.nodeId == node }
            }
            return try RegistryAPI.json(json)
        }
        router.get("/rewards/receipts") { request, _ in
            let params = try QueryParameters(request, allowed: ["epoch", "node"])
            var epoch: UInt64?
            if let raw = params["epoch"] {
                // The documented range (Specs/openapi.yaml "Epoch"): integers JSON carries exactly.
                guard let e = UInt64(raw), e <= 9_007_199_254_740_991 else {
                    throw APIError.badParameter("epoch", "expected an epoch number 0…9007199254740991 (Unix seconds ÷ the epoch length), got '\(raw.prefix(40))'")
                }
                epoch = e
            }
            var node: PeerID?
            if let raw = params["node"] {
                guard let id = try? PeerID(String(raw.prefix(128))) else { throw APIError.badParameter("node", "expected a PeerID (base58, 12D3KooW…), got '\(raw.prefix(64))'") }
                node = id
            }
            let list = backend.sessionReceipts(node: node, epoch: epoch)
            return try RegistryAPI.json(ReceiptListJSON(epoch: epoch, node: node?.description,
                                                        receipts: list.map { ReceiptJSON($0, streamBitrateKbps: backend.streamBitrateKbps) }))
        }
        router.get("/rewards.csv") { request, _ in
            let params = try QueryParameters(request, allowed: ["epoch"])
            let report = try lookup(params, backend: backend)
            var headers = HTTPFields()
            headers[.contentType] = "text/csv; charset=utf-8; header=present"
            headers[.contentDisposition] = "attachment; filename=\"drtc-rewards-epoch-\(report.ledger.epoch).csv\""
            headers[HTTPField.Name("X-Drtc-Ledger-Digest")!] = report.ledger.digest
            headers[HTTPField.Name("X-Drtc-Ledger-Final")!] = report.final ? "true" : "false"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: report.ledger.csv)))
        }
    }

    static func lookup(_ params: QueryParameters, backend: some RewardsBackend) throws -> RewardsReport {
        var epoch: UInt64?
        if let raw = params["epoch"] {
            guard let e = UInt64(raw) else {
                throw APIError.badParameter("epoch", "expected an epoch number (Unix seconds ÷ the epoch length; /rewards without it gives the current one), got '\(raw.prefix(40))'")
            }
            epoch = e
        }
        do {
            return try backend.rewardLedger(epoch: epoch)
        } catch .future(let current) {
            throw APIError(.notFound, code: "unknown_epoch", "epoch \(epoch ?? 0) has not started; the current epoch is \(current)", parameter: "epoch")
        } catch .unknown(let oldest, let current) {
            let held = oldest.map { "epochs \($0)…\(current)" } ?? "only the current epoch \(current)"
            throw APIError(.notFound, code: "unknown_epoch", "this node holds no ledger for epoch \(epoch ?? 0); it holds \(held) (ledgers are recomputed from the QoS set, which keeps a limited number of epochs)", parameter: "epoch")
        }
    }
}

/// `/rewards` (Specs/openapi.yaml `Rewards`).
struct RewardsJSON: Encodable {
    struct Weights: Encodable {
        var availability, history, location, coverage: Double
    }
    struct Parameters: Encodable {
        var weights: Weights
        var k, rAsym, hMin, locationRadiusKm, coverageRadiusKm, streamBitrateKbps, unmeasuredQuality: Double
    }

    var epoch: UInt64
    var epochSeconds: UInt64
    var startMs: UInt64
    var endMs: UInt64
    var final: Bool
    var digest: String
    var totalReward: Double
    var parameters: Parameters
    var sources: RewardSources
    var nodes: [RewardNodeJSON]

    init(_ r: RewardsReport) {
        let l = r.ledger, p = l.parameters
        epoch = l.epoch
        epochSeconds = r.epochs.epochSeconds
        startMs = r.epochs.startMs(l.epoch)
        endMs = r.epochs.endMs(l.epoch)
        final = r.final
        digest = l.digest
        totalReward = l.totalReward
        parameters = Parameters(
            weights: Weights(availability: p.weights.availability, history: p.weights.history, location: p.weights.location, coverage: p.weights.coverage),
            k: p.k, rAsym: p.rAsym, hMin: p.hMin, locationRadiusKm: p.locationRadiusKm, coverageRadiusKm: p.coverageRadiusKm,
            streamBitrateKbps: p.streamBitrateKbps, unmeasuredQuality: p.unmeasuredQuality)
        sources = r.sources
        nodes = l.rows.map(RewardNodeJSON.init)
    }
}

/// One node's line of the ledger. The values are the ledger's own (already rounded).
public struct RewardNodeJSON: Codable, Sendable, Equatable {
    public var nodeId: String
    public var availability: Double
    public var history: Double
    public var location: Double
    public var coverage: Double
    /// V; null when QoS did not measure the node (the formula then used `unmeasuredQuality`).
    public var quality: Double?
    public var qualityMeasured: Bool
    public var unitReward: Double
    public var dataSuppliedMB: Double
    public var reward: Double
    public var sessions: Int
    public var uptimeSeconds: Double
    public var lifetimeSeconds: Double
    public var demandNearby: Double
    public var nodesNearby: Int

    public init(_ r: RewardRow) {
        nodeId = r.node
        availability = r.availability
        history = r.history
        location = r.location
        coverage = r.coverage
        quality = r.quality
        qualityMeasured = r.quality != nil
        unitReward = r.unitReward
        dataSuppliedMB = r.dataSuppliedMB
        reward = r.reward
        sessions = r.sessions
        uptimeSeconds = r.uptimeSeconds
        lifetimeSeconds = r.lifetimeSeconds
        demandNearby = r.demandNearby
        nodesNearby = r.nodesNearby
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(nodeId, forKey: .nodeId)
        try c.encode(availability, forKey: .availability)
        try c.encode(history, forKey: .history)
        try c.encode(location, forKey: .location)
        try c.encode(coverage, forKey: .coverage)
        try c.encode(quality, forKey: .quality)  // an explicit null while unmeasured
        try c.encode(qualityMeasured, forKey: .qualityMeasured)
        try c.encode(unitReward, forKey: .unitReward)
        try c.encode(dataSuppliedMB, forKey: .dataSuppliedMB)
        try c.encode(reward, forKey: .reward)
        try c.encode(sessions, forKey: .sessions)
        try c.encode(uptimeSeconds, forKey: .uptimeSeconds)
        try c.encode(lifetimeSeconds, forKey: .lifetimeSeconds)
        try c.encode(demandNearby, forKey: .demandNearby)
        try c.encode(nodesNearby, forKey: .nodesNearby)
    }
}

/// `GET /rewards/receipts` (Specs/openapi.yaml `ReceiptList`).
struct ReceiptListJSON: Encodable {
    var epoch: UInt64?
    var node: String?
    var receipts: [ReceiptJSON]
}

/// One countersigned session receipt: its fields, b, and the bytes both signatures cover (hex).
struct ReceiptJSON: Encodable {
    var nodeId: String
    var orchestratorId: String
    var room: String
    var epoch: UInt64
    var epochSeconds: UInt32
    var startMs: UInt64
    var endMs: UInt64
    var role: String
    var publishers: Double
    var viewers: Double
    var minutes: Double
    var dataSuppliedMB: Double
    var tokenDigest: String
    var bytesForwarded: UInt64
    var body: String
    var nodeSignature: String
    var orchestratorSignature: String
    var syncId: String

    init(_ s: SignedSessionReceipt, streamBitrateKbps: Double) {
        let r = s.receipt
        nodeId = r.nodeID.description
        orchestratorId = r.orchestratorID.description
        room = r.room
        epoch = r.epoch
        epochSeconds = r.epochSeconds
        startMs = r.startMs
        endMs = r.endMs
        role = r.role.rawValue
        publishers = r.publishers
        viewers = r.viewers
        minutes = (r.minutes * 1_000_000).rounded() / 1_000_000
        dataSuppliedMB = (r.dataSuppliedMB(streamBitrateKbps: streamBitrateKbps) * 1000).rounded() / 1000
        tokenDigest = Hex.encode(r.tokenDigest)
        bytesForwarded = r.bytesForwarded
        body = Hex.encode(s.body)
        nodeSignature = Hex.encode(s.nodeSignature)
        orchestratorSignature = Hex.encode(s.orchestratorSignature)
        syncId = Hex.encode(s.syncID.bytes)
    }
}
