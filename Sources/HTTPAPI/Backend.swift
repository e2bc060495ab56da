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
    /// The media engine; absent on a node that runs no media service.
    public var media: MediaHealth?

    public init(status: String, peerId: String, multiaddrs: [String], peers: Int, records: Int, tableDigest: String, version: String,
                media: MediaHealth? = nil) {
        self.status = status
        self.peerId = peerId
        self.multiaddrs = multiaddrs
        self.peers = peers
        self.records = records
        self.tableDigest = tableDigest
        self.version = version
        self.media = media
    }
}

/// The media socket on `/health` (Specs/media.md "Send errors and socket loss").
public struct MediaHealth: Codable, Sendable, Equatable {
    /// `ok`, or `unavailable` while the media socket is closed (WHIP/WHEP then answer 503).
    public var status: String
    /// The media socket's address (`--media`, port resolved).
    public var udp: String
    /// Why media is unavailable; absent when `ok`.
    public var error: String?

    public init(status: String, udp: String, error: String? = nil) {
        self.status = status
        self.udp = udp
        self.error = error
    }

    public var isAvailable: Bool { status == "ok" }
}
