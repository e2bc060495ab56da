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
    /// `ok`, or `degraded` when a component (`registry`, `media`, `clock`) is degraded.
    public var status: String
    public var peerId: String
    public var multiaddrs: [String]
    public var peers: Int
    public var records: Int
    public var tableDigest: String
    public var version: String
    /// The registry's storage: whether it takes writes (Specs/registry.md "A full disk").
    public var registry: RegistryHealth
    /// How far this node's wall clock is ahead of its peers' median (ms; negative: behind;
    /// Specs/registry.md "Clocks"). 0 until a peer has answered.
    public var clockOffsetMs: Int64
    public var clock: ClockHealth
    /// The media engine; absent on a node that runs no media service.
    public var media: MediaHealth?
    /// SHA-256 over the sorted QoS item IDs: equal digests, equal report sets (Specs/qos.md).
    public var qosDigest: String?
    /// SHA-256 over the sorted receipt item IDs: equal digests, equal receipt sets (Specs/rewards.md).
    public var receiptsDigest: String?

    public init(status: String, peerId: String, multiaddrs: [String], peers: Int, records: Int, tableDigest: String, version: String,
                registry: RegistryHealth = RegistryHealth(), clockOffsetMs: Int64 = 0, clock: ClockHealth = ClockHealth(),
                media: MediaHealth? = nil, qosDigest: String? = nil, receiptsDigest: String? = nil) {
        self.status = status
        self.peerId = peerId
        self.multiaddrs = multiaddrs
        self.peers = peers
        self.records = records
        self.tableDigest = tableDigest
        self.version = version
        self.registry = registry
        self.clockOffsetMs = clockOffsetMs
        self.clock = clock
        self.media = media
        self.qosDigest = qosDigest
        self.receiptsDigest = receiptsDigest
    }
}

/// `/health.clock` (Specs/registry.md "Clocks"): `{"status","offsetMs","correctionMs","peers","toleranceMs"}`.
public struct ClockHealth: Codable, Sendable {
    /// `unknown` (no peer has answered), `ok`, `corrected` (off by more than the dead band:
    /// the registry uses the corrected time), `refused` (off by more than `toleranceMs`: peers
    /// refuse this node's records; `/health.status` is then `degraded`).
    public var status: String
    public var offsetMs: Int64
    /// What the registry clock subtracts from the wall clock.
    public var correctionMs: Int64
    /// Peers whose clocks the estimate is the median of (with this node's own).
    public var peers: Int
    public var toleranceMs: Int64

    public init(status: String = "unknown", offsetMs: Int64 = 0, correctionMs: Int64 = 0, peers: Int = 0, toleranceMs: Int64 = 0) {
        self.status = status
        self.offsetMs = offsetMs
        self.correctionMs = correctionMs
        self.peers = peers
        self.toleranceMs = toleranceMs
    }

    public var isRefused: Bool { status == "refused" }
}

/// `/health.registry`: `{"status":"ok","deferredRecords":0}`, or when commits fail
/// `{"status":"degraded","code":"storage_full","reason":"disk_full","error":"…","sinceMs":…,"deferredRecords":N}`.
public struct RegistryHealth: Codable, Sendable {
    /// `ok` or `degraded`.
    public var status: String
    /// The error code writes are refused with (`storage_full`, `storage_error`).
    public var code: String?
    /// The label of `drtc_registry_commit_failures_total` (`disk_full`, `map_full`, `io_error`, `other`).
    public var reason: String?
    /// The last failure, as the store describes it.
    public var error: String?
    /// When commits started failing (Unix ms).
    public var sinceMs: UInt64?
    /// Records merged in memory (from the mesh, or the node's own) that are not on disk yet.
    public var deferredRecords: Int

    public init(status: String = "ok", code: String? = nil, reason: String? = nil, error: String? = nil, sinceMs: UInt64? = nil, deferredRecords: Int = 0) {
        self.status = status
        self.code = code
        self.reason = reason
        self.error = error
        self.sinceMs = sinceMs
        self.deferredRecords = deferredRecords
    }

    public var isDegraded: Bool { status != "ok" }
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
