import COpenSSL

/// What one call into a ``DTLSEndpoint`` asks its owner to do.
public struct DTLSOutput: Sendable, Equatable {
    /// UDP payloads to send to the peer, in order. Each is at most the configured MTU.
    public var datagrams: [[UInt8]]
    /// What happened, in order.
    public var events: [DTLSEvent]
    /// When to call ``DTLSEndpoint/handleTimeout(now:)`` next, on the caller's clock
    /// (milliseconds), or `nil` when no retransmission timer runs.
    public var nextTimeout: UInt64?

    public init(datagrams: [[UInt8]] = [], events: [DTLSEvent] = [], nextTimeout: UInt64? = nil) {
        self.datagrams = datagrams
        self.events = events
        self.nextTimeout = nextTimeout
    }
}

/// A TLS alert (RFC 5246 §7.2).
public struct DTLSAlert: Sendable, Hashable, CustomStringConvertible {
    public var isFatal: Bool
    /// AlertDescription code, e.g. 42 bad_certificate.
    public var code: UInt8
    /// OpenSSL's long name for the code, e.g. "bad certificate".
    public var name: String
    public var description: String { "\(isFatal ? "fatal" : "warning") alert \(code) (\(name))" }
}

/// Something a ``DTLSEndpoint`` reports.
public enum DTLSEvent: Sendable, Equatable {
    /// Handshake complete, the peer's certificate matched the SDP fingerprint and a DTLS-SRTP
    /// profile was agreed; these are the SRTP master keys (RFC 5764 §4.2).
    case connected(SRTPKeyingMaterial)
    /// Application data from the peer (e.g. SCTP for data channels).
    case applicationData([UInt8])
    /// The peer sent a warning alert other than close_notify.
    case alert(DTLSAlert)
    /// The peer closed the association (close_notify); we answered with ours.
    case closed
    /// The association failed and is unusable; no keys were or will be released.
    case failed(DTLSError)
}

/// One side of a DTLS 1.2 association carrying DTLS-SRTP key agreement (RFC 5764), sans-I/O:
/// the owner feeds datagrams and timer expiries in, and sends the datagrams that come out.
/// OpenSSL runs on two memory BIOs; this class never touches a socket.
///
/// **Threading:** not thread-safe and not `Sendable`. Exactly one owner (e.g. the media
/// transport's event loop) drives an endpoint; calls must not overlap. Different endpoints may
/// run on different threads concurrently.
///
/// **Time:** every input takes the caller's monotonic clock in milliseconds. OpenSSL 3.0 has no
/// clock injection (BoringSSL's `SSL_CTX_set_current_time_cb` has no OpenSSL counterpart):
/// `DTLS_set_timer_cb` only chooses the retransmission *durations* — the expiry check
/// (`dtls1_is_timer_expired`) and the record reader (`dtls1_read_bytes`) still compare against
/// `gettimeofday`. So `nextTimeout` is `now + time-left-by-OpenSSL's-clock`, and
/// ``handleTimeout(now:)`` retransmits only once that much *real* time has passed. Under a virtual
/// clock that runs ahead of real time, retransmissions happen late (never early), and OpenSSL may
/// also retransmit on its own inside ``receive(datagram:now:)`` when real time has passed.
public final class DTLSEndpoint {
    /// DTLS role. In SDP terms (RFC 5763 §5): `a=setup:active` is the DTLS client,
    /// `a=setup:passive` the DTLS server. An ICE-lite SFU usually answers `passive`.
    public enum Role: Sendable, Hashable {
        case client
        case server
    }

    public enum State: Sendable, Hashable {
        /// Created; `start` not called (client) and nothing received yet (server).
        case new
        case handshaking
        case connected
        case closed
        case failed
    }

    public struct Configuration: Sendable {
        public var role: Role
        /// Our certificate (its fingerprint goes into our SDP).
        public var certificate: DTLSCertificate
        /// The fingerprint from the peer's SDP; the peer's certificate must match it.
        public var remoteFingerprint: DTLSFingerprint
        /// Profiles to offer/accept, most preferred first.
        public var srtpProfiles: [SRTPProfile]
        /// Largest datagram to emit (UDP payload bytes). 1200 keeps clear of IPv6 + TURN overhead.
        public var mtu: Int
        /// First retransmission timeout; doubles per retry up to `maximumRetransmitTimeoutMillis`
        /// (RFC 6347 §4.2.4.1: 1 s initial, 60 s maximum). Must exceed 15 ms: OpenSSL treats less
        /// time left than that as already expired.
        public var initialRetransmitTimeoutMillis: UInt32
        public var maximumRetransmitTimeoutMillis: UInt32

