/// How often a node republishes its record, and how long peers keep it, as the table grows
/// (Specs/gossip.md "Liveness").
///
/// Every refresh is delivered to every peer, so a mesh of N nodes refreshing every T seconds
/// carries N/T records per second through each peer. Up to `smallMesh` nodes the configured
/// interval applies; beyond it the interval grows linearly with N, which holds the per-peer
/// refresh rate at `smallMesh / base` (128 / 30 s ≈ 4.3 records/s, about 13 kB/s with
/// gossip overhead) whatever the size. Consul's anti-entropy scales the same way past 128
/// nodes, but logarithmically; a log rule would let traffic grow with N, a linear one does not.
/// The TTL keeps the configured TTL/interval ratio (default 3: two refreshes may be lost).
/// Both values travel in the record, so every replica applies what the owner promised.
public enum LivenessRule {
    public static let smallMesh = 128
    /// Upper bound on the interval (6 h, reached at 92,160 nodes with the 30 s base): up to there
    /// the per-peer load stays constant; a crashed node disappears at most 18 h after its last
    /// word (graceful leaves at once; QoS tests notice a dead node long before).
    public static let maxIntervalSeconds: UInt32 = 21_600

    /// (refresh interval, TTL) in seconds for a table with `liveRecords` live records.
    public static func schedule(baseInterval: UInt32, baseTTL: UInt32, liveRecords: Int) -> (interval: UInt32, ttl: UInt32) {
        let base = max(1, baseInterval)
        let scaled = (UInt64(base) * UInt64(max(liveRecords, 1)) + UInt64(smallMesh) - 1) / UInt64(smallMesh)
        let interval = UInt32(min(UInt64(max(base, maxIntervalSeconds)), max(UInt64(base), scaled)))
        let ratio = max(1.0, Double(baseTTL) / Double(base))
        let ttl = UInt32(min(Double(UInt32.max / 2), (Double(interval) * ratio).rounded(.up)))
        return (interval, ttl)
    }
}
