import Identity
import QoS
import Registry

/// What the HTTP API needs from a node. `Node` implements it; the API never touches storage
/// or the mesh directly.
public protocol RegistryBackend: Sendable {
    func health() -> HealthReport
    func getMediaNodes(_ query: NodeQuery) -> [(record: SignedRecord, distanceKm: Double?)]
    /// The record for `id`, live or not (the API reports non-live ones as such).
    func record(for id: PeerID) -> SignedRecord?
    func listMediaNodes(after cursor: String?, limit: Int) -> (page: [SignedRecord], next: String?)
    /// Verifies, merges and durably commits a signed record; returns once it is committed.
    func submit(encodedRecord: [UInt8]) async throws -> SubmitResult
    func nowMs() -> UInt64
    /// A node's QoS (Specs/qos.md "Aggregation"); nil where the node runs no QoS.
    func qos(of id: PeerID) -> NodeQoS?
}

extension RegistryBackend {
    public func qos(of id: PeerID) -> NodeQoS? { nil }
}

public enum SubmitResult: Sendable {
    case merged(SignedRecord, MergeOutcome)
    case rejected(RecordRejection)
}

public struct HealthReport: Codable, Sendable {
    public var status: String
    public var peerId: String
    public var multiaddrs: [String]
    public var peers: Int
    public var records: Int
    public var tableDigest: String
    public var version: String
    /// SHA-256 over the sorted QoS item IDs: equal digests, equal report sets (Specs/qos.md).
    public var qosDigest: String?

    public init(status: String, peerId: String, multiaddrs: [String], peers: Int, records: Int, tableDigest: String, version: String,
                qosDigest: String? = nil) {
        self.status = status
        self.peerId = peerId
        self.multiaddrs = multiaddrs
        self.peers = peers
        self.records = records
        self.tableDigest = tableDigest
        self.version = version
        self.qosDigest = qosDigest
    }
}
