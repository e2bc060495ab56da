import COpenSSL

/// SRTP for RTP packets on OpenSSL's EVP (AES-NI, SHA-NI, PCLMUL), for both profiles drtc
/// negotiates; `SRTPSession` uses it for every RTP packet and keeps libsrtp2 for SRTCP.
/// Debian's libsrtp2 is built on NSS, whose per-packet HMAC-SHA1 makes AES128_CM_SHA1_80
/// several times slower than AES-GCM, and whose GCM is slower than EVP's (see `drtc-bench srtp`).
/// Byte-exact with libsrtp2 and with RFC 3711 Appendix B (`EVPSRTPTests`).
///
/// - AES128_CM_SHA1_80 (RFC 3711): §4.3 key derivation (KDR 0), §4.1.1 AES-CM keystream with
///   IV = (k_s·2^16) ⊕ (SSRC·2^64) ⊕ (i·2^16), §4.2 HMAC-SHA1 over header ‖ payload ‖ ROC,
///   truncated to 80 bits; verified before anything is decrypted.
/// - AEAD_AES_128_GCM (RFC 7714): §8.1 IV = salt ⊕ (0^16 ‖ SSRC ‖ ROC ‖ SEQ), §8.2 the header
///   as associated data, a 16-byte tag; §11 keys from the same AES-CM KDF with the 96-bit salt.
///
/// Per SSRC (libsrtp's `ssrc_any_*` policies) it keeps the highest packet index seen and a
/// replay window, and estimates each packet's index (rollover counter ‖ sequence number) as
/// libsrtp does (RFC 3711 §3.3.1, Appendix A). Acceptance is libsrtp's too: inbound, a repeated
/// index is `replay_fail` and one older than the window `replay_old`; outbound, a repeated
/// index may be protected again (`allow_repeat_tx`, for retransmissions) but an older one may not.
/// Header extensions are authenticated, not encrypted (no RFC 6904); no MKI.
///
/// Not thread-safe: one owner at a time (the media event loop).
final class EVPSRTP {
    let profile: SRTPProfile
    let isOutbound: Bool
    private let cipher: OpaquePointer  // EVP_CIPHER_CTX *
    private let mac: OpaquePointer?  // EVP_MAC_CTX * (HMAC-SHA1, AES-CM only)
    private let macAlgorithm: OpaquePointer?  // EVP_MAC *
    /// The session salt, big-endian, left-aligned in 16 bytes (14 bytes AES-CM, 12 bytes GCM).
    private let sessionSalt: (UInt64, UInt64)
    private var streams: SRTPStreamTable

    static let ok = SRTPStatus(rawValue: 0)

    /// A context from the DTLS-exported master key and salt (RFC 3711 §4.3.1 / RFC 7714 §11:
    /// label 0 the cipher key, 1 the auth key, 2 the salt).
    convenience init(profile: SRTPProfile, key: [UInt8], salt: [UInt8], outbound: Bool, replayWindow: Int = 1024) throws(SRTPError) {
        guard key.count == profile.keyLength, salt.count == profile.saltLength else {
            throw SRTPError(.invalidKey, "\(profile): expected a \(profile.keyLength)-byte key and \(profile.saltLength)-byte salt, got \(key.count) and \(salt.count)")
        }
        try self.init(profile: profile, cipherKey: try Self.derive(label: 0, length: 16, key: key, salt: salt),
                      sessionSalt: try Self.derive(label: 2, length: profile.saltLength, key: key, salt: salt),
                      authKey: profile == .aes128CMSHA1_80 ? try Self.derive(label: 1, length: 20, key: key, salt: salt) : [],
                      outbound: outbound, replayWindow: replayWindow)
    }

