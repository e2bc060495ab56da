import Identity
@testable import Registry


let baseMs: UInt64 = 1_800_000_000_000

func makeRecord(
    _ key: Ed25519KeyPair, wall: UInt64 = baseMs, logical: UInt32 = 0, region: String = "EU", geo: GeoPoint? = nil,
    sessions: UInt32 = 0, maxSessions: UInt32 = 0, status: NodeStatus = .active, ttl: UInt32 = 90
) -> SignedRecord {
    let record = MediaNodeRecord(
        publicKey: key.publicKey, region: region, geo: geo, url: "http://n", version: "test",
        capacity: Capacity(maxSessions: maxSessions), load: Load(activeSessions: sessions), status: status,
        hlc: HLC(wallMs: wall, logical: logical), refreshIntervalSeconds: min(30, ttl), ttlSeconds: ttl)
    return try! record.signed(with: key)
}
