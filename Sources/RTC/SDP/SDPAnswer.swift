// Building the SFU's answer to a WHIP/WHEP offer: JSEP §5.3 (RFC 8829) for an ICE-lite
// (RFC 8445 §2.5), DTLS-passive (RFC 8842), always-bundled (RFC 8843/9143), rtcp-mux-only
// (RFC 8843 §9.1) server.

/// A host UDP candidate of this server (RFC 8839 §5.1).
public struct SDPCandidate: Hashable, Sendable {
    public var foundation: String
    public var priority: UInt32
    public var address: SocketAddress

    public init(foundation: String = "1", priority: UInt32 = 2_130_706_431, address: SocketAddress) {
        self.foundation = foundation
        self.priority = priority
        self.address = address
    }

    /// The `a=candidate:` value: component 1, UDP, type host.
    public var attributeValue: String {
        "\(foundation) 1 udp \(priority) \(address.ip) \(address.port) typ host"
    }

    /// Parses an `a=candidate:` value (RFC 8839 §5.1) of a UDP candidate for component 1
    /// (what an ICE-lite answer offers); nil for anything else.
    public init?(attributeValue text: String) {
        let f = text.split(separator: " ", omittingEmptySubsequences: true)
        guard f.count >= 8, f[1] == "1", f[2].lowercased() == "udp", let priority = UInt32(f[3]),
              let port = UInt16(f[5]), let address = SocketAddress(String(f[4]), port: port), f[6] == "typ" else { return nil }
        self.init(foundation: String(f[0]), priority: priority, address: address)
    }
}

/// A track this server sends in an m-section (a WHEP viewer's answer), announced with
/// `a=msid` (RFC 8830) and `a=ssrc … cname:` (RFC 5576), plus an FID group for RTX (RFC 4588).
public struct SDPOutgoingTrack: Hashable, Sendable {
    public var ssrc: UInt32
    public var rtxSSRC: UInt32?
    public var cname: String
    public var streamID: String
    public var trackID: String

    public init(ssrc: UInt32, rtxSSRC: UInt32? = nil, cname: String, streamID: String, trackID: String) {
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        self.cname = cname
        self.streamID = streamID
        self.trackID = trackID
    }
}

/// What this server can receive and forward.
public struct SDPCapabilities: Hashable, Sendable {
    /// H.264 profiles accepted, as the first four hex digits of profile-level-id (profile_idc and
    /// constraint flags; level is not compared): `42e0` constrained baseline, `4200` baseline.
    public var h264Profiles: Set<String>
    /// rtcp-fb values kept when offered.
    public var feedback: Set<String>
    /// Header extension URIs kept when offered (with the offer's IDs).
    public var headerExtensions: Set<String>

    public init(h264Profiles: Set<String> = ["42e0", "4200"],
                feedback: Set<String> = ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"],
                headerExtensions: Set<String> = SDPCapabilities.defaultHeaderExtensions) {
        self.h264Profiles = h264Profiles
        self.feedback = feedback
        self.headerExtensions = headerExtensions
    }

    public static let defaultHeaderExtensions: Set<String> = [
        "urn:ietf:params:rtp-hdrext:sdes:mid",
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    ]

    /// Whether a primary (non-RTX) codec can be received: Opus 48000/2, VP8, or H.264 with
    /// packetization-mode=1 and a supported profile (RFC 6184 §8.1).
    public func supports(_ codec: SDPCodec, kind: String) -> Bool {
        switch (kind, codec.name.lowercased()) {
        case ("audio", "opus"):
            return codec.clockRate == 48000 && codec.channels == 2
        case ("video", "vp8"):
            return codec.clockRate == 90000
        case ("video", "h264"):
            let p = codec.parameters
            guard codec.clockRate == 90000, p["packetization-mode"] == "1",
                  let profile = p["profile-level-id"], profile.count == 6 else { return false }
            return h264Profiles.contains(String(profile.prefix(4)).lowercased())
        default:
            return false
        }
    }
}

/// Everything the answer needs from the caller.
public struct SDPAnswerOptions: Hashable, Sendable {
    public var iceUfrag: String
    public var icePwd: String
    /// This server's DTLS certificate fingerprint.
    public var fingerprint: SDPFingerprint
    /// Host UDP candidates, written in every accepted m-section.
    public var candidates: [SDPCandidate]
    /// `o=` session id and version (RFC 8866 §5.2); JSEP wants a random 62-bit id.
    public var sessionID: UInt64
    public var sessionVersion: UInt64
    public var capabilities: SDPCapabilities
    /// How to answer an m-section offered sendrecv: `.recvonly` for a publisher, `.sendonly`
    /// for a viewer, `.sendrecv` for both.
    public var answerToSendRecv: SDPDirection
    /// Tracks this server will send, by the m-section's mid.
    public var outgoingTracks: [String: SDPOutgoingTrack]

