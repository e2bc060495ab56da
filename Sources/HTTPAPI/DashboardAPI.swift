import HTTPTypes
import Hummingbird
import Identity
import NIOCore
import Synchronization

/// What the dashboard needs from the node.
public protocol DashboardBackend: Sendable {
    func dashboardOverview() async -> DashboardOverview
    /// Changes whenever the node list may have changed (the table's generation, the second):
    /// equal versions, equal lists.
    func dashboardNodesVersion() -> String
    func dashboardNodes() -> [DashboardNodeRow]
}

/// `GET /dashboard/overview`: this node at a glance (Specs/openapi.yaml `DashboardOverview`).
public struct DashboardOverview: Codable, Sendable {
    public struct Position: Codable, Sendable {
        public var latitude: Double
        public var longitude: Double
        public init(latitude: Double, longitude: Double) {
            self.latitude = latitude
            self.longitude = longitude
        }
    }

    /// The node's own QoS score; `source` says where it comes from (nothing before QoS ships).
    public struct QoS: Codable, Sendable {
        public var score: Double?
        public var measured: Bool
        public var source: String
        public init(score: Double?, measured: Bool, source: String) {
            self.score = score
            self.measured = measured
            self.source = source
        }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(score, forKey: .score)
            try c.encode(measured, forKey: .measured)
            try c.encode(source, forKey: .source)
        }
    }

    public struct Epoch: Codable, Sendable {
        public var epoch: UInt64
        public var epochSeconds: UInt64
        public var startMs: UInt64
        public var endMs: UInt64
        public init(epoch: UInt64, epochSeconds: UInt64, startMs: UInt64, endMs: UInt64) {
            self.epoch = epoch
            self.epochSeconds = epochSeconds
            self.startMs = startMs
            self.endMs = endMs
        }
    }

    /// This node's line of one epoch's ledger.
    public struct EpochReward: Codable, Sendable {
        public var epoch: UInt64
        public var final: Bool
        public var row: RewardNodeJSON?
        public init(epoch: UInt64, final: Bool, row: RewardNodeJSON?) {
            self.epoch = epoch
            self.final = final
            self.row = row
        }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(epoch, forKey: .epoch)
            try c.encode(final, forKey: .final)
            try c.encode(row, forKey: .row)
        }
    }

    public struct Room: Codable, Sendable {
        public var room: String
        public var publishers: Int
        public var viewers: Int
        public var tracks: Int
        /// The far nodes (PeerIDs) of this room's node-to-node pipes (its cascade).
        public var pipes: [String]
        public init(room: String, publishers: Int, viewers: Int, tracks: Int, pipes: [String] = []) {
            self.room = room
            self.publishers = publishers
            self.viewers = viewers
            self.tracks = tracks
            self.pipes = pipes
        }
    }

    public struct Media: Codable, Sendable {
        public var status: String
        public var sessions: Int
        public var producers: Int
        public var consumers: Int
        public var rooms: [Room]
        public init(status: String, sessions: Int, producers: Int, consumers: Int, rooms: [Room]) {
            self.status = status
            self.sessions = sessions
            self.producers = producers
            self.consumers = consumers
            self.rooms = rooms
        }
    }

    public var peerId: String
    public var region: String
    public var position: Position?
    public var version: String
    public var status: String
    public var url: String
    public var multiaddrs: [String]
    public var startedAtMs: UInt64
    public var nowMs: UInt64
    public var uptimeSeconds: Double
    public var peers: Int
    public var records: Int
    public var tableDigest: String
    public var qos: QoS
    public var epoch: Epoch
    /// The last epochs' rewards of this node, newest first, and where their inputs come from.
    public var rewards: [EpochReward]
    public var rewardSources: RewardSources
    public var media: Media

    public init(peerId: String, region: String, position: Position?, version: String, status: String, url: String,
                multiaddrs: [String], startedAtMs: UInt64, nowMs: UInt64, peers: Int, records: Int, tableDigest: String,
                qos: QoS, epoch: Epoch, rewards: [EpochReward], rewardSources: RewardSources, media: Media) {
        self.peerId = peerId
        self.region = region
        self.position = position
        self.version = version
        self.status = status
        self.url = url
        self.multiaddrs = multiaddrs
        self.startedAtMs = startedAtMs
        self.nowMs = nowMs
        self.uptimeSeconds = (Double(nowMs &- startedAtMs) / 1000).rounded(decimals: 3)
        self.peers = peers
        self.records = records
        self.tableDigest = tableDigest
        self.qos = qos
        self.epoch = epoch
        self.rewards = rewards
        self.rewardSources = rewardSources
        self.media = media
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(peerId, forKey: .peerId)
        try c.encode(region, forKey: .region)
        try c.encode(position, forKey: .position)  // an explicit null without --geo
        try c.encode(version, forKey: .version)
        try c.encode(status, forKey: .status)
        try c.encode(url, forKey: .url)
        try c.encode(multiaddrs, forKey: .multiaddrs)
        try c.encode(startedAtMs, forKey: .startedAtMs)
        try c.encode(nowMs, forKey: .nowMs)
        try c.encode(uptimeSeconds, forKey: .uptimeSeconds)
        try c.encode(peers, forKey: .peers)
        try c.encode(records, forKey: .records)
        try c.encode(tableDigest, forKey: .tableDigest)
        try c.encode(qos, forKey: .qos)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(rewards, forKey: .rewards)
        try c.encode(rewardSources, forKey: .rewardSources)
        try c.encode(media, forKey: .media)
    }
}

