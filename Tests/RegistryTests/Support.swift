import Identity
@testable import Registry

/// A deterministic PRNG (SplitMix64) so property tests can be replayed from their seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

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
