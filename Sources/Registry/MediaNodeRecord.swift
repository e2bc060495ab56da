import Identity
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public typealias WireRecord = Drtc_Registry_V1_MediaNodeRecord
public typealias WireSignedRecord = Drtc_Registry_V1_SignedMediaNodeRecord

/// The regions of whitepaper 4.2.3.1, extended to every continent.
public enum Region: String, CaseIterable, Sendable, Codable {
    case EU, NAM, ASI, SAM, AFR, OCE
}

public struct GeoPoint: Hashable, Sendable, Codable {
    public var latitude: Double
    public var longitude: Double

    public init(latitude: Double, longitude: Double) {
        self.latitude = latitude
        self.longitude = longitude
    }

    public var isValid: Bool {
        latitude.isFinite && longitude.isFinite && (-90...90).contains(latitude) && (-180...180).contains(longitude)
    }
}

public struct Capacity: Hashable, Sendable, Codable {
    public var bandwidthUpKbps: UInt64 = 0
    public var bandwidthDownKbps: UInt64 = 0
    public var cpuCores: UInt32 = 0
    public var maxSessions: UInt32 = 0
    public init(bandwidthUpKbps: UInt64 = 0, bandwidthDownKbps: UInt64 = 0, cpuCores: UInt32 = 0, maxSessions: UInt32 = 0) {
        self.bandwidthUpKbps = bandwidthUpKbps
        self.bandwidthDownKbps = bandwidthDownKbps
        self.cpuCores = cpuCores
        self.maxSessions = maxSessions
    }
}

public struct Load: Hashable, Sendable, Codable {
    public var activeSessions: UInt32 = 0
    public var cpuPermille: UInt32 = 0
    public var bandwidthUpUsedKbps: UInt64 = 0
    public var bandwidthDownUsedKbps: UInt64 = 0
    public init(activeSessions: UInt32 = 0, cpuPermille: UInt32 = 0, bandwidthUpUsedKbps: UInt64 = 0, bandwidthDownUsedKbps: UInt64 = 0) {
        self.activeSessions = activeSessions
        self.cpuPermille = cpuPermille
        self.bandwidthUpUsedKbps = bandwidthUpUsedKbps
        self.bandwidthDownUsedKbps = bandwidthDownUsedKbps
    }
}

public enum NodeStatus: String, Sendable, Codable {
    case active
    /// A signed tombstone: the owner left gracefully.
    case leaving
}

/// A media node's registry entry (whitepaper 4.2.3.1 NodePayload plus mesh, capacity, load,
/// liveness and clock fields). The wire form is `Specs/registry.proto`.
public struct MediaNodeRecord: Hashable, Sendable {
    public var nodeID: PeerID
    public var region: String
    public var geo: GeoPoint?
    public var url: String
    public var discoveryURL: String
    public var ip: String
    public var metricsURL: String
    public var publicKey: LibP2PPublicKey
    public var version: String
    public var multiaddrs: [String]
    public var capacity: Capacity
    public var load: Load
    public var status: NodeStatus
    public var hlc: HLC
    public var refreshIntervalSeconds: UInt32
    public var ttlSeconds: UInt32

    public static let defaultRefreshIntervalSeconds: UInt32 = 30
    public static let defaultTTLSeconds: UInt32 = 90

    public init(
        publicKey: LibP2PPublicKey, region: String, geo: GeoPoint? = nil, url: String = "",
        discoveryURL: String = "", ip: String = "", metricsURL: String = "", version: String = "",
        multiaddrs: [String] = [], capacity: Capacity = Capacity(), load: Load = Load(),
        status: NodeStatus = .active, hlc: HLC = .zero,
        refreshIntervalSeconds: UInt32 = defaultRefreshIntervalSeconds, ttlSeconds: UInt32 = defaultTTLSeconds
    ) {
        self.nodeID = PeerID(publicKey: publicKey)
        self.publicKey = publicKey
        self.region = region
        self.geo = geo
        self.url = url
        self.discoveryURL = discoveryURL
        self.ip = ip
        self.metricsURL = metricsURL
        self.version = version
        self.multiaddrs = multiaddrs
        self.capacity = capacity
        self.load = load
        self.status = status
        self.hlc = hlc
        self.refreshIntervalSeconds = refreshIntervalSeconds
        self.ttlSeconds = ttlSeconds
    }

