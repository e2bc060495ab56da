import QoS
import Registry

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JSON form of a registry record (`MediaNode` in Specs/openapi.yaml). Field names follow
/// the whitepaper's NodePayload (`nodeId`, `geolocation`, `discoveryUrl`, …).
public struct MediaNodeJSON: Codable, Sendable {
    public struct HLCJSON: Codable, Sendable {
        public var wallMs: UInt64
        public var logical: UInt32
    }

    public var nodeId: String
    public var region: String
    /// "lat,lon", as in the whitepaper's NodePayload; absent when the node did not declare one.
    public var geolocation: String?
    public var latitude: Double?
    public var longitude: Double?
    public var url: String
    public var discoveryUrl: String
    public var ip: String
    public var metricsUrl: String
    /// Base64 of the libp2p PublicKey protobuf.
    public var pubKey: String
    public var version: String
    public var multiaddrs: [String]
    public var capacity: Capacity
    public var load: Load
    public var loadHeadroom: Double
    public var status: NodeStatus
    public var hlc: HLCJSON
    public var refreshIntervalSeconds: UInt32
    public var ttlSeconds: UInt32
    public var expiresAtMs: UInt64
    /// Great-circle distance from the query position, when the query gave one.
    public var distanceKm: Double?
    /// Base64 of the `SignedMediaNodeRecord` protobuf, so clients can verify the owner's signature.
    public var signedRecord: String
    /// The node's QoS (Specs/qos.md), computed by the answering node from its report set.
    public var qos: QoSJSON?

    /// Computed numbers are rounded (Specs/openapi.yaml "JSON"): headroom to 4 decimals
    /// (0.01 %), distances to 3 (metres).
    static let headroomDecimals = 4
    static let distanceDecimals = 3

    public init(_ signed: SignedRecord, distanceKm: Double? = nil) {
        let r = signed.record
        nodeId = r.nodeID.description
        region = r.region
        if let geo = r.geo {
            geolocation = "\(geo.latitude),\(geo.longitude)"
            latitude = geo.latitude
            longitude = geo.longitude
        }
        url = r.url
        discoveryUrl = r.discoveryURL
        ip = r.ip
        metricsUrl = r.metricsURL
        pubKey = Data(r.publicKey.protobufEncoding).base64EncodedString()
        version = r.version
        multiaddrs = r.multiaddrs
        capacity = r.capacity
        load = r.load
        loadHeadroom = r.loadHeadroom.rounded(decimals: Self.headroomDecimals)
        status = r.status
        hlc = HLCJSON(wallMs: r.hlc.wallMs, logical: r.hlc.logical)
        refreshIntervalSeconds = r.refreshIntervalSeconds
        ttlSeconds = r.ttlSeconds
        expiresAtMs = signed.expiresAtMs
        self.distanceKm = distanceKm.map { $0.rounded(decimals: Self.distanceDecimals) }
        signedRecord = Data(signed.encoded).base64EncodedString()
    }
}

struct NodePageJSON: Codable {
    var nodes: [MediaNodeJSON]
    var nextCursor: String?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(nodes, forKey: .nodes)
        try c.encode(nextCursor, forKey: .nextCursor)  // an explicit null on the last page
    }
}

struct SubmitJSON: Codable {
    var nodeId: String
    var outcome: String
    var hlc: MediaNodeJSON.HLCJSON
}

/// `{"error": "...", "code": "...", "parameter": "..."}`
public struct ErrorJSON: Codable, Sendable {
    public var error: String
    public var code: String
    public var parameter: String?
}