    /// A context from session keys (the RFC 3711 Appendix B.2 vector starts here).
    init(profile: SRTPProfile, cipherKey: [UInt8], sessionSalt salt: [UInt8], authKey: [UInt8], outbound: Bool,
         replayWindow: Int = 1024) throws(SRTPError) {
        self.profile = profile
        self.isOutbound = outbound
        streams = SRTPStreamTable(window: replayWindow)
        let s = salt + [UInt8](repeating: 0, count: 16 - salt.count)
        sessionSalt = (Self.bigEndian64(s, 0), Self.bigEndian64(s, 8))
        ERR_clear_error()
        guard let cipher = EVP_CIPHER_CTX_new() else {
            throw SRTPError(.invalidKey, openSSLErrorString("EVP_CIPHER_CTX_new failed"))
        }
        self.cipher = cipher
        switch profile {
        case .aes128CMSHA1_80:
            guard let macAlgorithm = EVP_MAC_fetch(nil, "HMAC", nil) else {
                mac = nil
                macAlgorithm = nil
                throw SRTPError(.invalidKey, openSSLErrorString("EVP_MAC_fetch(HMAC) failed"))
            }
            self.macAlgorithm = macAlgorithm
            mac = EVP_MAC_CTX_new(macAlgorithm)
            guard let mac else { throw SRTPError(.invalidKey, openSSLErrorString("EVP_MAC_CTX_new failed")) }
            // CTR mode: encryption and decryption are the same keystream XOR.
            guard EVP_EncryptInit_ex(cipher, EVP_aes_128_ctr(), nil, cipherKey, nil) == 1 else {
                throw SRTPError(.invalidKey, openSSLErrorString("EVP_EncryptInit_ex(aes-128-ctr) failed"))
            }
            // OSSL_PARAM keeps the pointers, so both strings must outlive EVP_MAC_init.
            var parameterName = Array("digest".utf8CString)
            var digestName = Array("SHA1".utf8CString)
            let macReady = parameterName.withUnsafeMutableBufferPointer { name in
                digestName.withUnsafeMutableBufferPointer { digest in
                    var params = [OSSL_PARAM_construct_utf8_string(name.baseAddress, digest.baseAddress, 0), OSSL_PARAM_construct_end()]
                    return EVP_MAC_init(mac, authKey, authKey.count, &params) == 1
                }
            }
            guard macReady else { throw SRTPError(.invalidKey, openSSLErrorString("EVP_MAC_init(HMAC-SHA1) failed")) }
        case .aeadAES128GCM:
            mac = nil
            macAlgorithm = nil
            let ready = outbound
                ? EVP_EncryptInit_ex(cipher, EVP_aes_128_gcm(), nil, cipherKey, nil) == 1
                : EVP_DecryptInit_ex(cipher, EVP_aes_128_gcm(), nil, cipherKey, nil) == 1
            guard ready else { throw SRTPError(.invalidKey, openSSLErrorString("EVP_CipherInit_ex(aes-128-gcm) failed")) }
        }
    }

    deinit {
        EVP_MAC_CTX_free(mac)
        EVP_MAC_free(macAlgorithm)
        EVP_CIPHER_CTX_free(cipher)
    }

    /// Protects the RTP packet at `bytes[0..<length]` in place (the buffer has room for the
    /// tag) and sets `length` to the SRTP length; on failure `length` is unchanged.
    func protect(_ bytes: UnsafeMutablePointer<UInt8>, length: inout Int) -> SRTPStatus {
        guard let header = Self.headerLength(bytes, length) else { return .parseErr }
        let sequence = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        let ssrc = UInt32(bytes[8]) << 24 | UInt32(bytes[9]) << 16 | UInt32(bytes[10]) << 8 | UInt32(bytes[11])
        let stream = streams.stream(ssrc)
        let (index, delta) = streams.estimate(stream, sequence: sequence)
        switch streams.check(stream, delta: delta) {
        case .fresh, .repeated: break  // allow_repeat_tx
        case .tooOld: return .replayOld
        }
        let status: SRTPStatus
        switch profile {
        case .aes128CMSHA1_80:
            guard keystream(bytes + header, count: length - header, ssrc: ssrc, index: index) else { return .cipherFail }
            guard authenticate(bytes, count: length, roc: UInt32(truncatingIfNeeded: index >> 16), tag: bytes + length) else { return .authFail }
            length += 10
            status = Self.ok
        case .aeadAES128GCM:
            status = seal(bytes, header: header, length: &length, ssrc: ssrc, index: index)
        }
        if status == Self.ok { streams.accept(stream, index: index, delta: delta) }
        return status
    }

