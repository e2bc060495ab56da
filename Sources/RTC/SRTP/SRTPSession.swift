import CSRTP

/// libsrtp2's process-wide state. `srtp_init()` runs exactly once, on first use, under the
/// lock Swift uses for global initialisers (`swift_once`), as mediasoup's DepLibSRTP does with
/// its mutex. It is never shut down: sessions may outlive any owner.
enum LibSRTP {
    static let initialization: SRTPError? = {
        let status = srtp_init()
        guard status == srtp_err_status_ok else {
            let s = SRTPStatus(rawValue: status.rawValue)
            return SRTPError(.libsrtp(s), "srtp_init failed: \(s)")
        }
        return nil
    }()

    /// libsrtp's version string, e.g. "libsrtp2 2.5.0".
    static var version: String { String(cString: srtp_get_version_string()) }
}

/// Facts about the linked libsrtp2.
public enum SRTPLibrary {
    /// `srtp_get_version_string()`, e.g. "libsrtp2 2.5.0".
    public static var version: String { LibSRTP.version }
}

/// One direction of SRTP/SRTCP for one transport (all SSRCs): `outbound` protects what we send
/// with our keys, `inbound` unprotects what the peer sends with theirs (RFC 3711; AEAD per RFC 7714).
///
/// RTP packets go through `EVPSRTP` (OpenSSL EVP: AES-NI, SHA-NI), byte-exact with libsrtp2 and
/// with its acceptance rules; SRTCP goes through libsrtp2. Policies use libsrtp's wildcard SSRC (`ssrc_any_outbound` / `ssrc_any_inbound`), a replay
/// window of 1024 packets, and `allow_repeat_tx` so an outbound session can re-protect an RTP
/// retransmission with the same sequence number (the payload must be identical).
///
/// Not thread-safe and not `Sendable`: one owner uses a session at a time (libsrtp contexts are
/// mutable: rollover counters, replay windows).
public final class SRTPSession {
    public enum Direction: Sendable, Hashable {
        case inbound
        case outbound
    }

    public let profile: SRTPProfile
    public let direction: Direction
    private let context: OpaquePointer  // srtp_t (SRTCP)
    /// Nil when RTP goes through libsrtp2 as well (`.libsrtp2`: the reference in tests and benchmarks).
    private let rtp: EVPSRTP?

    /// Which code protects RTP packets. SRTCP always goes through libsrtp2.
    public enum RTPImplementation: String, Sendable {
        /// OpenSSL EVP (`EVPSRTP`): the default.
        case openSSLEVP = "openssl-evp"
        /// libsrtp2, as for SRTCP.
        case libsrtp2
    }

    /// The most bytes ``protect(rtp:)`` adds (the authentication tag).
    public var rtpTrailerLength: Int { profile.rtpTagLength }
    /// The most bytes ``protectRTCP(_:)`` adds (E-flag/index word + tag).
    public var rtcpTrailerLength: Int { profile.rtcpTrailerLength }