    public init(iceUfrag: String, icePwd: String, fingerprint: SDPFingerprint, candidates: [SDPCandidate],
                sessionID: UInt64, sessionVersion: UInt64 = 2, capabilities: SDPCapabilities = SDPCapabilities(),
                answerToSendRecv: SDPDirection = .recvonly, outgoingTracks: [String: SDPOutgoingTrack] = [:]) {
        self.iceUfrag = iceUfrag
        self.icePwd = icePwd
        self.fingerprint = fingerprint
        self.candidates = candidates
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.capabilities = capabilities
        self.answerToSendRecv = answerToSendRecv
        self.outgoingTracks = outgoingTracks
    }
}

extension SessionDescription {
    /// The ICE-lite, DTLS-passive, bundled answer to `offer` (JSEP §5.3.1). Audio and video
    /// m-sections are accepted when they have a codec in common, bundle-only ones included
    /// (RFC 8843 §7.3); others (data channels, unknown kinds) and disabled sections (port 0
    /// without `a=bundle-only`) are rejected with port 0 and left out of the BUNDLE group.
    ///
    /// Every m-section, rejected ones included, carries the transport: `a=ice-ufrag`,
    /// `a=ice-pwd`, `a=fingerprint` and `a=setup:passive` (RFC 8829 §5.3.1, RFC 8842 §5.3).
    /// Stacks such as GStreamer's webrtcbin refuse an answer whose sections lack `a=setup`.
    /// No section carries `a=bundle-only` (RFC 8829 §5.3.1).
    public static func answer(to offer: SessionDescription, options: SDPAnswerOptions) throws(SDPError) -> SessionDescription {
        guard !offer.media.isEmpty else { throw SDPError(.noMedia, "the offer has no m= section; nothing to answer") }
        var answer = SessionDescription(origin: "- \(options.sessionID) \(options.sessionVersion) IN IP4 127.0.0.1")
        answer.iceLite = true
        answer.extmapAllowMixed = offer.extmapAllowMixed

        let bundle = offer.bundleGroup
        let tagged = offer.offererTaggedSection(where: \.carriesRTPMedia)
        var bundled: [String] = []
        for (index, m) in offer.media.enumerated() {
            let label = "m-section \(index) (\(m.kind))"
            guard m.carriesRTPMedia, !m.isDisabled else {
                answer.media.append(rejected(m, options))
                continue
            }
            guard let mid = m.mid else {
                throw SDPError(.notBundleable, "\(label) has no a=mid, so it cannot be bundled (RFC 9143 §7.2)")
            }
            guard let bundle else {
                throw SDPError(.notBundleable, "the offer has no a=group:BUNDLE; this server carries all media on one transport (RFC 9143)")
            }
            guard bundle.mids.contains(mid) else {
                throw SDPError(.notBundleable, "\(label) mid '\(mid)' is not in the offer's BUNDLE group \(bundle.mids)")
            }
            // A bundle-only section may leave out the transport attributes: the offerer-tagged
            // section's apply to it (RFC 8843 §7.2). Other sections must carry their own.
            let transport: SDPMediaSection
            if m.bundleOnly {
                guard let tagged else {
                    throw SDPError(.notBundleable, "\(label) is bundle-only, but no audio/video section of the BUNDLE group \(bundle.mids) has a port to carry the transport (RFC 8843 §7.3.1)")
                }
                transport = tagged
            } else {
                transport = m
            }
            guard transport.rtcpMux else {
                throw SDPError(.notBundleable, "\(label) lacks a=rtcp-mux, which BUNDLE requires (RFC 8843 §9.1)")
            }
            guard offer.iceUfrag(for: transport) != nil, offer.icePwd(for: transport) != nil else {
                throw SDPError(.noICECredentials, "\(label) has no a=ice-ufrag/a=ice-pwd at media or session level (RFC 8839 §5.4)")
            }
            guard !offer.fingerprints(for: transport).isEmpty else {
                throw SDPError(.noFingerprint, "\(label) has no a=fingerprint at media or session level (RFC 8122 §5)")
            }
            if offer.setup(for: transport) == .passive {
                throw SDPError(.unsupportedSetup, "\(label) offers a=setup:passive, but this server is always the DTLS server (a=setup:passive); offer actpass or active (RFC 5763 §5)")
            }
            let codecs = commonCodecs(m, options.capabilities)
            guard !codecs.isEmpty else {
                let offered = m.codecs.map { "\($0.name)/\($0.clockRate)" }.joined(separator: ", ")
                throw SDPError(.noCommonCodec, "no codec in common in \(label): offered [\(offered)], supported: Opus 48000/2 for audio; VP8, H264 packetization-mode=1 profiles \(options.capabilities.h264Profiles.sorted()) for video")
            }

            var section = SDPMediaSection(kind: m.kind, port: options.candidates.first?.address.port ?? 9, proto: m.proto,
                                          formats: codecs.map { String($0.payloadType) })
            if let first = options.candidates.first?.address {
                section.connection = "IN \(first.ip.isIPv4 ? "IP4" : "IP6") \(first.ip)"
            } else {
                section.connection = "IN IP4 0.0.0.0"
            }
            addTransport(to: &section, options)
            section.mid = mid
            section.rtcpMux = true
            section.rtcpReducedSize = m.rtcpReducedSize || transport.rtcpReducedSize
            section.codecs = codecs
            section.extmaps = m.extmaps.filter { options.capabilities.headerExtensions.contains($0.uri) }
                .map { SDPExtmap(id: $0.id, uri: $0.uri) }

            let direction: SDPDirection
            switch m.effectiveDirection {
            case .sendrecv: direction = options.answerToSendRecv
            case let d: direction = d.reversed
            }
            section.direction = direction

            // RFC 8853 §5.3: accept the offered simulcast send streams as recv, with matching rids.
            if direction.receives, let simulcast = m.simulcast, !simulcast.send.isEmpty {
                let offered = Set(simulcast.send.flatMap { $0.map(\.rid) })
                section.rids = m.rids.filter { $0.direction == .send && offered.contains($0.id) }
                    .map { SDPRid(id: $0.id, direction: .recv) }
                section.simulcast = SDPSimulcast(recv: simulcast.send)
            }

            if direction.sends, let track = options.outgoingTracks[mid] {
                section.msids = [SDPMediaStreamID(streamID: track.streamID, trackID: track.trackID)]
                var ssrcs = [track.ssrc]
                if let rtx = track.rtxSSRC, codecs.contains(where: { $0.name.lowercased() == "rtx" }) {
                    ssrcs.append(rtx)
                    section.sourceGroups = [SDPSourceGroup(semantics: "FID", ssrcs: ssrcs)]
                }
                for ssrc in ssrcs {
                    section.sourceAttributes.append(SDPSourceAttribute(ssrc: ssrc, attribute: "cname", value: track.cname))
                    section.sourceAttributes.append(SDPSourceAttribute(ssrc: ssrc, attribute: "msid", value: "\(track.streamID) \(track.trackID)"))
                }
            }

            section.candidates = options.candidates.map(\.attributeValue)
            section.endOfCandidates = true
            answer.media.append(section)
            bundled.append(mid)
        }
        if !bundled.isEmpty {
            // RFC 9143 §7.3.1: the answer's group lists the accepted mids in offer order, with the
            // answerer BUNDLE-tag (the offerer-tagged section's mid) first.
            var mids = (bundle?.mids ?? []).filter(bundled.contains)
            if let tag = tagged?.mid, let i = mids.firstIndex(of: tag) { mids.insert(mids.remove(at: i), at: 0) }
            answer.groups = [SDPGroup(semantics: "BUNDLE", mids: mids)]
        }
        return answer
    }

