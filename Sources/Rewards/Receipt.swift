import Identity
import Registry
import SwiftProtobuf

/// One media node's account of one room in one epoch part (Specs/rewards.md "Data supplied"):
/// what it signs, and what the orchestrator that issued the room's tokens countersigns.
/// Counts are time-weighted means in hundredths, so the encoding is exact.
public struct SessionReceipt: Hashable, Sendable {
    public enum Role: String, Sendable, CaseIterable {
        case origin, edge, member
    }

    /// 32-byte Ed25519 keys of the media node (signer) and the orchestrator (countersigner).
    public var node: [UInt8]
    public var orchestrator: [UInt8]
    public var room: String
    public var epochSeconds: UInt32
    public var epoch: UInt64
    public var startMs: UInt64
    public var endMs: UInt64
    public var role: Role
    /// n_p × 100 and n_c × 100.
    public var publishersCenti: UInt32
    public var viewersCenti: UInt32
    /// SHA-256 over the sorted SHA-256s of the media tokens that admitted the part's clients.
    public var tokenDigest: [UInt8]
    /// Informative only: b never depends on it.
    public var bytesForwarded: UInt64

    public static let maxPublishersCenti: UInt32 = 100_000
    public static let maxViewersCenti: UInt32 = 10_000_000

    public init(node: [UInt8], orchestrator: [UInt8], room: String, epochSeconds: UInt32, epoch: UInt64, startMs: UInt64, endMs: UInt64,
                role: Role, publishersCenti: UInt32, viewersCenti: UInt32, tokenDigest: [UInt8], bytesForwarded: UInt64) {
        self.node = node
        self.orchestrator = orchestrator
        self.room = room
        self.epochSeconds = epochSeconds
        self.epoch = epoch
        self.startMs = startMs
        self.endMs = endMs
        self.role = role
        self.publishersCenti = publishersCenti
        self.viewersCenti = viewersCenti
        self.tokenDigest = tokenDigest
        self.bytesForwarded = bytesForwarded
    }

    public var nodeID: PeerID { PeerID(publicKey: LibP2PPublicKey(type: .ed25519, data: node)) }
    public var orchestratorID: PeerID { PeerID(publicKey: LibP2PPublicKey(type: .ed25519, data: orchestrator)) }
    /// n_p, n_c and m.
    public var publishers: Double { Double(publishersCenti) / 100 }
    public var viewers: Double { Double(viewersCenti) / 100 }
    public var minutes: Double { Double(endMs - startMs) / 60_000 }

    /// b = b_av·n_p·((n_p − 1) + n_c)·m in MB (b_av in kbit/s × 60 s × m ÷ 8 ÷ 1000); never
    /// negative (a mean below one publisher with no viewers would make the factor negative).
    public func dataSuppliedMB(streamBitrateKbps: Double) -> Double {
        let np = publishers, nc = viewers
        let streamMinutes = max(0, np * ((np - 1) + nc)) * minutes
        return streamBitrateKbps * 60 * streamMinutes / 8 / 1000
    }

    /// The participants the part places at the node's position (the location score's ρ_I).
    public var participants: Double { publishers + viewers }

    /// The canonical `SessionReceipt` encoding (fields in number order, defaults omitted).
    public var body: [UInt8] {
        var w = Drtc_Rewards_V1_SessionReceipt()
        w.node = Data(node)
        w.orchestrator = Data(orchestrator)
        w.room = room
        w.epochSeconds = epochSeconds
        w.epoch = epoch
        w.startMs = startMs
        w.endMs = endMs
        w.role = role.wire
        w.publishersCenti = publishersCenti
        w.viewersCenti = viewersCenti
        w.tokenDigest = Data(tokenDigest)
        w.bytesForwarded = bytesForwarded
        // Serialising a message of scalars and bytes cannot fail.
        return try! w.serializedBytes()
    }

    /// Every range check that depends on the receipt alone (Specs/rewards.proto).
    public var problem: String? {
        if node.count != 32 { return "node must be a 32-byte key" }
        if orchestrator.count != 32 { return "orchestrator must be a 32-byte key" }
        if node == orchestrator { return "a node cannot countersign its own receipt" }
        if !Self.isValidRoom(room) { return "room must be 1–64 characters of [A-Za-z0-9._-]" }
        if !(10...86_400).contains(epochSeconds) { return "epoch_seconds must be 10..86400" }
        let epochMs = UInt64(epochSeconds) * 1000
        guard epoch < UInt64.max / epochMs - 1 else { return "epoch out of range" }
        if startMs >= endMs { return "start_ms must be before end_ms" }
        if startMs / epochMs != epoch || endMs > (epoch + 1) * epochMs { return "the part must lie inside its epoch" }
        if publishersCenti > Self.maxPublishersCenti { return "publishers_centi above \(Self.maxPublishersCenti)" }
        if viewersCenti > Self.maxViewersCenti { return "viewers_centi above \(Self.maxViewersCenti)" }
        if tokenDigest.count != 32 { return "token_digest must be 32 bytes" }
        return nil
    }

