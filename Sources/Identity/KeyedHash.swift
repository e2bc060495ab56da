/// A per-process keyed hash of some bytes (Swift's randomly seeded SipHash), computed once and
/// stored by identifiers that are looked up often (`PeerID`, Gossipsub's `MessageID`): hashing
/// them is then one word, and equality can compare that word before the bytes. Keyed, so that
/// peers cannot choose identifiers that collide.
public enum KeyedHash {
    public static func of(_ bytes: [UInt8]) -> Int {
        var hasher = Hasher()
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        return hasher.finalize()
    }

    /// What a `Set` or `Dictionary` uses to place a value whose keyed hash is `fingerprint`
    /// (`Hashable._rawHashValue(seed:)`): the fingerprint mixed with the table's own seed by a
    /// bijective 64-bit finaliser (MurmurHash3's), instead of a fresh SipHash of one word per
    /// probe — three multiplications where `Hasher` took ~20 ns, on the simulator's hottest
    /// path (Specs/simulation.md "Hot path"). The fingerprint is already keyed, so the tables stay
    /// safe from chosen collisions; the per-table seed keeps the low bits of two tables'
    /// buckets unrelated (copying one table into a smaller one stays linear).
    @inline(__always)
    public static func tableHash(_ fingerprint: Int, seed: Int) -> Int {
        var x = UInt64(bitPattern: Int64(fingerprint)) ^ (UInt64(bitPattern: Int64(seed)) &* 0x9E37_79B9_7F4A_7C15)
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return Int(bitPattern: UInt(x))
    }
}
