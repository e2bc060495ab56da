import CSodium

/// SHA-512 through libsodium.
public enum SHA512 {
    public static func hash<Bytes: Collection>(_ data: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        Sodium.ensureInitialised()
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha512_BYTES))
        let input = Array(data)
        _ = input.withUnsafeBufferPointer { crypto_hash_sha512(&out, $0.baseAddress, UInt64($0.count)) }
        return out
    }
}

/// ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381 §5, suite string 0x03): a verifiable random
/// function over an Ed25519 identity key. Only the key's owner can compute `β = VRF(key, α)`;
/// anyone holding the public key can check it from the 80-byte proof, and there is exactly one
/// valid β per (key, α) — a key owner cannot choose among outputs. drtc's QoS tickets use it
/// (Specs/qos.md "Assignment").
///
/// Built on libsodium 1.0.18's edwards25519 primitives. Verification is stricter than the RFC
/// in one respect, and only for proofs no honest prover makes: Γ and the public key must lie in
/// the prime-order subgroup (libsodium's `crypto_scalarmult_ed25519_noclamp` refuses other
/// points); an honest Γ = x·H always does.
public enum ECVRF {
    public static let proofLength = 80
    public static let outputLength = 64

    static let suite: UInt8 = 0x03
    /// The group order L = 2^252 + 27742317777372353535851937790883648493, little endian.
    static let order: [UInt8] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ]
    static let identity: [UInt8] = [1] + [UInt8](repeating: 0, count: 31)

    /// The proof π = Γ ‖ c ‖ s (RFC 9381 §5.1) of `alpha` under `key`.
    public static func prove(_ alpha: [UInt8], key: Ed25519KeyPair) -> [UInt8] {
        Sodium.ensureInitialised()
        let hashedSK = SHA512.hash(key.seed)
        var x = Array(hashedSK[0..<32])
        x[0] &= 248
        x[31] &= 127
        x[31] |= 64
        let y = key.publicKeyBytes
        // Encoding a hash as a point only fails with probability ~2^-128 per key and α.
        let h = encodeToCurve(publicKey: y, alpha: alpha)!
        let k = reduce(SHA512.hash(Array(hashedSK[32..<64]) + h))
        let gamma = multiply(x, h)!
        let kB = baseMultiply(k)!
        let kH = multiply(k, h)!
        let c = challenge(y, h, gamma, kB, kH)
        var cx = [UInt8](repeating: 0, count: 32)
        crypto_core_ed25519_scalar_mul(&cx, c + [UInt8](repeating: 0, count: 16), x)
        var s = [UInt8](repeating: 0, count: 32)
        crypto_core_ed25519_scalar_add(&s, k, cx)
        return gamma + c + s
    }

    /// β for a proof that verifies under `publicKey` (32 bytes) and `alpha`; nil when it does
    /// not (RFC 9381 §5.3).
    public static func verify(proof: [UInt8], publicKey y: [UInt8], alpha: [UInt8]) -> [UInt8]? {
        Sodium.ensureInitialised()
        guard proof.count == proofLength, y.count == 32 else { return nil }
        let gamma = Array(proof[0..<32])
        let c = Array(proof[32..<48])
        let s = Array(proof[48..<80])
        guard isBelowOrder(s), let h = encodeToCurve(publicKey: y, alpha: alpha) else { return nil }
        let c32 = c + [UInt8](repeating: 0, count: 16)
        // U = s·B − c·Y, V = s·H − c·Γ.
        guard let sB = baseMultiply(s), let cY = multiply(c32, y), let u = subtract(sB, cY),
              let sH = multiply(s, h), let cG = multiply(c32, gamma), let v = subtract(sH, cG)
        else { return nil }
        guard challenge(y, h, gamma, u, v) == c else { return nil }
        return proofToHash(gamma: gamma)
    }

    /// β from a proof whose validity is already established (RFC 9381 §5.2).
    static func proofToHash(gamma: [UInt8]) -> [UInt8]? {
        guard let g8 = timesCofactor(gamma) else { return nil }
        return SHA512.hash([suite, 0x03] + g8 + [0x00])
    }

    /// ECVRF_encode_to_curve_try_and_increment (RFC 9381 §5.4.1.1), salted with the public key.
    static func encodeToCurve(publicKey: [UInt8], alpha: [UInt8]) -> [UInt8]? {
        for ctr in 0...255 {
            let candidate = Array(SHA512.hash([suite, 0x01] + publicKey + alpha + [UInt8(ctr), 0x00]).prefix(32))
            guard isCanonicalPoint(candidate), let h = timesCofactor(candidate), h != identity else { continue }
            return h
        }
        return nil
    }

    /// 8·P by three doublings. `crypto_core_ed25519_add` decodes any point on the curve
    /// (torsion included); it fails for strings that are not points.
    static func timesCofactor(_ p: [UInt8]) -> [UInt8]? {
        var q = p
        for _ in 0..<3 {
            var r = [UInt8](repeating: 0, count: 32)
            guard crypto_core_ed25519_add(&r, q, q) == 0 else { return nil }
            q = r
        }
        return q
    }

    /// RFC 8032 §5.1.3 rejects y ≥ p and x = 0 with the sign bit set; libsodium's decoder
    /// accepts both, so they are refused here.
    static func isCanonicalPoint(_ s: [UInt8]) -> Bool {
        var y = s
        let sign = y[31] >> 7
        y[31] &= 0x7f
        // y ≥ p = 2^255 − 19 ⟺ bytes 1…30 are 0xff, byte 31 is 0x7f and byte 0 ≥ 0xed.
        if y[31] == 0x7f && y[1..<31].allSatisfy({ $0 == 0xff }) && y[0] >= 0xed { return false }
        if sign == 1 {
            // x = 0 exactly for y = 1 and y = p − 1.
            let one = y == identity
            let minusOne = y[0] == 0xec && y[1..<31].allSatisfy({ $0 == 0xff }) && y[31] == 0x7f
            if one || minusOne { return false }
        }
        return true
    }

    static func isBelowOrder(_ s: [UInt8]) -> Bool {
        for i in stride(from: 31, through: 0, by: -1) where s[i] != order[i] {
            return s[i] < order[i]
        }
        return false
    }

    static func challenge(_ points: [UInt8]...) -> [UInt8] {
        var input: [UInt8] = [suite, 0x02]
        for p in points { input += p }
        input.append(0x00)
        return Array(SHA512.hash(input).prefix(16))
    }

    static func reduce(_ wide: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        crypto_core_ed25519_scalar_reduce(&out, wide)
        return out
    }

    static func multiply(_ scalar: [UInt8], _ point: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        return crypto_scalarmult_ed25519_noclamp(&out, scalar, point) == 0 ? out : nil
    }

    static func baseMultiply(_ scalar: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        return crypto_scalarmult_ed25519_base_noclamp(&out, scalar) == 0 ? out : nil
    }

    static func subtract(_ a: [UInt8], _ b: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        return crypto_core_ed25519_sub(&out, a, b) == 0 ? out : nil
    }
}