    /// Share of capacity still free, in 0...1: one minus the most loaded of sessions, CPU and
    /// uplink. A dimension with no declared capacity does not constrain.
    public var loadHeadroom: Double {
        var used = 0.0
        if capacity.maxSessions > 0 { used = max(used, Double(load.activeSessions) / Double(capacity.maxSessions)) }
        used = max(used, Double(load.cpuPermille) / 1000)
        if capacity.bandwidthUpKbps > 0 {
            used = max(used, Double(load.bandwidthUpUsedKbps) / Double(capacity.bandwidthUpKbps))
        }
        return max(0, 1 - min(used, 1))
    }

    var wire: WireRecord {
        var w = WireRecord()
        w.nodeID = nodeID.description
        w.region = region
        if let geo {
            var g = Drtc_Registry_V1_GeoPoint()
            g.latitude = geo.latitude
            g.longitude = geo.longitude
            w.geo = g
        }
        w.url = url
        w.discoveryURL = discoveryURL
        w.ip = ip
        w.metricsURL = metricsURL
        w.pubKey = Data(publicKey.protobufEncoding)
        w.version = version
        w.multiaddrs = multiaddrs
        var c = Drtc_Registry_V1_Capacity()
        c.bandwidthUpKbps = capacity.bandwidthUpKbps
        c.bandwidthDownKbps = capacity.bandwidthDownKbps
        c.cpuCores = capacity.cpuCores
        c.maxSessions = capacity.maxSessions
        w.capacity = c
        var l = Drtc_Registry_V1_Load()
        l.activeSessions = load.activeSessions
        l.cpuPermille = load.cpuPermille
        l.bandwidthUpUsedKbps = load.bandwidthUpUsedKbps
        l.bandwidthDownUsedKbps = load.bandwidthDownUsedKbps
        w.load = l
        w.status = status == .active ? .active : .leaving
        w.hlcWallMs = hlc.wallMs
        w.hlcLogical = hlc.logical
        w.refreshIntervalS = refreshIntervalSeconds
        w.ttlS = ttlSeconds
        return w
    }

    init(wire w: WireRecord) throws(RecordRejection) {
        guard let id = try? PeerID(w.nodeID) else { throw .malformed("node_id is not a PeerID") }
        guard let key = try? LibP2PPublicKey(protobuf: Array(w.pubKey)) else {
            throw .malformed("pub_key is not a libp2p PublicKey protobuf")
        }
        guard key.type == .ed25519 else { throw .malformed("pub_key must be Ed25519") }
        guard id.matches(key) else { throw .keyMismatch }
        let status: NodeStatus
        switch w.status {
        case .active: status = .active
        case .leaving: status = .leaving
        default: throw .malformed("status must be ACTIVE or LEAVING")
        }
        self.nodeID = id
        self.publicKey = key
        self.region = w.region
        self.geo = w.hasGeo ? GeoPoint(latitude: w.geo.latitude, longitude: w.geo.longitude) : nil
        self.url = w.url
        self.discoveryURL = w.discoveryURL
        self.ip = w.ip
        self.metricsURL = w.metricsURL
        self.version = w.version
        self.multiaddrs = w.multiaddrs
        self.capacity = Capacity(
            bandwidthUpKbps: w.capacity.bandwidthUpKbps, bandwidthDownKbps: w.capacity.bandwidthDownKbps,
            cpuCores: w.capacity.cpuCores, maxSessions: w.capacity.maxSessions)
        self.load = Load(
            activeSessions: w.load.activeSessions, cpuPermille: w.load.cpuPermille,
            bandwidthUpUsedKbps: w.load.bandwidthUpUsedKbps, bandwidthDownUsedKbps: w.load.bandwidthDownUsedKbps)
        self.status = status
        self.hlc = HLC(wallMs: w.hlcWallMs, logical: w.hlcLogical)
        self.refreshIntervalSeconds = w.refreshIntervalS
        self.ttlSeconds = w.ttlS
        try validateFields()
    }