    /// Verifies and decrypts the SRTP packet at `bytes[0..<length]` in place and sets `length`
    /// to the RTP length. A packet that fails changes no state (replay window, ROC).
    func unprotect(_ bytes: UnsafeMutablePointer<UInt8>, length: inout Int) -> SRTPStatus {
        let tagLength = profile.rtpTagLength
        guard length >= 12 + tagLength, let header = Self.headerLength(bytes, length - tagLength) else { return .parseErr }
        let sequence = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        let ssrc = UInt32(bytes[8]) << 24 | UInt32(bytes[9]) << 16 | UInt32(bytes[10]) << 8 | UInt32(bytes[11])
        let stream = streams.lookup(ssrc)
        let (index, delta) = stream.map { streams.estimate($0, sequence: sequence) } ?? (UInt64(sequence), Int(sequence))
        if let stream {
            switch streams.check(stream, delta: delta) {
            case .fresh: break
            case .repeated: return .replayFail
            case .tooOld: return .replayOld
            }
        }
        let body = length - tagLength
        switch profile {
        case .aes128CMSHA1_80:
            var tag = (UInt64(0), UInt64(0), UInt32(0))
            let authentic = withUnsafeMutableBytes(of: &tag) { t in
                let out = t.baseAddress!.assumingMemoryBound(to: UInt8.self)
                return authenticate(bytes, count: body, roc: UInt32(truncatingIfNeeded: index >> 16), tag: out)
                    && CRYPTO_memcmp(out, bytes + body, 10) == 0
            }
            guard authentic else { return .authFail }
            guard keystream(bytes + header, count: body - header, ssrc: ssrc, index: index) else { return .cipherFail }
        case .aeadAES128GCM:
            let status = open(bytes, header: header, body: body, ssrc: ssrc, index: index)
            guard status == Self.ok else { return status }
        }
        streams.accept(stream ?? streams.stream(ssrc), index: index, delta: delta)
        length = body
        return Self.ok
    }

    // MARK: transforms

