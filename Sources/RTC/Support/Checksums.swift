import COpenSSL

/// CRC-32 (ISO-HDLC / IEEE 802.3, reflected polynomial 0xEDB88320), as used by STUN
/// FINGERPRINT (RFC 8489 §14.7, which cites ITU-T V.42 / ISO 3309).
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum<C: Sequence>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }
}

/// HMAC-SHA1 through OpenSSL's one-shot `HMAC()` (RFC 2104), for STUN MESSAGE-INTEGRITY
/// (RFC 8489 §14.5).
enum HMACSHA1 {
    static let size = 20

    /// The 20-byte MAC of `data` under `key`. If OpenSSL fails (allocation failure; it does not
    /// depend on the input) the result is all zeros, which no peer will accept, rather than a trap.
    static func authenticate(_ data: ArraySlice<UInt8>, key: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        guard key.count <= Int(Int32.max) else { return out }
        var outLength: UInt32 = 0
        let ok = key.withUnsafeBytes { keyBuffer in
            data.withUnsafeBytes { dataBuffer in
                out.withUnsafeMutableBytes { outBuffer in
                    HMAC(EVP_sha1(), keyBuffer.baseAddress, Int32(key.count),
                         dataBuffer.baseAddress?.assumingMemoryBound(to: UInt8.self), dataBuffer.count,
                         outBuffer.baseAddress?.assumingMemoryBound(to: UInt8.self), &outLength) != nil
                }
            }
        }
        guard ok, outLength == UInt32(size) else { return [UInt8](repeating: 0, count: size) }
        return out
    }

    /// Compares two MACs without an early exit, so timing does not reveal how many bytes matched.
    static func constantTimeEqual(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0
    }
}