        public init(
            role: Role, certificate: DTLSCertificate, remoteFingerprint: DTLSFingerprint,
            srtpProfiles: [SRTPProfile] = [.aeadAES128GCM, .aes128CMSHA1_80], mtu: Int = 1200,
            initialRetransmitTimeoutMillis: UInt32 = 1000, maximumRetransmitTimeoutMillis: UInt32 = 60_000
        ) {
            self.role = role
            self.certificate = certificate
            self.remoteFingerprint = remoteFingerprint
            self.srtpProfiles = srtpProfiles
            self.mtu = mtu
            self.initialRetransmitTimeoutMillis = initialRetransmitTimeoutMillis
            self.maximumRetransmitTimeoutMillis = maximumRetransmitTimeoutMillis
        }
    }

    public let configuration: Configuration
    public private(set) var state: State = .new
    /// The keys, once ``DTLSEvent/connected(_:)`` has been reported.
    public private(set) var keyingMaterial: SRTPKeyingMaterial?

    private let context: OpaquePointer  // SSL_CTX *
    private let ssl: OpaquePointer  // SSL * (owns both BIOs)
    private let readBIO: OpaquePointer  // BIO * (memory): datagrams from the peer
    private let writeBIO: OpaquePointer  // BIO * (memory): records to the peer

    // Written by OpenSSL callbacks during a call, read after it returns.
    fileprivate var pendingEvents: [DTLSEvent] = []
    fileprivate var verifyFailure: String?
    fileprivate var lastReceivedFatalAlert: DTLSAlert?
    fileprivate var lastSentFatalAlert: DTLSAlert?
    private var scratch = [UInt8](repeating: 0, count: 16_384)

    /// Creates the endpoint; nothing is sent until ``start(now:)`` (client) or the first
    /// ``receive(datagram:now:)`` (server).
    public init(configuration: Configuration) throws(DTLSError) {
        guard (256...65_507).contains(configuration.mtu) else {
            throw DTLSError(.configuration, "mtu: expected 256...65507 bytes, got \(configuration.mtu)")
        }
        guard !configuration.srtpProfiles.isEmpty else {
            throw DTLSError(.configuration, "srtpProfiles: offer at least one DTLS-SRTP profile")
        }
        guard configuration.initialRetransmitTimeoutMillis > 15,
            configuration.maximumRetransmitTimeoutMillis >= configuration.initialRetransmitTimeoutMillis,
            configuration.maximumRetransmitTimeoutMillis <= 3_600_000
        else {
            throw DTLSError(
                .configuration,
                "retransmit timeouts: expected 15 ms < initial (\(configuration.initialRetransmitTimeoutMillis)) <= maximum (\(configuration.maximumRetransmitTimeoutMillis)) <= 1 h"
            )
        }
        self.configuration = configuration

        ERR_clear_error()
        guard let context = SSL_CTX_new(DTLS_method()) else {
            throw DTLSError(.configuration, openSSLErrorString("SSL_CTX_new(DTLS_method()) failed"))
        }
        func fail(_ what: String) -> DTLSError {
            SSL_CTX_free(context)
            return DTLSError(.configuration, openSSLErrorString(what))
        }
        guard drtc_SSL_CTX_set_min_proto_version(context, DTLS1_2_VERSION) == 1,
            drtc_SSL_CTX_set_max_proto_version(context, DTLS1_2_VERSION) == 1
        else { throw fail("restricting to DTLS 1.2 failed") }
        guard SSL_CTX_use_certificate(context, configuration.certificate.x509) == 1,
            SSL_CTX_use_PrivateKey(context, configuration.certificate.key) == 1,
            SSL_CTX_check_private_key(context) == 1
        else { throw fail("loading the certificate failed") }
        // ECDHE with AEAD first; CBC suites last for old peers. Both ECDSA and RSA so that we can
        // be client to an RSA-certificate peer.
        let ciphers =
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
            + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
            + "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"
        guard SSL_CTX_set_cipher_list(context, ciphers) == 1 else { throw fail("setting the cipher list failed") }
        // Note the inverted convention: 0 means success for this one.
        let profiles = configuration.srtpProfiles.map(\.openSSLName).joined(separator: ":")
        guard SSL_CTX_set_tlsext_use_srtp(context, profiles) == 0 else {
            throw fail("SSL_CTX_set_tlsext_use_srtp(\(profiles)) failed")
        }
        // One association per endpoint: no resumption (it would skip the certificate check).
        _ = drtc_SSL_CTX_set_session_cache_mode(context, Int(SSL_SESS_CACHE_OFF))
        _ = SSL_CTX_set_options(context, drtc_SSL_OP_NO_QUERY_MTU() | drtc_SSL_OP_NO_TICKET())
        _ = drtc_SSL_CTX_set_read_ahead(context, 1)
        // RFC 8827 §6.5: peers present self-signed certificates authenticated by fingerprint.
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, dtlsVerifyCallback)

