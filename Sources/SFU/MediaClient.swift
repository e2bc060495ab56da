// The client side of a WHIP/WHEP session, sans-I/O: offer SDP, ICE-controlling Binding checks
// with USE-CANDIDATE, the DTLS client role and SRTP. A node uses it to pull from or push to another
// node's SFU (cascading); the benchmark and the core tests use it to drive a `MediaServer`.
import Identity
import RTC

public final class MediaClient {
    public enum Role: Sendable { case publisher, viewer }

    public let role: Role
    public let ufrag: String
    public let password: String
    /// Outgoing media SSRC (publisher).
    public let ssrc: UInt32
    public private(set) var srtpOut: SRTPSession?
    public private(set) var srtpIn: SRTPSession?
    public private(set) var serverUfrag = ""
    /// The server's host candidates from its answer: where checks and media go.
    public private(set) var serverCandidates: [SocketAddress] = []
    private var serverPassword: [UInt8] = []
    private let certificate: DTLSCertificate
    private var remoteFingerprint: DTLSFingerprint?
    private var dtlsStarted = false
    private var random: any RandomNumberGenerator

    /// VP8 at payload type 96 with RTX 97, the transport-cc extension at ID 3.
    public static let videoPayloadType: UInt8 = 96

    public init(role: Role, certificate: DTLSCertificate, random: any RandomNumberGenerator = SystemRandomNumberGenerator()) {
        self.role = role
        self.certificate = certificate
        self.random = random
        ufrag = String(UInt64.random(in: 0...UInt64.max, using: &self.random), radix: 36)
        password = String(UInt64.random(in: 0...UInt64.max, using: &self.random), radix: 36) + "drtcclientpassword"
        ssrc = UInt32.random(in: 1...UInt32.max, using: &self.random)
    }

    /// Created from the answer, which carries the fingerprint to check.
    private var endpoint: DTLSEndpoint?

    /// A one-video-track offer: sendonly for a publisher, recvonly for a viewer.
    public func offer() -> String {
        var sdp = SessionDescription(origin: "- \(ssrc) 2 IN IP4 127.0.0.1")
        sdp.groups = [SDPGroup(semantics: "BUNDLE", mids: ["0"])]
        sdp.iceUfrag = ufrag
        sdp.icePwd = password
        sdp.fingerprints = [SDPFingerprint(digest: certificate.fingerprint.bytes)]
        sdp.setup = .actpass
        var m = SDPMediaSection(kind: "video", port: 9, proto: "UDP/TLS/RTP/SAVPF", formats: ["96", "97"])
        m.connection = "IN IP4 0.0.0.0"
        m.mid = "0"
        m.rtcpMux = true
        m.direction = role == .publisher ? .sendonly : .recvonly
        m.codecs = [
            SDPCodec(payloadType: 96, name: "VP8", clockRate: 90000, feedback: ["nack", "nack pli", "transport-cc"]),
            SDPCodec(payloadType: 97, name: "rtx", clockRate: 90000, formatParameters: "apt=96"),
        ]
        m.extmaps = [SDPExtmap(id: 3, uri: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01")]
        if role == .publisher {
            m.sourceAttributes = [SDPSourceAttribute(ssrc: ssrc, attribute: "cname", value: "drtc-client")]
        }
        sdp.media = [m]
        return sdp.serialized
    }

    /// Takes the server's answer: its credentials and certificate fingerprint.
    public func accept(answer text: String) throws {
        let answer = try SessionDescription(parsing: text)
        guard let m = answer.media.first, let u = answer.iceUfrag(for: m), let p = answer.icePwd(for: m),
              let fp = answer.fingerprints(for: m).first else {
            throw SDPError(.noICECredentials, "the answer lacks ICE credentials or a fingerprint")
        }
        serverUfrag = u
        serverPassword = Array(p.utf8)
        serverCandidates = m.candidates.compactMap { SDPCandidate(attributeValue: $0)?.address }
        let fingerprint = try DTLSFingerprint(sdp: "\(fp.hashFunction) \(fp.value)")
        endpoint = try DTLSEndpoint(configuration: .init(role: .client, certificate: certificate,
                                                         remoteFingerprint: fingerprint, srtpProfiles: [.aeadAES128GCM, .aes128CMSHA1_80]))
    }

    /// A nominating connectivity check (RFC 8445 §7.2.4, aggressive: USE-CANDIDATE at once).
    public func bindingRequest() -> [UInt8] { consentCheck().datagram }

    /// A Binding request and its transaction ID: sent after connecting it is a consent check
    /// (RFC 7675), and its success response gives the client a round trip it measured itself.
    public func consentCheck() -> (datagram: [UInt8], transactionID: STUNTransactionID) {
        Self.bindingRequest(serverUfrag: serverUfrag, clientUfrag: ufrag, serverPassword: serverPassword, random: &random)
    }

    /// The check itself, also sent by a node dialling a pipe (`MediaServer.openPipe`).
    static func bindingRequest(serverUfrag: String, clientUfrag: String, serverPassword: [UInt8],
                               random: inout any RandomNumberGenerator) -> (datagram: [UInt8], transactionID: STUNTransactionID) {
        let request = STUNMessage(messageClass: .request, transactionID: .random(using: &random), attributes: [
            .username("\(serverUfrag):\(clientUfrag)"),
            .priority(1_853_824_767),
            .iceControlling(random.next()),
            .useCandidate,
        ])
        return (request.encoded(integrityKey: serverPassword, fingerprint: true), request.transactionID)
    }

    /// The transaction ID of a Binding success response whose integrity checks out with the
    /// server's password (so a third party cannot answer for it); nil for anything else.
    public func bindingSuccess(_ datagram: [UInt8]) -> STUNTransactionID? {
        guard DatagramKind(classifying: datagram) == .stun, let message = try? STUNMessage(decoding: datagram),
              message.messageClass == .successResponse, STUNMessage.checkIntegrity(datagram[...], key: serverPassword) == .valid else { return nil }
        return message.transactionID
    }

    public var isConnected: Bool { srtpOut != nil }

    /// Feeds one datagram from the server; returns datagrams to send back. A STUN success
    /// starts the DTLS handshake; RTP/RTCP are left to the caller (`unprotect`).
    public func receive(_ datagram: [UInt8], now: UInt64) -> [[UInt8]] {
        switch DatagramKind(classifying: datagram) {
        case .stun:
            guard let message = try? STUNMessage(decoding: datagram), message.messageClass == .successResponse,
                  !dtlsStarted, let endpoint else { return [] }
            dtlsStarted = true
            return handle(endpoint.start(now: now))
        case .dtls:
            guard let endpoint else { return [] }
            return handle(endpoint.receive(datagram: datagram, now: now))
        default:
            return []
        }
    }

    /// DTLS retransmissions.
    public func tick(now: UInt64) -> [[UInt8]] {
        guard let endpoint, dtlsStarted, !isConnected else { return [] }
        return handle(endpoint.handleTimeout(now: now))
    }

    private func handle(_ output: DTLSOutput) -> [[UInt8]] {
        for event in output.events {
            if case .connected(let keys) = event {
                srtpOut = try? SRTPSession(profile: keys.profile, key: keys.localKey, salt: keys.localSalt, direction: .outbound)
                srtpIn = try? SRTPSession(profile: keys.profile, key: keys.remoteKey, salt: keys.remoteSalt, direction: .inbound)
            }
        }
        return output.datagrams
    }
}