    /// - Parameters:
    ///   - key: master key (16 bytes); `salt`: master salt (14 bytes CM, 12 bytes GCM).
    ///   - replayWindow: packets remembered for replay detection (libsrtp: 64...32768).
    public init(
        profile: SRTPProfile, key: [UInt8], salt: [UInt8], direction: Direction, replayWindow: Int = 1024,
        rtpImplementation: RTPImplementation = .openSSLEVP
    ) throws(SRTPError) {
        if let error = LibSRTP.initialization { throw error }
        guard key.count == profile.keyLength, salt.count == profile.saltLength else {
            throw SRTPError(
                .invalidKey,
                "\(profile): expected a \(profile.keyLength)-byte key and \(profile.saltLength)-byte salt, got \(key.count) and \(salt.count)"
            )
        }
        guard (64...32_768).contains(replayWindow) else {
            throw SRTPError(.invalidInput, "replayWindow: expected 64...32768 packets, got \(replayWindow)")
        }
        var policy = srtp_policy_t()
        switch profile {
        case .aes128CMSHA1_80:
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            srtp_crypto_policy_set_rtcp_default(&policy.rtcp)
        case .aeadAES128GCM:
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp)
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp)
        }
        policy.ssrc.type = direction == .inbound ? ssrc_any_inbound : ssrc_any_outbound
        policy.ssrc.value = 0
        policy.window_size = UInt(replayWindow)
        policy.allow_repeat_tx = 1
        policy.next = nil
        // libsrtp copies the key material during srtp_create (master key || master salt).
        var keyAndSalt = key + salt
        var session: srtp_t? = nil
        let status = keyAndSalt.withUnsafeMutableBufferPointer { keyPointer in
            policy.key = keyPointer.baseAddress
            return srtp_create(&session, &policy)
        }
        // Best effort: do not leave key copies lying around longer than needed.
        for i in keyAndSalt.indices { keyAndSalt[i] = 0 }
        guard status == srtp_err_status_ok, let session else {
            let s = SRTPStatus(rawValue: status.rawValue)
            throw SRTPError(.libsrtp(s), "srtp_create(\(profile), \(direction)) failed: \(s)")
        }
        do {
            rtp = rtpImplementation == .libsrtp2
                ? nil : try EVPSRTP(profile: profile, key: key, salt: salt, outbound: direction == .outbound, replayWindow: replayWindow)
        } catch {
            srtp_dealloc(session)
            throw error
        }
        self.profile = profile
        self.direction = direction
        self.context = session
    }

    deinit {
        srtp_dealloc(context)
    }

    // MARK: in place (fast path: no allocation when the buffer has room)

    /// Protects the RTP packet in `buffer[0..<length]` in place and returns the SRTP length.
    /// `buffer.count` must be at least `length + rtpTrailerLength`.
    public func protect(rtpInPlace buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        try run(.protectRTP, buffer, length, trailer: rtpTrailerLength)
    }

    /// Verifies and decrypts the SRTP packet in `buffer[0..<length]`; returns the RTP length.
    public func unprotect(srtpInPlace buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        try run(.unprotectRTP, buffer, length, trailer: 0)
    }

    /// Protects the RTCP compound packet in `buffer[0..<length]`; returns the SRTCP length.
    /// `buffer.count` must be at least `length + rtcpTrailerLength`.
    public func protectRTCP(inPlace buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        try run(.protectRTCP, buffer, length, trailer: rtcpTrailerLength)
    }

    /// Verifies and decrypts the SRTCP packet in `buffer[0..<length]`; returns the RTCP length.
    public func unprotectRTCP(inPlace buffer: UnsafeMutableRawBufferPointer, length: Int) throws(SRTPError) -> Int {
        try run(.unprotectRTCP, buffer, length, trailer: 0)
    }

    /// Protects `packet` in place, growing it by the tag. No allocation if
    /// `packet.capacity >= packet.count + rtpTrailerLength` and the array is uniquely referenced.
    public func protect(rtp packet: inout [UInt8]) throws(SRTPError) {
        try runGrowing(.protectRTP, &packet, trailer: rtpTrailerLength)
    }

    /// Unprotects `packet` in place, shrinking it to the RTP packet.
    public func unprotect(srtp packet: inout [UInt8]) throws(SRTPError) {
        try runGrowing(.unprotectRTP, &packet, trailer: 0)
    }

    /// Protects an RTCP compound packet in place, growing it by the SRTCP trailer.
    public func protectRTCP(_ packet: inout [UInt8]) throws(SRTPError) {
        try runGrowing(.protectRTCP, &packet, trailer: rtcpTrailerLength)
    }

    /// Unprotects an SRTCP packet in place.
    public func unprotectRTCP(_ packet: inout [UInt8]) throws(SRTPError) {
        try runGrowing(.unprotectRTCP, &packet, trailer: 0)
    }

    // MARK: copying conveniences

    /// Returns the SRTP packet for `rtp`.
    public func protect(rtp: [UInt8]) throws(SRTPError) -> [UInt8] {
        var packet = rtp
        packet.reserveCapacity(rtp.count + rtpTrailerLength)
        try protect(rtp: &packet)
        return packet
    }

    /// Returns the RTP packet inside `srtp`.
    public func unprotect(srtp: [UInt8]) throws(SRTPError) -> [UInt8] {
        var packet = srtp
        try unprotect(srtp: &packet)
        return packet
    }

    /// Returns the SRTCP packet for `rtcp`.
    public func protectRTCP(_ rtcp: [UInt8]) throws(SRTPError) -> [UInt8] {
        var packet = rtcp
        packet.reserveCapacity(rtcp.count + rtcpTrailerLength)
        try protectRTCP(&packet)
        return packet
    }

    /// Returns the RTCP packet inside `srtcp`.
    public func unprotectRTCP(_ srtcp: [UInt8]) throws(SRTPError) -> [UInt8] {
        var packet = srtcp
        try unprotectRTCP(&packet)
        return packet
    }

    // MARK: implementation

    private enum Operation: CustomStringConvertible {
        case protectRTP, unprotectRTP, protectRTCP, unprotectRTCP
        var description: String {
            switch self {
            case .protectRTP: "srtp_protect"
            case .unprotectRTP: "srtp_unprotect"
            case .protectRTCP: "srtp_protect_rtcp"
            case .unprotectRTCP: "srtp_unprotect_rtcp"
            }
        }
        var isProtect: Bool { self == .protectRTP || self == .protectRTCP }
        var isRTCP: Bool { self == .protectRTCP || self == .unprotectRTCP }
    }

    private static let zeros = [UInt8](repeating: 0, count: 64)

    private func runGrowing(_ operation: Operation, _ packet: inout [UInt8], trailer: Int) throws(SRTPError) {
        let length = packet.count
        if trailer > 0 {
            // A contiguous source is a memcpy; `repeatElement` went element by element.
            packet.append(contentsOf: Self.zeros[0..<trailer])
        }
        let result: Result<Int, SRTPError> = packet.withUnsafeMutableBytes { buffer in
            do throws(SRTPError) {
                return .success(try run(operation, buffer, length, trailer: trailer))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let newLength):
            packet.removeLast(packet.count - newLength)
        case .failure(let error):
            packet.removeLast(packet.count - length)
            throw error
        }
    }

    private func run(
        _ operation: Operation, _ buffer: UnsafeMutableRawBufferPointer, _ length: Int, trailer: Int
    ) throws(SRTPError) -> Int {
        if operation.isProtect != (direction == .outbound) {
            throw SRTPError(
                .invalidInput, "\(operation): this session is \(direction); create an \(operation.isProtect ? "outbound" : "inbound") session")
        }
        // RTP needs its 12-byte fixed header; RTCP its 8-byte header (+ SRTCP index and tag).
        let minimum = operation.isRTCP ? 8 : 12
        guard length >= minimum, length <= buffer.count, length <= Int(Int32.max) - trailer,
            let base = buffer.baseAddress
        else {
            throw SRTPError(
                .invalidInput,
                "\(operation): packet of \(length) bytes in a \(buffer.count)-byte buffer; need at least \(minimum) bytes"
            )
        }
        guard buffer.count - length >= trailer else {
            throw SRTPError(
                .invalidInput,
                "\(operation): buffer has \(buffer.count - length) spare bytes, the \(profile) trailer needs \(trailer)")
        }
        var inOutLength = Int32(length)
        var rtpLength = length
        let s: SRTPStatus
        switch (operation, rtp) {
        case (.protectRTP, let rtp?): s = rtp.protect(base.assumingMemoryBound(to: UInt8.self), length: &rtpLength)
        case (.unprotectRTP, let rtp?): s = rtp.unprotect(base.assumingMemoryBound(to: UInt8.self), length: &rtpLength)
        case (.protectRTP, nil): s = SRTPStatus(rawValue: srtp_protect(context, base, &inOutLength).rawValue)
        case (.unprotectRTP, nil): s = SRTPStatus(rawValue: srtp_unprotect(context, base, &inOutLength).rawValue)
        case (.protectRTCP, _): s = SRTPStatus(rawValue: srtp_protect_rtcp(context, base, &inOutLength).rawValue)
        case (.unprotectRTCP, _): s = SRTPStatus(rawValue: srtp_unprotect_rtcp(context, base, &inOutLength).rawValue)
        }
        guard s == EVPSRTP.ok else {
            throw SRTPError(.libsrtp(s), "\(operation) (\(profile), \(length) bytes) failed: \(s)")
        }
        return operation.isRTCP || rtp == nil ? Int(inOutLength) : rtpLength
    }
}
