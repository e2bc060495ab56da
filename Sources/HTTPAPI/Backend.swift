import Identity
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

    public init(status: String, peerId: String, multiaddrs: [String], peers: Int, records: Int, tableDigest: String, version: String) {
        self.status = status
        self.peerId = peerId
        self.multiaddrs = multiaddrs
        self.peers = peers
        self.records = records
        self.tableDigest = tableDigest
        self.version = version
    }
}