    /// Limits that keep one record small and its numbers meaningful.
    func validateFields() throws(RecordRejection) {
        if let geo, !geo.isValid { throw .malformed("geo out of range (lat -90..90, lon -180..180)") }
        guard region.utf8.count <= 16 else { throw .malformed("region longer than 16 bytes") }
        for (name, value) in [("url", url), ("discovery_url", discoveryURL), ("ip", ip), ("metrics_url", metricsURL), ("version", version)]
        where value.utf8.count > 512 {
            throw .malformed("\(name) longer than 512 bytes")
        }
        guard multiaddrs.count <= 32, multiaddrs.allSatisfy({ $0.utf8.count <= 512 }) else {
            throw .malformed("at most 32 multiaddrs of at most 512 bytes each")
        }
        guard load.cpuPermille <= 1000 else { throw .malformed("load.cpu_permille must be 0..1000") }
        guard (1...86_400).contains(refreshIntervalSeconds) else {
            throw .malformed("refresh_interval_s must be 1..86400")
        }
        guard ttlSeconds >= refreshIntervalSeconds, ttlSeconds <= 7 * 86_400 else {
            throw .malformed("ttl_s must be at least refresh_interval_s and at most 7 days")
        }
    }

    /// Signs this record with its owner's key. The key must be the record's own.
    public func signed(with key: Ed25519KeyPair) throws -> SignedRecord {
        precondition(key.publicKey == publicKey, "a record can only be signed by its owner's key")
        do { try validateFields() } catch { throw error }
        let body = try Array(wire.serializedBytes() as [UInt8])
        let signature = key.sign(SignedRecord.signingPrefix + body)
        return SignedRecord(record: self, body: body, signature: signature)
    }
}

/// Why a record was refused. Every rejection is counted by reason (`drtc_registry_merges_rejected_total`).
public enum RecordRejection: Error, Hashable, Sendable, CustomStringConvertible {
    case malformed(String)
    /// `node_id` is not the PeerID of `pub_key`: someone tried to write another node's entry.
    case keyMismatch
    case badSignature
    /// Stamped more than the allowed skew into the future.
    case futureTimestamp
    case tooLarge

    /// Stable label for metrics.
    public var reason: String {
        switch self {
        case .malformed: return "malformed"
        case .keyMismatch: return "key_mismatch"
        case .badSignature: return "bad_signature"
        case .futureTimestamp: return "future_timestamp"
        case .tooLarge: return "too_large"
        }
    }

    public var description: String {
        switch self {
        case .malformed(let why): return "malformed record: \(why)"
        case .keyMismatch: return "node_id is not the PeerID of pub_key"
        case .badSignature: return "signature does not verify against pub_key"
        case .futureTimestamp: return "hlc_wall_ms is more than \(ClockSkew.toleranceMs / 60_000) min in the future"
        case .tooLarge: return "signed record larger than \(SignedRecord.maxEncodedSize) bytes"
        }
    }
}

/// The `{ bytes body = 1; bytes signature = 2; }` envelope every drtc signed message uses
/// (`SignedMediaNodeRecord`, `SignedQosBundle`), encoded canonically.
public enum SignedEnvelope {
    public static func encode(body: [UInt8], signature: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x0a]
        ProtoVarint.append(UInt64(body.count), to: &out)
        out += body
        out.append(0x12)
        ProtoVarint.append(UInt64(signature.count), to: &out)
        out += signature
        return out
    }
}

/// A record together with the exact bytes its owner signed. Immutable and shared: tables in
/// many replicas (the simulator runs thousands) hold references to one instance.
public final class SignedRecord: Sendable, Hashable {
    public static let signingPrefix = Array("drtc-registry-record:".utf8)
    public static let maxEncodedSize = 16 * 1024
    /// Records stamped further than this into the future are refused: the skew bound
    /// (Specs/registry.md "Clocks").
    public static let maxFutureSkewMs = UInt64(ClockSkew.toleranceMs)