/// One live record as the dashboard's map and table show it.
public struct DashboardNodeRow: Sendable, Equatable {
    public var nodeId: String
    public var region: String
    public var latitude: Double?
    public var longitude: Double?
    /// 1 − load headroom (Specs/registry.md), 0..1.
    public var load: Double
    public var sessions: Int
    public var maxSessions: Int
    /// The node's QoS score, nil while unmeasured (and until QoS ships).
    public var qos: Double?
    public var version: String
    public var expiresAtMs: UInt64
    public var url: String

    public init(nodeId: String, region: String, latitude: Double?, longitude: Double?, load: Double, sessions: Int, maxSessions: Int,
                qos: Double?, version: String, expiresAtMs: UInt64, url: String) {
        self.nodeId = nodeId
        self.region = region
        self.latitude = latitude
        self.longitude = longitude
        self.load = load
        self.sessions = sessions
        self.maxSessions = maxSessions
        self.qos = qos
        self.version = version
        self.expiresAtMs = expiresAtMs
        self.url = url
    }

    static let columns = ["nodeId", "region", "latitude", "longitude", "load", "sessions", "maxSessions", "qos", "version", "expiresAtMs", "url"]
}

/// `GET /dashboard/nodes`: every live record as a row of `columns` (a tenth of the size of
/// `/listMediaNodes`, which carries each signed record; 10,000 nodes are about 1.5 MB).
struct DashboardNodesJSON: Encodable {
    var version: String
    var count: Int
    var columns: [String]
    var nodes: [Row]

    struct Row: Encodable {
        var row: DashboardNodeRow
        func encode(to encoder: any Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode(row.nodeId)
            try c.encode(row.region)
            if let v = row.latitude { try c.encode(v) } else { try c.encodeNil() }
            if let v = row.longitude { try c.encode(v) } else { try c.encodeNil() }
            try c.encode(row.load.rounded(decimals: 3))
            try c.encode(row.sessions)
            try c.encode(row.maxSessions)
            if let v = row.qos { try c.encode(v.rounded(decimals: 4)) } else { try c.encodeNil() }
            try c.encode(row.version)
            try c.encode(row.expiresAtMs)
            try c.encode(row.url)
        }
    }
}

/// `GET /` and its assets: the dashboard page (Specs/dashboard.md), compiled into the binary.
public enum DashboardAPI {
    struct Asset: Sendable {
        var bytes: [UInt8]
        var contentType: String
        var etag: String

        init(_ bytes: [UInt8], _ contentType: String) {
            self.bytes = bytes
            self.contentType = contentType
            etag = "\"" + Hex.encode(SHA256.hash(bytes).prefix(12)) + "\""
        }
    }

    static let assets: [String: Asset] = [
        "/": Asset(PackageResources.index_html, "text/html; charset=utf-8"),
        "/dashboard/dashboard.js": Asset(PackageResources.dashboard_js, "text/javascript; charset=utf-8"),
        "/dashboard/dashboard.css": Asset(PackageResources.dashboard_css, "text/css; charset=utf-8"),
        "/dashboard/coastline.json": Asset(PackageResources.coastline_json, "application/json"),
    ]

    /// Every path the dashboard serves (for the API's 405 rule).
    static let paths = Array(assets.keys) + ["/dashboard/overview", "/dashboard/nodes"]

    /// The page may load nothing but what this node serves, and talk to nothing else: the
    /// browser enforces "no request leaves the node".
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    public static func add(to router: Router<BasicRequestContext>, backend: some DashboardBackend) {
        for (path, asset) in assets {
            router.get(RouterPath(path)) { request, _ in
                var headers = HTTPFields()
                headers[.contentType] = asset.contentType
                headers[.eTag] = asset.etag
                // Revalidate on every load: a node upgraded in place serves its new page at once.
                headers[.cacheControl] = "no-cache"
                headers[.contentSecurityPolicy] = contentSecurityPolicy
                headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
                if request.headers[.ifNoneMatch] == asset.etag {
                    return Response(status: .notModified, headers: headers)
                }
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: asset.bytes)))
            }
        }
        router.get("/dashboard/overview") { request, _ in
            _ = try QueryParameters(request, allowed: [])
            return try RegistryAPI.json(await backend.dashboardOverview())
        }
        let cache = Mutex<(version: String, bytes: [UInt8])?>(nil)
        router.get("/dashboard/nodes") { request, _ in
            _ = try QueryParameters(request, allowed: [])
            let version = backend.dashboardNodesVersion()
            let etag = "\"\(version)\""
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.eTag] = etag
            headers[.cacheControl] = "no-cache"
            if request.headers[.ifNoneMatch] == etag {
                return Response(status: .notModified, headers: headers)
            }
            let bytes: [UInt8]
            if let cached = cache.withLock({ $0 }), cached.version == version {
                bytes = cached.bytes
            } else {
                let rows = backend.dashboardNodes()
                bytes = try APIJSON.encode(DashboardNodesJSON(version: version, count: rows.count, columns: DashboardNodeRow.columns,
                                                              nodes: rows.map { .init(row: $0) }))
                cache.withLock { $0 = (version, bytes) }
            }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }
}
