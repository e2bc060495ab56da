import COpenSSL

/// SRTP protect (outbound RTP only) for SRTP_AES128_CM_SHA1_80 on OpenSSL's EVP (AES-NI,
/// SHA-NI), as an alternative fast path: Debian's libsrtp2 is built on NSS, whose per-packet
/// HMAC-SHA1 makes this profile several times slower than AES-GCM (see `srtp-bench`).
/// Verified byte-exact against libsrtp (`RTCSecurityTests`).
///
/// Implements RFC 3711 §4.3 key derivation (KDR = 0), §4.1.1 AES-CM keystream with
/// IV = (k_s·2^16) ⊕ (SSRC·2^64) ⊕ (i·2^16), and §4.2 HMAC-SHA1 over header ‖ payload ‖ ROC,
/// truncated to 80 bits. Like libsrtp's `ssrc_any_outbound`, it keeps a rollover counter per SSRC.
///
/// Experimental: protect only; no SRTCP, no MKI, no header-extension encryption. Not thread-safe.
public final class OpenSSLSRTPProtector {
    private let cipher: OpaquePointer  // EVP_CIPHER_CTX *
    private let mac: OpaquePointer  // EVP_MAC_CTX *
    private let macAlgorithm: OpaquePointer  // EVP_MAC *
    private var sessionSalt: (UInt64, UInt64) = (0, 0)  // 14 bytes, big-endian, left-aligned in 16
    private var streams: [UInt32: (roc: UInt32, highestSequence: UInt16)] = [:]

    public static let tagLength = 10

    public init(key: [UInt8], salt: [UInt8]) throws(SRTPError) {
        guard key.count == 16, salt.count == 14 else {
            throw SRTPError(.invalidKey, "AES128_CM_SHA1_80: expected a 16-byte key and 14-byte salt, got \(key.count) and \(salt.count)")
        }
        ERR_clear_error()
        guard let cipher = EVP_CIPHER_CTX_new() else {
            throw SRTPError(.invalidKey, openSSLErrorString("EVP_CIPHER_CTX_new failed"))
        }
        guard let macAlgorithm = EVP_MAC_fetch(nil, "HMAC", nil) else {
            EVP_CIPHER_CTX_free(cipher)
            throw SRTPError(.invalidKey, openSSLErrorString("EVP_MAC_fetch(HMAC) failed"))
        }
        guard let mac = EVP_MAC_CTX_new(macAlgorithm) else {
            EVP_MAC_free(macAlgorithm)
            EVP_CIPHER_CTX_free(cipher)
            throw SRTPError(.invalidKey, openSSLErrorString("EVP_MAC_CTX_new failed"))
        }
        self.cipher = cipher
        self.macAlgorithm = macAlgorithm
        self.mac = mac

        // RFC 3711 §4.3.1 with key_derivation_rate 0: x = label·2^48 ⊕ master_salt; the session
        // key is AES-CM(master key, x·2^16) truncated. Labels 0 (cipher key), 1 (auth key), 2 (salt).
        let derivedKey = try Self.derive(label: 0, length: 16, key: key, salt: salt)
        let authKey = try Self.derive(label: 1, length: 20, key: key, salt: salt)
        let derivedSalt = try Self.derive(label: 2, length: 14, key: key, salt: salt)
        guard EVP_EncryptInit_ex(cipher, EVP_aes_128_ctr(), nil, derivedKey, nil) == 1 else {
            throw SRTPError(.invalidKey, openSSLErrorString("EVP_EncryptInit_ex(aes-128-ctr) failed"))
        }
        // OSSL_PARAM keeps the pointers, so both strings must outlive EVP_MAC_init.
        var parameterName = Array("digest".utf8CString)
        var digestName = Array("SHA1".utf8CString)
        let macReady = parameterName.withUnsafeMutableBufferPointer { name in
            digestName.withUnsafeMutableBufferPointer { digest in
                var params = [
                    OSSL_PARAM_construct_utf8_string(name.baseAddress, digest.baseAddress, 0),
                    OSSL_PARAM_construct_end(),
                ]
                return EVP_MAC_init(mac, authKey, authKey.count, &params) == 1
            }
        }
        guard macReady else {
            throw SRTPError(.invalidKey, openSSLErrorString("EVP_MAC_init(HMAC-SHA1) failed"))
        }
        var s = derivedSalt + [0, 0]
        sessionSalt = (Self.bigEndian64(&s, 0), Self.bigEndian64(&s, 8))
    }

    deinit {
        EVP_MAC_CTX_free(mac)
        EVP_MAC_free(macAlgorithm)
        EVP_CIPHER_CTX_free(cipher)
    }