        guard let ssl = SSL_new(context) else { throw fail("SSL_new failed") }
        guard let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw fail("BIO_new(BIO_s_mem()) failed")
        }
        // An empty memory BIO must read as "retry", not EOF.
        _ = drtc_BIO_set_mem_eof_return(readBIO, -1)
        _ = drtc_BIO_set_mem_eof_return(writeBIO, -1)
        SSL_set_bio(ssl, readBIO, writeBIO)  // ssl owns both from here
        // Before the stored properties are set: a throw after that would also run deinit.
        guard drtc_SSL_set_mtu(ssl, configuration.mtu) > 0 else {
            SSL_free(ssl)
            throw fail("SSL_set_mtu(\(configuration.mtu)) rejected")
        }
        self.context = context
        self.ssl = ssl
        self.readBIO = readBIO
        self.writeBIO = writeBIO

        _ = drtc_SSL_set_app_data(ssl, Unmanaged.passUnretained(self).toOpaque())
        SSL_set_info_callback(ssl, dtlsInfoCallback)
        DTLS_set_timer_cb(ssl, dtlsTimerCallback)
        switch configuration.role {
        case .client: SSL_set_connect_state(ssl)
        case .server: SSL_set_accept_state(ssl)
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    // MARK: inputs

    /// Client: sends the ClientHello. Server: only marks the endpoint as waiting. Idempotent.
    public func start(now: UInt64) -> DTLSOutput {
        guard state == .new else { return collect(now: now) }
        state = .handshaking
        if configuration.role == .client { handshakeStep() }
        return collect(now: now)
    }

    /// Feeds one UDP payload classified as DTLS (RFC 7983: first byte 20...63). Malformed,
    /// truncated or unauthenticated records are dropped silently (RFC 6347 §4.1.2.7).
    public func receive(datagram: [UInt8], now: UInt64) -> DTLSOutput {
        switch state {
        case .closed, .failed:
            return DTLSOutput()
        case .new:
            // A client must send first; a server starts on the first datagram.
            guard configuration.role == .server else { return DTLSOutput() }
            state = .handshaking
        case .handshaking, .connected:
            break
        }
        guard let first = datagram.first, (20...63).contains(first), datagram.count <= 65_535 else {
            return collect(now: now)
        }
        let written = datagram.withUnsafeBytes { BIO_write(readBIO, $0.baseAddress, Int32($0.count)) }
        if written == Int32(datagram.count) {
            if state == .handshaking { handshakeStep() }
            if state == .connected { readRecords() }
        }
        // Whatever OpenSSL did not consume (a truncated record) must not prefix the next datagram.
        _ = drtc_BIO_reset(readBIO)
        return collect(now: now)
    }

    /// Call at (or after) ``DTLSOutput/nextTimeout``: retransmits the last flight if OpenSSL's
    /// timer has expired (see the type's note on time), or fails after too many retries.
    public func handleTimeout(now: UInt64) -> DTLSOutput {
        guard state == .handshaking || state == .connected else { return DTLSOutput() }
        ERR_clear_error()
        if drtc_DTLSv1_handle_timeout(ssl) < 0 {
            fail(.timeout, openSSLErrorString("DTLS handshake gave up after repeated retransmissions"))
        }
        return collect(now: now)
    }

    /// Sends application data (e.g. SCTP) once connected.
    public func send(applicationData: [UInt8], now: UInt64) throws(DTLSError) -> DTLSOutput {
        guard state == .connected else {
            throw DTLSError(.invalidState, "send: the DTLS association is \(state), not connected")
        }
        guard !applicationData.isEmpty else { return collect(now: now) }
        ERR_clear_error()
        let n = applicationData.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
        guard n == Int32(applicationData.count) else {
            throw DTLSError(
                .invalidState,
                openSSLErrorString("SSL_write of \(applicationData.count) bytes failed (larger than the MTU?)"))
        }
        return collect(now: now)
    }

    /// Sends close_notify and stops; later inputs are ignored.
    public func close(now: UInt64) -> DTLSOutput {
        guard state == .handshaking || state == .connected else { return DTLSOutput() }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        state = .closed
        return collect(now: now)
    }

    // MARK: driving OpenSSL

    private func handshakeStep() {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            finishHandshake()
            return
        }
        let error = SSL_get_error(ssl, result)
        switch error {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return
        case SSL_ERROR_ZERO_RETURN:
            fail(.handshake, "the peer closed the association during the handshake")
        default:
            failFromOpenSSL("DTLS handshake failed")
        }
    }

    private func finishHandshake() {
        guard let peer = SSL_get1_peer_certificate(ssl) else {
            fail(.handshake, "the peer presented no certificate")
            return
        }
        let seen = DTLSCertificate.fingerprint(of: peer)
        X509_free(peer)
        guard let seen, seen == configuration.remoteFingerprint else {
            fail(
                .fingerprintMismatch,
                "peer certificate fingerprint \(seen?.hex ?? "?") does not match the SDP fingerprint \(configuration.remoteFingerprint.hex)"
            )
            return
        }
        guard let selected = SSL_get_selected_srtp_profile(ssl), let name = selected.pointee.name,
            let profile = SRTPProfile(openSSLName: String(cString: name))
        else {
            fail(
                .noSRTPProfile,
                "handshake finished without a common DTLS-SRTP profile (we offered \(configuration.srtpProfiles.map(\.openSSLName).joined(separator: ":")))"
            )
            return
        }
        // RFC 5764 §4.2: 2 * (key + salt) bytes from the "EXTRACTOR-dtls_srtp" exporter, no context.
        var exported = [UInt8](repeating: 0, count: 2 * (profile.keyLength + profile.saltLength))
        let label = "EXTRACTOR-dtls_srtp"
        let ok = label.withCString { labelPointer in
            SSL_export_keying_material(ssl, &exported, exported.count, labelPointer, label.utf8.count, nil, 0, 0)
        }
        guard ok == 1,
            let keys = SRTPKeyingMaterial(
                profile: profile, exported: exported, isClient: configuration.role == .client)
        else {
            failFromOpenSSL("exporting the DTLS-SRTP keying material failed")
            return
        }
        keyingMaterial = keys
        state = .connected
        pendingEvents.append(.connected(keys))
    }

    /// After the handshake: application data, alerts, close_notify, retransmitted Finished.
    private func readRecords() {
        while state == .connected {
            ERR_clear_error()
            let n = scratch.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                pendingEvents.append(.applicationData(Array(scratch[0..<Int(n)])))
                continue
            }
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return
            case SSL_ERROR_ZERO_RETURN:
                _ = SSL_shutdown(ssl)  // answer close_notify with ours
                state = .closed
                pendingEvents.append(.closed)
            default:
                failFromOpenSSL("reading a DTLS record failed")
            }
        }
    }

    private func failFromOpenSSL(_ what: String) {
        if let verifyFailure {
            ERR_clear_error()
            fail(.fingerprintMismatch, verifyFailure)
        } else if let alert = lastReceivedFatalAlert {
            fail(.fatalAlert, openSSLErrorString("\(what): the peer sent a \(alert)"))
        } else if let alert = lastSentFatalAlert {
            fail(.handshake, openSSLErrorString("\(what); we sent a \(alert)"))
        } else {
            fail(.handshake, openSSLErrorString(what))
        }
    }

    private func fail(_ code: DTLSError.Code, _ message: String) {
        guard state != .failed else { return }
        state = .failed
        keyingMaterial = nil
        pendingEvents.append(.failed(DTLSError(code, message)))
    }

    private func collect(now: UInt64) -> DTLSOutput {
        var output = DTLSOutput(datagrams: drainDatagrams(), events: pendingEvents)
        pendingEvents.removeAll()
        if state == .handshaking || state == .connected {
            var microsecondsLeft: Int64 = 0
            if drtc_DTLSv1_get_timeout(ssl, &microsecondsLeft) == 1 {
                output.nextTimeout = now &+ UInt64((max(0, microsecondsLeft) + 999) / 1000)
            }
        }
        return output
    }

    /// Empties the write BIO. A memory BIO loses datagram boundaries, so split the byte stream
    /// back into DTLS records (13-byte header, RFC 6347 §4.1) and pack whole records into
    /// datagrams of at most `mtu` bytes (several records per datagram are allowed, §4.1.1).
    private func drainDatagrams() -> [[UInt8]] {
        let pending = Int(BIO_ctrl_pending(writeBIO))
        guard pending > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: pending)
        let read = bytes.withUnsafeMutableBytes { BIO_read(writeBIO, $0.baseAddress, Int32(pending)) }
        guard read > 0 else { return [] }
        if Int(read) < pending { bytes.removeLast(pending - Int(read)) }
        return packRecords(bytes, mtu: configuration.mtu)
    }

    // MARK: callbacks (reached through SSL app data)

    fileprivate func timerDuration(previousMicroseconds: UInt32) -> UInt32 {
        let initial = UInt64(configuration.initialRetransmitTimeoutMillis) * 1000
        let maximum = UInt64(configuration.maximumRetransmitTimeoutMillis) * 1000
        let next = previousMicroseconds == 0 ? initial : min(UInt64(previousMicroseconds) * 2, maximum)
        return UInt32(min(next, UInt64(UInt32.max)))
    }

    fileprivate func verify(peerCertificate x509: OpaquePointer) -> Bool {
        guard let seen = DTLSCertificate.fingerprint(of: x509) else {
            verifyFailure = "could not compute the peer certificate's SHA-256 fingerprint"
            return false
        }
        guard seen == configuration.remoteFingerprint else {
            verifyFailure =
                "peer certificate fingerprint \(seen.hex) does not match the SDP fingerprint \(configuration.remoteFingerprint.hex)"
            return false
        }
        return true
    }
}