    /// AES-CM (RFC 3711 §4.1.1): XORs the keystream for (SSRC, index) over `count` bytes.
    private func keystream(_ p: UnsafeMutablePointer<UInt8>, count: Int, ssrc: UInt32, index: UInt64) -> Bool {
        var iv = ((sessionSalt.0 ^ UInt64(ssrc)).bigEndian, (sessionSalt.1 ^ (index << 16)).bigEndian)
        var outLength: Int32 = 0
        return withUnsafeBytes(of: &iv) { ivBytes in
            EVP_EncryptInit_ex(cipher, nil, nil, nil, ivBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1
                && (count == 0 || EVP_EncryptUpdate(cipher, p, &outLength, p, Int32(count)) == 1)
        }
    }

    /// HMAC-SHA1(auth key, bytes[0..<count] ‖ ROC) truncated to 80 bits, written at `tag`
    /// (which may overlap nothing of the input).
    private func authenticate(_ bytes: UnsafeMutablePointer<UInt8>, count: Int, roc: UInt32, tag: UnsafeMutablePointer<UInt8>) -> Bool {
        guard let mac else { return false }
        var rocBytes = roc.bigEndian
        var digest = (UInt64(0), UInt64(0), UInt32(0))  // 20 bytes
        var digestLength = 0
        let ok = withUnsafeMutableBytes(of: &digest) { d in
            withUnsafeBytes(of: &rocBytes) { r in
                EVP_MAC_init(mac, nil, 0, nil) == 1
                    && EVP_MAC_update(mac, bytes, count) == 1
                    && EVP_MAC_update(mac, r.baseAddress!.assumingMemoryBound(to: UInt8.self), 4) == 1
                    && EVP_MAC_final(mac, d.baseAddress!.assumingMemoryBound(to: UInt8.self), &digestLength, 20) == 1
            }
        }
        guard ok, digestLength == 20 else { return false }
        withUnsafeBytes(of: &digest) { UnsafeMutableRawPointer(tag).copyMemory(from: $0.baseAddress!, byteCount: 10) }
        return true
    }

    /// RFC 7714 §8.1: the 12-byte IV, in the first 12 bytes of the pair.
    private func gcmIV(ssrc: UInt32, index: UInt64) -> (UInt64, UInt64) {
        ((sessionSalt.0 ^ (UInt64(ssrc) << 16 | index >> 32)).bigEndian, (sessionSalt.1 ^ (index & 0xFFFF_FFFF) << 32).bigEndian)
    }

    private func seal(_ bytes: UnsafeMutablePointer<UInt8>, header: Int, length: inout Int, ssrc: UInt32, index: UInt64) -> SRTPStatus {
        var iv = gcmIV(ssrc: ssrc, index: index)
        var outLength: Int32 = 0
        let ok = withUnsafeBytes(of: &iv) { ivBytes in
            EVP_EncryptInit_ex(cipher, nil, nil, nil, ivBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1
                && EVP_EncryptUpdate(cipher, nil, &outLength, bytes, Int32(header)) == 1
                && (length == header || EVP_EncryptUpdate(cipher, bytes + header, &outLength, bytes + header, Int32(length - header)) == 1)
                && EVP_EncryptFinal_ex(cipher, bytes + length, &outLength) == 1
                && EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_GET_TAG, 16, bytes + length) == 1
        }
        guard ok else { return .cipherFail }
        length += 16
        return Self.ok
    }

    /// Decrypts in place and checks the tag; on `auth_fail` the payload bytes are not the
    /// plaintext (the caller drops the packet).
    private func open(_ bytes: UnsafeMutablePointer<UInt8>, header: Int, body: Int, ssrc: UInt32, index: UInt64) -> SRTPStatus {
        var iv = gcmIV(ssrc: ssrc, index: index)
        var outLength: Int32 = 0
        let ok = withUnsafeBytes(of: &iv) { ivBytes in
            EVP_DecryptInit_ex(cipher, nil, nil, nil, ivBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1
                && EVP_DecryptUpdate(cipher, nil, &outLength, bytes, Int32(header)) == 1
                && (body == header || EVP_DecryptUpdate(cipher, bytes + header, &outLength, bytes + header, Int32(body - header)) == 1)
                && EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_SET_TAG, 16, bytes + body) == 1
        }
        guard ok else { return .cipherFail }
        var scratch: UInt64 = 0
        let authentic = withUnsafeMutableBytes(of: &scratch) {
            EVP_DecryptFinal_ex(cipher, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &outLength) == 1
        }
        return authentic ? Self.ok : .authFail
    }

    // MARK: helpers

    /// 12 + 4·CC, plus the extension (4 + 4·length) when X is set (RFC 3550 §5.3.1); nil when
    /// the packet is not RTP version 2 or the header does not fit in `length` bytes.
    static func headerLength(_ bytes: UnsafeMutablePointer<UInt8>, _ length: Int) -> Int? {
        guard length >= 12, bytes[0] >> 6 == 2 else { return nil }
        var header = 12 + 4 * Int(bytes[0] & 0x0F)
        if bytes[0] & 0x10 != 0 {
            guard header + 4 <= length else { return nil }
            header += 4 + 4 * (Int(bytes[header + 2]) << 8 | Int(bytes[header + 3]))
        }
        return header <= length ? header : nil
    }

    /// RFC 3711 §4.3.1 with key_derivation_rate 0: x = label·2^48 ⊕ master salt (padded to 112
    /// bits); the session key is the AES-CM keystream of the master key at IV x·2^16.
    static func derive(label: UInt8, length: Int, key: [UInt8], salt: [UInt8]) throws(SRTPError) -> [UInt8] {
        var iv = salt + [UInt8](repeating: 0, count: 16 - salt.count)
        iv[7] ^= label
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

    private static func bigEndian64(_ b: [UInt8], _ at: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(b[at + i]) }
        return v
    }

    /// Session keys for tests (RFC 3711 Appendix B.3).
    static func sessionKeys(key: [UInt8], salt: [UInt8]) throws(SRTPError) -> (cipherKey: [UInt8], salt: [UInt8], authKey: [UInt8]) {
        (try derive(label: 0, length: 16, key: key, salt: salt), try derive(label: 2, length: 14, key: key, salt: salt),
         try derive(label: 1, length: 20, key: key, salt: salt))
    }

    /// The highest index seen for `ssrc` (tests: rollover counter ‖ sequence number).
    func highestIndex(ssrc: UInt32) -> UInt64? { streams.lookup(ssrc).map { streams.highest[$0] } }
}

/// Per-SSRC replay state, flat: stream `i` has `highest[i]` and the window bits
/// `bits[i·words ..< (i+1)·words]`, where index `x` is bit `x mod (64·words)`. The last stream
/// used is found without hashing (a forwarded packet's transport has one or two SSRCs).
struct SRTPStreamTable {
    enum Verdict { case fresh, repeated, tooOld }