    /// Protects the RTP packet in `buffer[0..<length]` in place; returns the SRTP length
    /// (`length + 10`). `buffer.count` must be at least `length + 10`.
    public func protect(rtpInPlace buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        guard length >= 12, length <= buffer.count - Self.tagLength, let base = buffer.baseAddress,
            length < Int(Int32.max)
        else {
            throw SRTPError(.invalidInput, "protect: packet of \(length) bytes in a \(buffer.count)-byte buffer (need >= 12 and 10 spare)")
        }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        guard bytes[0] >> 6 == 2 else { throw SRTPError(.invalidInput, "protect: not RTP version 2") }
        // Header: 12 + 4·CC, plus the extension (4 + 4·length) when X is set (RFC 3550 §5.3.1).
        var headerLength = 12 + 4 * Int(bytes[0] & 0x0f)
        if bytes[0] & 0x10 != 0 {
            guard headerLength + 4 <= length else { throw SRTPError(.invalidInput, "protect: truncated header extension") }
            headerLength += 4 + 4 * (Int(bytes[headerLength + 2]) << 8 | Int(bytes[headerLength + 3]))
        }
        guard headerLength <= length else { throw SRTPError(.invalidInput, "protect: header longer than the packet") }
        let sequence = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        let ssrc = UInt32(bytes[8]) << 24 | UInt32(bytes[9]) << 16 | UInt32(bytes[10]) << 8 | UInt32(bytes[11])

        // Sender-side rollover counter (RFC 3711 §3.3.1): wraps when the sequence number jumps
        // back by more than half the space; an older sequence number (retransmission) keeps it.
        var roc: UInt32
        if let stream = streams[ssrc] {
            roc = stream.roc
            if sequence < stream.highestSequence && stream.highestSequence - sequence > 0x8000 {
                roc &+= 1
                streams[ssrc] = (roc, sequence)
            } else if sequence > stream.highestSequence && sequence - stream.highestSequence > 0x8000 && roc > 0 {
                roc &-= 1  // a late packet from before the last wrap
            } else if sequence > stream.highestSequence {
                streams[ssrc] = (roc, sequence)
            }
        } else {
            roc = 0
            streams[ssrc] = (0, sequence)
        }
        let index = UInt64(roc) << 16 | UInt64(sequence)

        // IV (16 bytes, block counter in the last 2): salt ⊕ SSRC<<64 ⊕ index<<16.
        let high = sessionSalt.0 ^ UInt64(ssrc)
        let low = sessionSalt.1 ^ (index << 16)
        var iv = (high.bigEndian, low.bigEndian)
        let payload = bytes + headerLength
        let payloadLength = Int32(length - headerLength)
        var outLength: Int32 = 0
        let ok = withUnsafeBytes(of: &iv) { ivBytes in
            EVP_EncryptInit_ex(cipher, nil, nil, nil, ivBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1
                && (payloadLength == 0 || EVP_EncryptUpdate(cipher, payload, &outLength, payload, payloadLength) == 1)
        }
        guard ok else { throw SRTPError(.libsrtp(.cipherFail), openSSLErrorString("AES-CM encryption failed")) }

        var rocBytes = roc.bigEndian
        var tag = (UInt64(0), UInt64(0), UInt32(0))  // 20 bytes
        var tagLength = 0
        let macOK = withUnsafeMutableBytes(of: &tag) { tagBytes in
            withUnsafeBytes(of: &rocBytes) { rocPointer in
                EVP_MAC_init(mac, nil, 0, nil) == 1
                    && EVP_MAC_update(mac, bytes, length) == 1
                    && EVP_MAC_update(mac, rocPointer.baseAddress!.assumingMemoryBound(to: UInt8.self), 4) == 1
                    && EVP_MAC_final(mac, tagBytes.baseAddress!.assumingMemoryBound(to: UInt8.self), &tagLength, 20) == 1
            }
        }
        guard macOK, tagLength == 20 else { throw SRTPError(.libsrtp(.authFail), openSSLErrorString("HMAC-SHA1 failed")) }
        withUnsafeBytes(of: &tag) { tagBytes in
            UnsafeMutableRawPointer(bytes + length).copyMemory(from: tagBytes.baseAddress!, byteCount: Self.tagLength)
        }
        return length + Self.tagLength
    }

    /// Copying convenience.
    public func protect(rtp: [UInt8]) throws(SRTPError) -> [UInt8] {
        var packet = rtp + [UInt8](repeating: 0, count: Self.tagLength)
        let result: Result<Int, SRTPError> = packet.withUnsafeMutableBytes { buffer in
            do throws(SRTPError) { return .success(try protect(rtpInPlace: buffer, length: rtp.count)) } catch { return .failure(error) }
        }
        return Array(packet[0..<(try result.get())])
    }

    private static func derive(label: UInt8, length: Int, key: [UInt8], salt: [UInt8]) throws(SRTPError) -> [UInt8] {
        var iv = salt + [0, 0]
        iv[7] ^= label  // label sits 48 bits above the end of the 112-bit salt
        let zeros = [UInt8](repeating: 0, count: (length + 15) / 16 * 16)
        var out = [UInt8](repeating: 0, count: zeros.count + 16)
        var outLength: Int32 = 0
        guard let ctx = EVP_CIPHER_CTX_new() else { throw SRTPError(.invalidKey, "EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        guard EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), nil, key, iv) == 1,
            EVP_EncryptUpdate(ctx, &out, &outLength, zeros, Int32(zeros.count)) == 1
        else { throw SRTPError(.invalidKey, openSSLErrorString("SRTP key derivation failed")) }
        return Array(out[0..<length])
    }

    private static func bigEndian64(_ b: inout [UInt8], _ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(b[at + i]) }
        return v
    }

    /// Session keys for tests (RFC 3711 Appendix B.3).
    static func sessionKeys(key: [UInt8], salt: [UInt8]) throws(SRTPError) -> (cipherKey: [UInt8], salt: [UInt8], authKey: [UInt8]) {
        (try derive(label: 0, length: 16, key: key, salt: salt), try derive(label: 2, length: 14, key: key, salt: salt),
         try derive(label: 1, length: 20, key: key, salt: salt))
    }
}