/// Splits a byte stream of DTLS records and packs them into datagrams of at most `mtu` bytes.
/// A record that is malformed or larger than `mtu` goes out on its own (OpenSSL sized it).
func packRecords(_ bytes: [UInt8], mtu: Int) -> [[UInt8]] {
    var datagrams: [[UInt8]] = []
    var current: [UInt8] = []
    var offset = 0
    while offset < bytes.count {
        var end = bytes.count
        if bytes.count - offset >= 13 {
            let length = Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12])
            end = min(bytes.count, offset + 13 + length)
        }
        let recordLength = end - offset
        if !current.isEmpty && current.count + recordLength > mtu {
            datagrams.append(current)
            current = []
        }
        current.append(contentsOf: bytes[offset..<end])
        offset = end
    }
    if !current.isEmpty { datagrams.append(current) }
    return datagrams
}

private func endpoint(of ssl: OpaquePointer?) -> DTLSEndpoint? {
    guard let ssl, let data = drtc_SSL_get_app_data(ssl) else { return nil }
    return Unmanaged<DTLSEndpoint>.fromOpaque(data).takeUnretainedValue()
}

/// Accepts self-signed certificates; the leaf must match the SDP fingerprint (RFC 8122 §5).
private let dtlsVerifyCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { _, store in
    guard let store,
        let sslPointer = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
        let endpoint = endpoint(of: OpaquePointer(sslPointer))
    else { return 0 }
    // Chain building fails for a self-signed leaf (preverify = 0); only the leaf's digest matters.
    guard X509_STORE_CTX_get_error_depth(store) == 0 else { return 1 }
    guard let leaf = X509_STORE_CTX_get_current_cert(store), endpoint.verify(peerCertificate: leaf) else {
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED)
        return 0
    }
    X509_STORE_CTX_set_error(store, X509_V_OK)
    return 1
}

/// Records alerts in both directions (SSL_CB_ALERT), for events and error messages.
private let dtlsInfoCallback: @convention(c) (OpaquePointer?, Int32, Int32) -> Void = { ssl, whereFlags, value in
    guard whereFlags & SSL_CB_ALERT != 0, let endpoint = endpoint(of: ssl) else { return }
    let alert = DTLSAlert(
        isFatal: (value >> 8) == 2, code: UInt8(truncatingIfNeeded: value),
        name: String(cString: SSL_alert_desc_string_long(value)))
    if whereFlags & SSL_CB_READ != 0 {
        if alert.isFatal {
            endpoint.lastReceivedFatalAlert = alert
        } else if alert.code != 0 {  // close_notify is reported as .closed
            endpoint.pendingEvents.append(.alert(alert))
        }
    } else if alert.isFatal {
        endpoint.lastSentFatalAlert = alert
    }
}

/// RFC 6347 §4.2.4.1 back-off with the configured durations (OpenSSL ≥ 1.1.1).
private let dtlsTimerCallback: @convention(c) (OpaquePointer?, UInt32) -> UInt32 = { ssl, previous in
    endpoint(of: ssl)?.timerDuration(previousMicroseconds: previous) ?? 1_000_000
}
