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
}