    public let record: MediaNodeRecord
    public let body: [UInt8]
    public let signature: [UInt8]
    /// The item this record is in set reconciliation (Specs/registry-sync.md): the first 16
    /// bytes of SHA-256 over the encoded `SignedMediaNodeRecord`.
    public let syncID: SyncID
    /// `record.geo` on the unit sphere, placed once: distance queries need no trigonometry.
    public let position: SpherePosition?
    /// The `SignedMediaNodeRecord` protobuf, encoded once: every sync snapshot holds the
    /// encoding of every record of its table (a simulator at 50,000 peers built thousands, each
    /// re-encoding 50,000 records), and gossip and storage write it again.
    public let encoded: [UInt8]

    init(record: MediaNodeRecord, body: [UInt8], signature: [UInt8]) {
        self.record = record
        self.body = body
        self.signature = signature
        self.encoded = Self.encode(body: body, signature: signature)
        self.syncID = SyncID(digestOf: encoded)
        self.position = record.geo.map(SpherePosition.init)
    }

    public var nodeID: PeerID { record.nodeID }
    public var hlc: HLC { record.hlc }

    static func encode(body: [UInt8], signature: [UInt8]) -> [UInt8] { SignedEnvelope.encode(body: body, signature: signature) }

    /// Decodes and verifies a `SignedMediaNodeRecord`: structure, key ↔ node_id binding,
    /// signature, field limits and clock skew. Pure; safe to call from any thread.
    public static func verify(encoded bytes: [UInt8], nowMs: UInt64) throws(RecordRejection) -> SignedRecord {
        guard bytes.count <= maxEncodedSize else { throw .tooLarge }
        let envelope: WireSignedRecord
        do { envelope = try WireSignedRecord(serializedBytes: bytes) } catch {
            throw .malformed("not a SignedMediaNodeRecord protobuf")
        }
        return try verify(body: Array(envelope.body), signature: Array(envelope.signature), nowMs: nowMs)
    }

    public static func verify(body: [UInt8], signature: [UInt8], nowMs: UInt64) throws(RecordRejection) -> SignedRecord {
        guard signature.count == Ed25519.signatureLength else { throw .malformed("signature must be 64 bytes") }
        let wire: WireRecord
        do { wire = try WireRecord(serializedBytes: body) } catch { throw .malformed("body is not a MediaNodeRecord protobuf") }
        let record = try MediaNodeRecord(wire: wire)
        guard record.publicKey.verify(signature: signature, message: signingPrefix + body) else { throw .badSignature }
        guard record.hlc.wallMs <= nowMs &+ maxFutureSkewMs else { throw .futureTimestamp }
        return SignedRecord(record: record, body: body, signature: signature)
    }

    /// Re-reads a record that this node verified before (from its own store); still checks
    /// the signature, so a damaged database cannot inject entries.
    public static func reload(encoded bytes: [UInt8]) throws(RecordRejection) -> SignedRecord {
        try verify(encoded: bytes, nowMs: .max - maxFutureSkewMs)
    }

    /// LWW order: (HLC, signature bytes).
    public func supersedes(_ other: SignedRecord) -> Bool {
        if hlc != other.hlc { return hlc > other.hlc }
        return other.signature.lexicographicallyPrecedes(signature)
    }

    public static func == (a: SignedRecord, b: SignedRecord) -> Bool {
        a.signature == b.signature && a.body == b.body
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(signature) }

    /// Expiry instant (ms): the owner's promised TTL after its timestamp.
    public var expiresAtMs: UInt64 { hlc.wallMs &+ UInt64(record.ttlSeconds) * 1000 }

    public func isLive(nowMs: UInt64) -> Bool {
        record.status == .active && nowMs < expiresAtMs
    }

    /// Past the GC horizon: older than `horizonMs` and past its own TTL, so a record whose owner
    /// promised a TTL longer than the horizon is never collected while it is live.
    public func isGarbage(nowMs: UInt64, horizonMs: UInt64) -> Bool {
        max(expiresAtMs, hlc.wallMs &+ horizonMs) < nowMs
    }
}
