import Identity
// The ICE-lite side of one WebRTC session (RFC 8445 §2.5, §7.3 "STUN server procedures"), with
// consent freshness (RFC 7675). A lite agent never sends checks: it answers the full agent's
// Binding requests, is always controlled, and takes the pair the peer nominates.

/// Why a datagram produced no response. The caller counts these; none is worth a log line each.
public enum ICEDropReason: Hashable, Sendable, CustomStringConvertible {
    /// Not a decodable STUN message.
    case malformed(STUNErrorDomain.Code)
    /// FINGERPRINT present but wrong (RFC 8489 §7.3: not STUN, discard).
    case badFingerprint
    /// FINGERPRINT absent; RFC 8445 §7.1 requires it on every check.
    case missingFingerprint
    /// A response or indication: a lite agent sends no requests, so expects no responses, and
    /// Binding indications (keepalives, RFC 8445 §11) need no answer.
    case notARequest(STUNMessageClass)
    /// A request for a method other than Binding.
    case unsupportedMethod(STUNMethod)

    public var description: String {
        switch self {
        case .malformed(let code): "malformed STUN (\(code))"
        case .badFingerprint: "bad FINGERPRINT"
        case .missingFingerprint: "missing FINGERPRINT"
        case .notARequest(let c): "not a request (\(c))"
        case .unsupportedMethod(let m): "unsupported method (\(m))"
        }
    }
}

/// What the caller must do after `ICELiteAgent.receive`.
public enum ICELiteAction: Hashable, Sendable {
    /// Send `bytes` (a STUN response) to `to`, from the socket the request arrived on.
    case send([UInt8], to: SocketAddress)
    /// Discard the datagram; count `reason`.
    case drop(ICEDropReason)
    /// The peer nominated `address` for the first time: media and DTLS go there from now on.
    case nominated(SocketAddress)
    /// The peer nominated a different address (it moved networks): send there from now on.
    case selectedAddressChanged(from: SocketAddress, to: SocketAddress)
}

/// One session's ICE-lite state: a value type driven by datagrams and the current time.
public struct ICELiteAgent: Sendable {
    /// Tunables.
    public struct Configuration: Hashable, Sendable {
        /// RFC 7675 §5.1: consent expires 30 s after the last authenticated check.
        public var consentTimeoutMilliseconds: UInt64
        /// RFC 8445 §7.1 requires FINGERPRINT on checks; some test tools omit it.
        public var requireFingerprint: Bool

        public init(consentTimeoutMilliseconds: UInt64 = 30_000, requireFingerprint: Bool = true) {
            self.consentTimeoutMilliseconds = consentTimeoutMilliseconds
            self.requireFingerprint = requireFingerprint
        }
    }

    public let localUfrag: String
    public let localPassword: String
    /// The peer's ufrag from its SDP; when `nil`, any "localUfrag:…" USERNAME is accepted.
    public var remoteUfrag: String?
    public var configuration: Configuration

    /// The address the peer last nominated, where media is sent.
    public private(set) var selectedAddress: SocketAddress?
    /// Time (ms) of the last check that passed authentication, or of creation.
    public private(set) var lastConsent: UInt64

    private let key: [UInt8]

    public init(localUfrag: String, localPassword: String, remoteUfrag: String? = nil,
                configuration: Configuration = Configuration(), now: UInt64) {
        self.localUfrag = localUfrag
        self.localPassword = localPassword
        self.remoteUfrag = remoteUfrag
        self.configuration = configuration
        self.lastConsent = now
        // RFC 8489 §9.1.1: the short-term key is OpaqueString(password); ICE passwords are
        // ice-chars (RFC 8839 §5.4), ASCII, which OpaqueString leaves unchanged.
        self.key = Array(localPassword.utf8)
    }

    /// True when the peer has sent no authenticated check for the consent timeout (RFC 7675 §5.1);
    /// the caller then tears the session down.
    public func isExpired(now: UInt64) -> Bool {
        now >= lastConsent && now - lastConsent >= configuration.consentTimeoutMilliseconds
    }

    /// Authenticated SRTP or SRTCP arrived from the selected address (the caller checked both):
    /// the peer holding this session's keys is alive there, which refreshes consent like a check.
    /// A lite agent cannot send checks of its own, and full agents built on libnice without its
    /// consent-freshness option (GStreamer's webrtcbin) keep a pair alive with binding
    /// indications, which carry no integrity; without this, their sessions would end after 30 s
    /// while media still flowed (Specs/media.md "ICE-lite").
    public mutating func noteAuthenticatedMedia(now: UInt64) {
        lastConsent = max(lastConsent, now)
    }

