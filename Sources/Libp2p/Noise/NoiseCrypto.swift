import CSodium
import Identity

// The crypto functions of Noise_XX_25519_ChaChaPoly_SHA256 (Noise rev 34 §4, §12), all through
// libsodium. Nothing here knows about handshakes; `NoiseCipherState` and friends build on it.

/// libsodium must be initialised before first use. `sodium_init` is thread-safe and idempotent,
/// and Identity keeps its own guard internal, so this module evaluates its own lazy global.
enum NoiseSodium {
    static let initialised: Bool = sodium_init() >= 0

    static func ensureInitialised() {
        precondition(initialised, "libsodium failed to initialise (sodium_init < 0)")
    }
}

// MARK: - 25519 DH functions (Noise §4.1, §12.1; RFC 7748)

/// A Curve25519 key pair for Noise's `25519` DH functions: a node's static Noise key or a
/// handshake's ephemeral key.
///
/// The libp2p noise spec lets the static key live per node or per connection, and says it
/// SHOULD NOT be written to disk, so the private key is deliberately not public API.
public struct X25519KeyPair: Sendable, CustomStringConvertible {
    /// `DHLEN` (Noise §12.1): public keys, private keys and DH outputs are all 32 bytes.
    public static let keyLength = 32

    /// The 32-byte scalar as given; X25519 clamps it at every use (RFC 7748 §5).
    let privateKey: [UInt8]
    /// The 32-byte u-coordinate, as sent in the `e` and `s` handshake tokens.
    public let publicKey: [UInt8]

    /// Derives the public key for a 32-byte private key.
    public init(privateKey: [UInt8]) throws(NoiseError) {
        guard privateKey.count == Self.keyLength else {
            throw .invalidKeyLength(what: "X25519 private key", expected: Self.keyLength, actual: privateKey.count)
        }
        NoiseSodium.ensureInitialised()
        var publicKey = [UInt8](repeating: 0, count: Self.keyLength)
        let rc = crypto_scalarmult_curve25519_base(&publicKey, privateKey)
        // Only an all-zero result fails, which a clamped scalar times the base point cannot give.
        guard rc == 0 else { throw .sodiumFailure(function: "crypto_scalarmult_curve25519_base", code: rc) }
        self.privateKey = privateKey
        self.publicKey = publicKey
    }

    /// `GENERATE_KEYPAIR()`: a private key of 32 bytes from the CSPRNG.
    public static func generate() -> X25519KeyPair {
        do {
            return try X25519KeyPair(privateKey: secureRandomBytes(keyLength))
        } catch {
            preconditionFailure("X25519 key generation from 32 random bytes cannot fail: \(error)")
        }
    }

    /// `DH(key_pair, public_key)`.
    ///
    /// Noise §12.1 allows signalling an error instead of returning the all-zero output that
    /// low-order (invalid) public keys produce; libsodium does so, and so do we: a peer that
    /// sends such a key is broken or hostile, and continuing would only fail later.
    public func dh(_ remotePublicKey: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard remotePublicKey.count == Self.keyLength else {
            throw .invalidKeyLength(what: "X25519 public key", expected: Self.keyLength, actual: remotePublicKey.count)
        }
        var shared = [UInt8](repeating: 0, count: Self.keyLength)
        guard crypto_scalarmult_curve25519(&shared, privateKey, remotePublicKey) == 0 else {
            throw .lowOrderPublicKey(remotePublicKey)
        }
        return shared
    }

    /// Shows the public key only, so that logging a key pair never leaks the private half.
    public var description: String { "X25519KeyPair(public: \(Hex.encode(publicKey)))" }
}

// MARK: - ChaChaPoly cipher functions (Noise §4.2, §12.3; RFC 7539)

/// `ENCRYPT`/`DECRYPT` for ChaChaPoly: AEAD_CHACHA20_POLY1305 with libsodium's IETF variant.
enum ChaChaPoly {
    static let keyLength = 32
    /// Every ciphertext is the plaintext plus this 16-byte Poly1305 tag (Noise §4.2).
    static let tagLength = 16

