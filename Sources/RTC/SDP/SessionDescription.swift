import Identity
// SDP (RFC 8866) as WebRTC uses it: JSEP (RFC 8829), BUNDLE (RFC 9143), ICE attributes
// (RFC 8839), DTLS fingerprint/setup (RFC 8122, RFC 5763), RTP attributes (rtpmap/fmtp RFC 8866
// §6.6/§6.15, rtcp-fb RFC 4585 §4.2, extmap RFC 8285 §5, ssrc RFC 5576, msid RFC 8830), rid
// (RFC 8851) and simulcast (RFC 8853). The typed model holds what an SFU negotiates; every other
// attribute is kept in `otherAttributes` so nothing is silently lost.

/// Codes for `SDPError`.
public enum SDPErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// A line is not `<letter>=<value>` or its value does not parse (the message names the line).
        case malformedLine
        /// No `a=fingerprint` at session or media level (RFC 8122 §5, RFC 8829 §5.8).
        case noFingerprint
        /// No `a=ice-ufrag` or `a=ice-pwd` at session or media level (RFC 8839 §5.4).
        case noICECredentials
        /// An m-section offers no codec this server supports.
        case noCommonCodec
        /// Media cannot share one transport: no BUNDLE group, a section outside it, no mid, no rtcp-mux.
        case notBundleable
        /// The offer's `a=setup` leaves this server no role it can take (it is always DTLS passive).
        case unsupportedSetup
        /// The offer has no m-section at all.
        case noMedia

        public var description: String { rawValue }
    }
}

/// An SDP that could not be parsed or answered, and why.
public typealias SDPError = CodedError<SDPErrorDomain>

/// Media direction attribute (RFC 8866 §6.7).
public enum SDPDirection: String, Hashable, Sendable, CaseIterable {
    case sendrecv, sendonly, recvonly, inactive

    /// The direction an answerer uses for an offer of this direction when it goes along.
    public var reversed: SDPDirection {
        switch self {
        case .sendonly: .recvonly
        case .recvonly: .sendonly
        case .sendrecv, .inactive: self
        }
    }

    public var sends: Bool { self == .sendrecv || self == .sendonly }
    public var receives: Bool { self == .sendrecv || self == .recvonly }
}

/// DTLS role attribute (RFC 4145 §4, RFC 5763 §5).
public enum SDPSetupRole: String, Hashable, Sendable {
    case active, passive, actpass, holdconn
}

/// `a=fingerprint:<hash-func> <hex>` (RFC 8122 §5).
public struct SDPFingerprint: Hashable, Sendable {
    /// e.g. `sha-256`, lowercase.
    public var hashFunction: String
    /// Uppercase hex pairs separated by colons.
    public var value: String

    public init(hashFunction: String, value: String) {
        self.hashFunction = hashFunction
        self.value = value
    }

    /// Formats a digest as RFC 8122 wants it: `AB:CD:…`.
    public init(hashFunction: String = "sha-256", digest: [UInt8]) {
        self.hashFunction = hashFunction
        self.value = digest.map { hexString([$0]).uppercased() }.joined(separator: ":")
    }
}

/// `a=group:<semantics> <mid>…` (RFC 5888 §5, BUNDLE in RFC 9143).
public struct SDPGroup: Hashable, Sendable {
    public var semantics: String
    public var mids: [String]
    public init(semantics: String, mids: [String]) {
        self.semantics = semantics
        self.mids = mids
    }
}

/// `a=extmap:<id>[/<direction>] <uri> [<attributes>]` (RFC 8285 §5).
public struct SDPExtmap: Hashable, Sendable {
    public var id: UInt16
    public var direction: SDPDirection?
    public var uri: String
    public var attributes: String?
    public init(id: UInt16, direction: SDPDirection? = nil, uri: String, attributes: String? = nil) {
        self.id = id
        self.direction = direction
        self.uri = uri
        self.attributes = attributes
    }
}

/// One payload type: its rtpmap, fmtp and rtcp-fb lines together.
public struct SDPCodec: Hashable, Sendable {
    public var payloadType: UInt8
    /// Encoding name as written (`opus`, `VP8`, `H264`, `rtx`).
    public var name: String
    public var clockRate: UInt32
    /// Channel count for audio (`opus/48000/2`).
    public var channels: UInt8?
    /// The fmtp value verbatim (`minptime=10;useinbandfec=1`).
    public var formatParameters: String?
    /// rtcp-fb values for this payload type (`nack`, `nack pli`, `transport-cc`, …).
    public var feedback: [String]