    public static func isValidRoom(_ room: String) -> Bool {
        (1...64).contains(room.utf8.count) && room.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F
        }
    }

    /// `token_digest`: SHA-256 over the sorted SHA-256s of the tokens (their text's bytes).
    public static func tokenDigest(tokenHashes: some Sequence<[UInt8]>) -> [UInt8] {
        var h = SHA256.Hasher()
        for t in tokenHashes.sorted(by: { $0.lexicographicallyPrecedes($1) }) { h.update(t) }
        return h.finalize()
    }

    /// Decodes and range-checks a `SessionReceipt` body (an orchestrator's clamped proposal).
    public init(body: [UInt8]) throws(ReceiptRejection) {
        let w: Drtc_Rewards_V1_SessionReceipt
        do { w = try Drtc_Rewards_V1_SessionReceipt(serializedBytes: body) } catch { throw .malformed("body is not a SessionReceipt protobuf") }
        try self.init(wire: w)
    }

    init(wire w: Drtc_Rewards_V1_SessionReceipt) throws(ReceiptRejection) {
        guard let role = Role(wire: w.role) else { throw .malformed("role must be origin, edge or member") }
        self.init(node: Array(w.node), orchestrator: Array(w.orchestrator), room: w.room, epochSeconds: w.epochSeconds, epoch: w.epoch,
                  startMs: w.startMs, endMs: w.endMs, role: role, publishersCenti: w.publishersCenti, viewersCenti: w.viewersCenti,
                  tokenDigest: Array(w.tokenDigest), bytesForwarded: w.bytesForwarded)
        if let problem { throw .malformed(problem) }
    }
}

extension SessionReceipt.Role {
    var wire: Drtc_Rewards_V1_ReceiptRole {
        switch self {
        case .origin: .origin
        case .edge: .edge
        case .member: .member
        }
    }

    init?(wire: Drtc_Rewards_V1_ReceiptRole) {
        switch wire {
        case .origin: self = .origin
        case .edge: self = .edge
        case .member: self = .member
        default: return nil
        }
    }
}

/// Why a receipt's bytes were refused.
public enum ReceiptRejection: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge
    case malformed(String)
    case badNodeSignature
    case badOrchestratorSignature
    case notCountersigned
    /// Gossip only: a receipt of another network's epoch length, or outside the gossip window.
    case badSchedule(String)
    case wrongEpoch
    /// Gossip only: published by another peer than the receipt's orchestrator.
    case wrongPublisher

    public var reason: String {
        switch self {
        case .tooLarge: "too_large"
        case .malformed: "malformed"
        case .badNodeSignature: "bad_node_signature"
        case .badOrchestratorSignature: "bad_orchestrator_signature"
        case .notCountersigned: "not_countersigned"
        case .badSchedule: "bad_schedule"
        case .wrongEpoch: "wrong_epoch"
        case .wrongPublisher: "wrong_publisher"
        }
    }

    public var description: String {
        switch self {
        case .tooLarge: "receipt larger than \(SignedSessionReceipt.maxEncodedSize) bytes"
        case .malformed(let why): "malformed receipt: \(why)"
        case .badNodeSignature: "the node signature does not verify against the receipt's node key"
        case .badOrchestratorSignature: "the countersignature does not verify against the receipt's orchestrator key"
        case .notCountersigned: "the receipt has no countersignature"
        case .badSchedule(let why): "bad schedule: \(why)"
        case .wrongEpoch: "receipt outside its epoch's gossip window"
        case .wrongPublisher: "receipt published by another peer than its orchestrator"
        }
    }
}

/// A receipt with the exact bytes its node signed, the node's signature and (once
/// countersigned) the orchestrator's. Immutable and shared.
public final class SignedSessionReceipt: Sendable, Hashable {
    public static let nodePrefix = Array("drtc-session-receipt:".utf8)
    public static let countersignPrefix = Array("drtc-receipt-countersign:".utf8)
    public static let maxEncodedSize = 1024

    public let receipt: SessionReceipt
    public let body: [UInt8]
    public let nodeSignature: [UInt8]
    /// Empty until countersigned.
    public let orchestratorSignature: [UInt8]
    /// Item ID in set reconciliation: the first 16 bytes of SHA-256 over the encoding.
    public let syncID: SyncID