    /// Noise §12.3: the 96-bit nonce is 32 bits of zeros followed by the little-endian `n`.
    static func nonce(_ n: UInt64) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { nonce[4 + i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }
        return nonce
    }

    static func encrypt(key: [UInt8], nonce n: UInt64, ad: [UInt8], plaintext: [UInt8]) -> [UInt8] {
        precondition(key.count == keyLength, "ChaChaPoly key must be 32 bytes")
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + tagLength)
        var ciphertextLength: UInt64 = 0
        let rc = crypto_aead_chacha20poly1305_ietf_encrypt(
            &ciphertext, &ciphertextLength,
            plaintext, UInt64(plaintext.count),
            ad, UInt64(ad.count),
            nil, nonce(n), key)
        // libsodium's encrypt only fails for messages longer than 2^38 bytes; ours are < 64 KiB.
        precondition(rc == 0 && ciphertextLength == UInt64(ciphertext.count), "crypto_aead_chacha20poly1305_ietf_encrypt failed")
        return ciphertext
    }

    /// Returns nil if the tag does not authenticate `ciphertext` and `ad` under `key` and `n`.
    static func decrypt(key: [UInt8], nonce n: UInt64, ad: [UInt8], ciphertext: [UInt8]) -> [UInt8]? {
        precondition(key.count == keyLength, "ChaChaPoly key must be 32 bytes")
        guard ciphertext.count >= tagLength else { return nil }
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count - tagLength)
        var plaintextLength: UInt64 = 0
        let rc = crypto_aead_chacha20poly1305_ietf_decrypt(
            &plaintext, &plaintextLength,
            nil,
            ciphertext, UInt64(ciphertext.count),
            ad, UInt64(ad.count),
            nonce(n), key)
        guard rc == 0 else { return nil }
        return plaintext
    }
}

// MARK: - SHA256 hash functions (Noise §4.3, §12.5)

/// `HASH`, `HMAC-HASH` and `HKDF` for Noise's `SHA256` (HASHLEN 32, BLOCKLEN 64).
enum NoiseHash {
    /// `HASHLEN`.
    static let length = 32

    /// `HASH(a || b)` without building the concatenation.
    static func hash(_ a: [UInt8], _ b: [UInt8] = []) -> [UInt8] {
        var hasher = SHA256.Hasher()
        hasher.update(a)
        hasher.update(b)
        return hasher.finalize()
    }

    /// `HMAC-HASH(key, a || b)` (RFC 2104 with SHA-256), via libsodium's `crypto_auth_hmacsha256`
    /// incremental API, which accepts keys of any length.
    static func hmac(key: [UInt8], _ a: [UInt8], _ b: [UInt8] = []) -> [UInt8] {
        NoiseSodium.ensureInitialised()
        var state = crypto_auth_hmacsha256_state()
        var mac = [UInt8](repeating: 0, count: Int(crypto_auth_hmacsha256_BYTES))
        _ = crypto_auth_hmacsha256_init(&state, key, key.count)
        _ = crypto_auth_hmacsha256_update(&state, a, UInt64(a.count))
        _ = crypto_auth_hmacsha256_update(&state, b, UInt64(b.count))
        _ = crypto_auth_hmacsha256_final(&state, &mac)
        return mac
    }

    /// `HKDF(chaining_key, input_key_material, 2)` (Noise §4.3), i.e. RFC 5869 HKDF with the
    /// chaining key as salt and empty info. The three-output form is only used by PSK
    /// handshakes (`MixKeyAndHash`), which libp2p does not use.
    static func hkdf(chainingKey: [UInt8], inputKeyMaterial: [UInt8]) -> ([UInt8], [UInt8]) {
        let tempKey = hmac(key: chainingKey, inputKeyMaterial)
        let output1 = hmac(key: tempKey, [0x01])
        let output2 = hmac(key: tempKey, output1, [0x02])
        return (output1, output2)
    }
}