    public init(payloadType: UInt8, name: String, clockRate: UInt32, channels: UInt8? = nil,
                formatParameters: String? = nil, feedback: [String] = []) {
        self.payloadType = payloadType
        self.name = name
        self.clockRate = clockRate
        self.channels = channels
        self.formatParameters = formatParameters
        self.feedback = feedback
    }

    /// fmtp `key=value` pairs (keys lowercased); keys without `=` map to "".
    public var parameters: [String: String] {
        var out: [String: String] = [:]
        for part in (formatParameters ?? "").split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard let key = kv.first else { continue }
            out[key.trimmingSDPSpaces().lowercased()] = kv.count > 1 ? kv[1].trimmingSDPSpaces() : ""
        }
        return out
    }
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576 §4.1).
public struct SDPSourceAttribute: Hashable, Sendable {
    public var ssrc: UInt32
    public var attribute: String
    public var value: String?
    public init(ssrc: UInt32, attribute: String, value: String?) {
        self.ssrc = ssrc
        self.attribute = attribute
        self.value = value
    }
}

/// `a=ssrc-group:<semantics> <ssrc>…` (RFC 5576 §4.2), e.g. FID for RTX.
public struct SDPSourceGroup: Hashable, Sendable {
    public var semantics: String
    public var ssrcs: [UInt32]
    public init(semantics: String, ssrcs: [UInt32]) {
        self.semantics = semantics
        self.ssrcs = ssrcs
    }
}

/// `a=rid:<id> <send|recv> [<restrictions>]` (RFC 8851 §4).
public struct SDPRid: Hashable, Sendable {
    public enum Direction: String, Hashable, Sendable { case send, recv }
    public var id: String
    public var direction: Direction
    public var restrictions: String?
    public init(id: String, direction: Direction, restrictions: String? = nil) {
        self.id = id
        self.direction = direction
        self.restrictions = restrictions
    }
}

/// `a=simulcast:` (RFC 8853 §5.1): per direction, a list of streams, each a list of
/// alternative rids; `~` marks a stream paused.
public struct SDPSimulcast: Hashable, Sendable {
    public struct Alternative: Hashable, Sendable {
        public var rid: String
        public var paused: Bool
        public init(rid: String, paused: Bool = false) {
            self.rid = rid
            self.paused = paused
        }
    }

    public var send: [[Alternative]]
    public var recv: [[Alternative]]

    public init(send: [[Alternative]] = [], recv: [[Alternative]] = []) {
        self.send = send
        self.recv = recv
    }

    static func format(_ streams: [[Alternative]]) -> String {
        streams.map { $0.map { ($0.paused ? "~" : "") + $0.rid }.joined(separator: ",") }.joined(separator: ";")
    }

    var value: String {
        var parts: [String] = []
        if !send.isEmpty { parts.append("send " + SDPSimulcast.format(send)) }
        if !recv.isEmpty { parts.append("recv " + SDPSimulcast.format(recv)) }
        return parts.joined(separator: " ")
    }
}

/// `a=msid:<stream id> [<track id>]` (RFC 8830 §2).
public struct SDPMediaStreamID: Hashable, Sendable {
    public var streamID: String
    public var trackID: String?
    public init(streamID: String, trackID: String? = nil) {
        self.streamID = streamID
        self.trackID = trackID
    }
}

/// An attribute the typed model does not hold: `a=name` or `a=name:value`.
public struct SDPAttribute: Hashable, Sendable {
    public var name: String
    public var value: String?
    public init(name: String, value: String? = nil) {
        self.name = name
        self.value = value
    }
    var line: String { "a=" + name + (value.map { ":" + $0 } ?? "") }
}