    init(receipt: SessionReceipt, body: [UInt8], nodeSignature: [UInt8], orchestratorSignature: [UInt8]) {
        self.receipt = receipt
        self.body = body
        self.nodeSignature = nodeSignature
        self.orchestratorSignature = orchestratorSignature
        syncID = SyncID(digestOf: Self.encode(body: body, nodeSignature: nodeSignature, orchestratorSignature: orchestratorSignature))
    }

    public var epoch: UInt64 { receipt.epoch }
    public var isCountersigned: Bool { !orchestratorSignature.isEmpty }

    /// The media node's signature over a receipt (`"drtc-session-receipt:" ‖ body`).
    public static func sign(_ receipt: SessionReceipt, key: Ed25519KeyPair) -> SignedSessionReceipt {
        precondition(receipt.node == key.publicKeyBytes, "the node signs its own receipts")
        let body = receipt.body
        return SignedSessionReceipt(receipt: receipt, body: body, nodeSignature: key.sign(nodePrefix + body), orchestratorSignature: [])
    }

    /// The orchestrator's countersignature (`"drtc-receipt-countersign:" ‖ body ‖ node
    /// signature`) over this receipt as the node signed it.
    public func countersigned(by key: Ed25519KeyPair) -> SignedSessionReceipt {
        precondition(receipt.orchestrator == key.publicKeyBytes, "only the receipt's orchestrator countersigns")
        return SignedSessionReceipt(receipt: receipt, body: body, nodeSignature: nodeSignature,
                                    orchestratorSignature: key.sign(Self.countersignPrefix + body + nodeSignature))
    }

    /// The `SignedSessionReceipt` protobuf.
    public var encoded: [UInt8] { Self.encode(body: body, nodeSignature: nodeSignature, orchestratorSignature: orchestratorSignature) }

    static func encode(body: [UInt8], nodeSignature: [UInt8], orchestratorSignature: [UInt8]) -> [UInt8] {
        var w = Drtc_Rewards_V1_SignedSessionReceipt()
        w.body = Data(body)
        w.nodeSignature = Data(nodeSignature)
        w.orchestratorSignature = Data(orchestratorSignature)
        return try! w.serializedBytes()
    }

    /// Decodes and verifies a `SignedSessionReceipt`: every check that depends on the bytes
    /// alone, so that every replica counts the same receipts (Specs/rewards.md). With
    /// `countersigned: false` (the orchestrator receiving a node's receipt), a receipt without a
    /// countersignature passes; a present countersignature is always checked.
    public static func verify(encoded bytes: [UInt8], countersigned: Bool = true) throws(ReceiptRejection) -> SignedSessionReceipt {
        guard bytes.count <= maxEncodedSize else { throw .tooLarge }
        let envelope: Drtc_Rewards_V1_SignedSessionReceipt
        do { envelope = try Drtc_Rewards_V1_SignedSessionReceipt(serializedBytes: bytes) } catch {
            throw .malformed("not a SignedSessionReceipt protobuf")
        }
        let body = Array(envelope.body), nodeSignature = Array(envelope.nodeSignature), orchestratorSignature = Array(envelope.orchestratorSignature)
        guard nodeSignature.count == Ed25519.signatureLength else { throw .malformed("node_signature must be 64 bytes") }
        if countersigned && orchestratorSignature.isEmpty { throw .notCountersigned }
        guard orchestratorSignature.isEmpty || orchestratorSignature.count == Ed25519.signatureLength else {
            throw .malformed("orchestrator_signature must be 64 bytes")
        }
        let w: Drtc_Rewards_V1_SessionReceipt
        do { w = try Drtc_Rewards_V1_SessionReceipt(serializedBytes: body) } catch { throw .malformed("body is not a SessionReceipt protobuf") }
        let receipt = try SessionReceipt(wire: w)
        guard Ed25519.verify(signature: nodeSignature, message: nodePrefix + body, publicKey: receipt.node) else { throw .badNodeSignature }
        if !orchestratorSignature.isEmpty {
            guard Ed25519.verify(signature: orchestratorSignature, message: countersignPrefix + body + nodeSignature, publicKey: receipt.orchestrator)
            else { throw .badOrchestratorSignature }
        }
        return SignedSessionReceipt(receipt: receipt, body: body, nodeSignature: nodeSignature, orchestratorSignature: orchestratorSignature)
    }

    public static func == (a: SignedSessionReceipt, b: SignedSessionReceipt) -> Bool { a.syncID == b.syncID }
    public func hash(into hasher: inout Hasher) { hasher.combine(syncID) }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
