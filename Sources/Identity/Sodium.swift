import CSodium

/// libsodium must be initialised once before any other call; `sodium_init` is itself
/// thread-safe and idempotent, so a lazily evaluated global is enough.
enum Sodium {
    static let initialised: Bool = {
        sodium_init() >= 0
    }()

    static func ensureInitialised() {
        precondition(initialised, "libsodium failed to initialise (sodium_init < 0)")
    }
}

/// SHA-256 through libsodium.
public enum SHA256 {
    public static func hash<Bytes: Collection>(_ data: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        Sodium.ensureInitialised()
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        let input = Array(data)
        _ = input.withUnsafeBufferPointer { inp in
            crypto_hash_sha256(&out, inp.baseAddress, UInt64(inp.count))
        }
        return out
    }

    /// Incremental hashing, for digests over many small pieces.
    public struct Hasher {
        private var state = crypto_hash_sha256_state()

        public init() {
            Sodium.ensureInitialised()
            crypto_hash_sha256_init(&state)
        }

        public mutating func update<Bytes: Collection>(_ data: Bytes) where Bytes.Element == UInt8 {
            let input = Array(data)
            input.withUnsafeBufferPointer { inp in
                _ = crypto_hash_sha256_update(&state, inp.baseAddress, UInt64(inp.count))
            }
        }

        public mutating func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
            crypto_hash_sha256_final(&state, &out)
            return out
        }
    }
}

/// Cryptographically secure random bytes (libsodium `randombytes_buf`).
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    Sodium.ensureInitialised()
    var out = [UInt8](repeating: 0, count: count)
    if count > 0 { out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) } }
    return out
}