    /// Handles one STUN datagram from `source` at time `now` (milliseconds, any epoch, monotonic).
    public mutating func receive(_ datagram: ArraySlice<UInt8>, from source: SocketAddress, now: UInt64) -> [ICELiteAction] {
        let request: STUNMessage
        do {
            request = try STUNMessage(decoding: datagram)
        } catch {
            return [.drop(.malformed(error.code))]
        }
        switch STUNMessage.checkFingerprint(datagram) {
        case .invalid: return [.drop(.badFingerprint)]
        case .absent where configuration.requireFingerprint: return [.drop(.missingFingerprint)]
        default: break
        }
        guard request.messageClass == .request else { return [.drop(.notARequest(request.messageClass))] }
        guard request.method == .binding else { return [.drop(.unsupportedMethod(request.method))] }

        // RFC 8489 §9.1.3: no USERNAME or no MESSAGE-INTEGRITY → 400, unsigned.
        guard let username = request.username, request.hasMessageIntegrity else {
            return [reply(.errorResponse(to: request, .badRequest), to: source, signed: false)]
        }
        // RFC 8445 §7.3: USERNAME is "ourUfrag:theirUfrag"; a mismatch is a 401, unsigned.
        guard usernameMatches(username) else {
            return [reply(.errorResponse(to: request, .unauthorized), to: source, signed: false)]
        }
        guard STUNMessage.checkIntegrity(datagram, key: key) == .valid else {
            return [reply(.errorResponse(to: request, .unauthorized), to: source, signed: false)]
        }
        // Authenticated: this is consent (RFC 7675 §5.1), whatever we answer.
        lastConsent = max(lastConsent, now)

        // RFC 8489 §6.3.1: unknown comprehension-required attributes → 420 listing them.
        let unknown = request.unknownComprehensionRequired
        if !unknown.isEmpty {
            return [reply(.errorResponse(to: request, .unknownAttribute, unknownAttributes: unknown), to: source, signed: true)]
        }
        // RFC 8445 §2.5/§7.3.1.1: a lite agent is always controlled and cannot switch, so a peer
        // that also claims to be controlled must switch: 487.
        if request.iceControlled != nil {
            return [reply(.errorResponse(to: request, .roleConflict), to: source, signed: true)]
        }

        var actions = [reply(.bindingSuccess(to: request, mappedAddress: source), to: source, signed: true)]
        // RFC 8445 §7.3.1.5: USE-CANDIDATE from the controlling agent nominates this pair; a later
        // nomination from a new address (network change) moves the selected pair.
        if request.useCandidate {
            if let current = selectedAddress {
                if current != source {
                    selectedAddress = source
                    actions.append(.selectedAddressChanged(from: current, to: source))
                }
            } else {
                selectedAddress = source
                actions.append(.nominated(source))
            }
        }
        return actions
    }

    public mutating func receive(_ datagram: [UInt8], from source: SocketAddress, now: UInt64) -> [ICELiteAction] {
        receive(datagram[...], from: source, now: now)
    }

    private func usernameMatches(_ username: String) -> Bool {
        if let remoteUfrag { return username == localUfrag + ":" + remoteUfrag }
        return username.hasPrefix(localUfrag + ":")
    }

    private func reply(_ response: STUNMessage, to address: SocketAddress, signed: Bool) -> ICELiteAction {
        .send(response.encoded(integrityKey: signed ? key : nil, fingerprint: true), to: address)
    }

    /// The local ufrag a Binding request is addressed to (the part of USERNAME before ':'), so a
    /// server sharing one UDP port among sessions can route the datagram. `nil` if the datagram
    /// is not a STUN message with a USERNAME of that shape. It does not authenticate anything.
    public static func localUfrag(of datagram: ArraySlice<UInt8>) -> String? {
        guard let message = try? STUNMessage(decoding: datagram), let username = message.username,
              let colon = username.firstIndex(of: ":") else { return nil }
        let ufrag = username[..<colon]
        return ufrag.isEmpty ? nil : String(ufrag)
    }

    public static func localUfrag(of datagram: [UInt8]) -> String? {
        localUfrag(of: datagram[...])
    }
}