    let window: Int
    let words: Int
    private(set) var ssrcs: [UInt32] = []
    private(set) var highest: [UInt64] = []
    private var bits: [UInt64] = []
    private var bySSRC: [UInt32: Int] = [:]
    private var last = -1

    init(window: Int) {
        self.window = window
        words = (window + 63) / 64
    }

    func lookup(_ ssrc: UInt32) -> Int? {
        if last >= 0, ssrcs[last] == ssrc { return last }
        return bySSRC[ssrc]
    }

    /// The stream of `ssrc`, created (highest index 0, empty window) when new.
    mutating func stream(_ ssrc: UInt32) -> Int {
        if let i = lookup(ssrc) {
            last = i
            return i
        }
        let i = ssrcs.count
        ssrcs.append(ssrc)
        highest.append(0)
        bits.append(contentsOf: repeatElement(0, count: words))
        bySSRC[ssrc] = i
        last = i
        return i
    }

    /// libsrtp's `srtp_rdbx_estimate_index` (RFC 3711 Appendix A): the index closest to the
    /// highest seen, and its distance from it. While the highest is at most 2^15 the rollover
    /// counter is taken as 0 (it cannot go below).
    func estimate(_ i: Int, sequence: UInt16) -> (index: UInt64, delta: Int) {
        let h = highest[i]
        guard h > 0x8000 else { return (UInt64(sequence), Int(sequence) - Int(h & 0xFFFF)) }
        let roc = h >> 16, local = Int(h & 0xFFFF), s = Int(sequence)
        var guess = roc
        if local < 0x8000 {
            if s - local > 0x8000 { guess = roc - 1 }
        } else if local - 0x8000 > s {
            guess = roc + 1
        }
        let index = guess << 16 | UInt64(sequence)
        return (index, Int(bitPattern: UInt(index)) - Int(bitPattern: UInt(h)))
    }

    func check(_ i: Int, delta: Int) -> Verdict {
        if delta > 0 { return .fresh }
        if delta <= -window { return .tooOld }
        let x = UInt64(Int(bitPattern: UInt(highest[i])) + delta)
        return isSet(i, x) ? .repeated : .fresh
    }

    /// Records an authenticated index: a newer one moves the window, clearing what it passes.
    mutating func accept(_ i: Int, index: UInt64, delta: Int) {
        let span = 64 * words
        if delta > 0 {
            if delta >= span {
                for w in 0..<words { bits[i * words + w] = 0 }
            } else {
                var x = highest[i] &+ 1
                for _ in 0..<delta {
                    clear(i, x)
                    x &+= 1
                }
            }
            highest[i] = index
        }
        let bit = Int(index % UInt64(span))
        bits[i * words + bit / 64] |= 1 << UInt64(bit % 64)
    }

    private func isSet(_ i: Int, _ x: UInt64) -> Bool {
        let bit = Int(x % UInt64(64 * words))
        return bits[i * words + bit / 64] & (1 << UInt64(bit % 64)) != 0
    }

    private mutating func clear(_ i: Int, _ x: UInt64) {
        let bit = Int(x % UInt64(64 * words))
        bits[i * words + bit / 64] &= ~(1 << UInt64(bit % 64))
    }
}