    /// The transport this server answers with, written in every m-section (RFC 8829 §5.3.1):
    /// one ICE-lite agent and one DTLS server for the whole bundle.
    private static func addTransport(to section: inout SDPMediaSection, _ options: SDPAnswerOptions) {
        section.iceUfrag = options.iceUfrag
        section.icePwd = options.icePwd
        section.fingerprints = [options.fingerprint]
        section.setup = .passive
    }

    /// A rejected m-section: port 0, the offer's formats, its mid (JSEP §5.3.1), and the
    /// transport attributes, which some answer parsers require of every section.
    private static func rejected(_ m: SDPMediaSection, _ options: SDPAnswerOptions) -> SDPMediaSection {
        var section = SDPMediaSection(kind: m.kind, port: 0, proto: m.proto, formats: m.formats)
        section.connection = "IN IP4 0.0.0.0"
        addTransport(to: &section, options)
        section.mid = m.mid
        section.direction = .inactive
        return section
    }

    /// The offer's codecs this server supports, in offer order, with offer payload types, fmtp,
    /// and rtcp-fb cut down to the supported set; RTX is kept when its `apt=` codec is kept.
    private static func commonCodecs(_ m: SDPMediaSection, _ caps: SDPCapabilities) -> [SDPCodec] {
        let primaries = Set(m.codecs.filter { caps.supports($0, kind: m.kind) }.map(\.payloadType))
        guard !primaries.isEmpty else { return [] }
        return m.codecs.compactMap { codec -> SDPCodec? in
            var kept = codec
            if codec.name.lowercased() == "rtx" {
                guard let apt = codec.parameters["apt"].flatMap({ UInt8($0) }), primaries.contains(apt) else { return nil }
                kept.feedback = []
                return kept
            }
            guard primaries.contains(codec.payloadType) else { return nil }
            var seen = Set<String>()
            kept.feedback = codec.feedback.filter { caps.feedback.contains($0) && seen.insert($0).inserted }
            return kept
        }
    }
}