/// One `m=` section and its attributes.
public struct SDPMediaSection: Hashable, Sendable {
    /// `audio`, `video`, `application`, …
    public var kind: String
    /// 0 means rejected (RFC 8866 §5.14, RFC 3264 §6).
    public var port: UInt16
    public var proto: String
    /// The m-line's format list verbatim (payload types for RTP).
    public var formats: [String]
    /// `c=` value (`IN IP4 0.0.0.0`).
    public var connection: String?
    /// `b=` values verbatim.
    public var bandwidths: [String] = []
    public var mid: String?
    /// `a=bundle-only` (RFC 8843 §6): with port 0, the offerer wants the section only if it is
    /// bundled. Answers never carry it (RFC 8829 §5.3.1).
    public var bundleOnly = false
    /// `nil` when absent (RFC 8866 §6.7: defaults to sendrecv).
    public var direction: SDPDirection?
    public var iceUfrag: String?
    public var icePwd: String?
    public var iceOptions: String?
    public var fingerprints: [SDPFingerprint] = []
    public var setup: SDPSetupRole?
    public var rtcpMux = false
    public var rtcpReducedSize = false
    /// `a=rtcp:` value verbatim.
    public var rtcp: String?
    /// Codecs with an rtpmap, in m-line order.
    public var codecs: [SDPCodec] = []
    public var extmaps: [SDPExtmap] = []
    public var sourceAttributes: [SDPSourceAttribute] = []
    public var sourceGroups: [SDPSourceGroup] = []
    public var rids: [SDPRid] = []
    public var simulcast: SDPSimulcast?
    public var msids: [SDPMediaStreamID] = []
    /// `a=candidate:` values verbatim.
    public var candidates: [String] = []
    public var endOfCandidates = false
    public var otherAttributes: [SDPAttribute] = []

    public init(kind: String, port: UInt16, proto: String, formats: [String]) {
        self.kind = kind
        self.port = port
        self.proto = proto
        self.formats = formats
    }

    /// RFC 8866 §6.7: absent means sendrecv.
    public var effectiveDirection: SDPDirection { direction ?? .sendrecv }

    /// Port 0 without `a=bundle-only` disables a section (RFC 3264 §8.2); with it, the section
    /// asks to be bundled and is still offered (RFC 8843 §6).
    public var isDisabled: Bool { port == 0 && !bundleOnly }

    /// Audio or video over SRTP with RTCP feedback: what this server can accept.
    public var carriesRTPMedia: Bool { (kind == "audio" || kind == "video") && proto.contains("RTP/SAVPF") }

    /// The codec for payload type `pt`.
    public func codec(_ pt: UInt8) -> SDPCodec? { codecs.first { $0.payloadType == pt } }
}

/// A whole session description.
public struct SessionDescription: Hashable, Sendable {
    /// `o=` value verbatim (`- 4004268869 4004268869 IN IP4 0.0.0.0`).
    public var origin: String
    public var sessionName: String
    /// `t=` value.
    public var timing: String
    public var connection: String?
    public var iceLite = false
    public var iceUfrag: String?
    public var icePwd: String?
    public var iceOptions: String?
    public var fingerprints: [SDPFingerprint] = []
    public var setup: SDPSetupRole?
    public var groups: [SDPGroup] = []
    /// `a=msid-semantic:` value verbatim.
    public var msidSemantic: String?
    /// RFC 8285 §6: one- and two-byte extension forms may be mixed in one packet.
    public var extmapAllowMixed = false
    public var extmaps: [SDPExtmap] = []
    public var otherAttributes: [SDPAttribute] = []
    public var media: [SDPMediaSection] = []

    public init(origin: String = "- 0 0 IN IP4 127.0.0.1", sessionName: String = "-", timing: String = "0 0") {
        self.origin = origin
        self.sessionName = sessionName
        self.timing = timing
    }

    /// The BUNDLE group, if any (RFC 9143 §7.1).
    public var bundleGroup: SDPGroup? { groups.first { $0.semantics == "BUNDLE" } }

    /// The offerer-tagged m-section (RFC 8843 §7.3.1): the first section named in the BUNDLE
    /// group that has a port and that the answerer accepts. Its transport (ICE credentials,
    /// fingerprint, setup, rtcp-mux) applies to every bundled section, including bundle-only
    /// ones, which need not repeat it (RFC 8843 §7.2). nil without a BUNDLE group, or when no
    /// such section exists.
    public func offererTaggedSection(where accepted: (SDPMediaSection) -> Bool = { _ in true }) -> SDPMediaSection? {
        guard let bundle = bundleGroup else { return nil }
        for mid in bundle.mids {
            if let m = media.first(where: { $0.mid == mid }), m.port != 0, accepted(m) { return m }
        }
        return nil
    }

    /// ICE ufrag for a section: media-level wins over session-level (RFC 8839 §5.4).
    public func iceUfrag(for m: SDPMediaSection) -> String? { m.iceUfrag ?? iceUfrag }
    public func icePwd(for m: SDPMediaSection) -> String? { m.icePwd ?? icePwd }
    public func fingerprints(for m: SDPMediaSection) -> [SDPFingerprint] { m.fingerprints.isEmpty ? fingerprints : m.fingerprints }
    public func setup(for m: SDPMediaSection) -> SDPSetupRole? { m.setup ?? setup }
}

extension Substring {
    func trimmingSDPSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
