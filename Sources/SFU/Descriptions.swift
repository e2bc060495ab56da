// What signalling tells the core about a producer (from the publisher's offer) and a consumer
// (from the subscriber's negotiated answer). The core never parses SDP itself beyond these helpers.
import RTC

/// One encoding of a producer: a simulcast RID layer or the single stream.
public struct ProducerLayerDescription: Hashable, Sendable {
    /// RFC 8851 rid; nil for a non-simulcast stream.
    public var rid: String?
    /// Known from `a=ssrc`, or nil to learn it from the first packet carrying `rid` (RFC 8852).
    public var ssrc: UInt32?
    /// RTX SSRC (`a=ssrc-group:FID`), if known.
    public var rtxSSRC: UInt32?

    public init(rid: String? = nil, ssrc: UInt32? = nil, rtxSSRC: UInt32? = nil) {
        self.rid = rid
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
    }
}

/// An incoming track as the publisher negotiated it.
public struct ProducerDescription: Hashable, Sendable {
    public var kind: MediaKind
    public var codec: CodecFamily
    public var payloadType: UInt8
    public var clockRate: UInt32
    public var rtxPayloadType: UInt8?
    /// Ordered from lowest to highest quality (Chrome's `a=simulcast:send q;h;f` order).
    public var layers: [ProducerLayerDescription]
    /// `urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id` local ID, needed when a layer has no SSRC.
    public var ridExtensionID: UInt8?
    /// `urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id` local ID.
    public var repairedRidExtensionID: UInt8?
    /// The m-section's mid and the `urn:ietf:params:rtp-hdrext:sdes:mid` local ID: when two
    /// simulcast tracks of one transport use the same rids, the MID tells them apart (RFC 8843 §9.2).
    public var mid: String?
    public var midExtensionID: UInt8?

    public init(kind: MediaKind, codec: CodecFamily, payloadType: UInt8, clockRate: UInt32,
                rtxPayloadType: UInt8? = nil, layers: [ProducerLayerDescription],
                ridExtensionID: UInt8? = nil, repairedRidExtensionID: UInt8? = nil,
                mid: String? = nil, midExtensionID: UInt8? = nil) {
        self.mid = mid
        self.midExtensionID = midExtensionID
        self.kind = kind
        self.codec = codec
        self.payloadType = payloadType
        self.clockRate = clockRate
        self.rtxPayloadType = rtxPayloadType
        self.layers = layers
        self.ridExtensionID = ridExtensionID
        self.repairedRidExtensionID = repairedRidExtensionID
    }

    public static let ridURI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
    public static let repairedRidURI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
    public static let midURI = "urn:ietf:params:rtp-hdrext:sdes:mid"

    /// From a publisher's send m-section: codec `payloadType` (default: the first codec that is
    /// not rtx/red/ulpfec), its RTX PT (`apt=`), layers from `a=simulcast` send streams in listed
    /// order or else from `a=ssrc`/`a=ssrc-group:FID`, and the RID extension IDs.
    public init(section m: SDPMediaSection, sessionExtmaps: [SDPExtmap] = [], payloadType: UInt8? = nil) throws(SFUError) {
        guard let kind = MediaKind(rawValue: m.kind) else {
            throw SFUError(.invalidDescription, "m=\(m.kind) is not audio or video")
        }
        let repairCodecs: Set<String> = ["rtx", "red", "ulpfec", "flexfec-03", "cn", "telephone-event"]
        let chosen = payloadType.flatMap { m.codec($0) }
            ?? m.codecs.first { !repairCodecs.contains($0.name.lowercased()) }
        guard let codec = chosen else {
            throw SFUError(.invalidDescription, "m=\(m.kind) mid=\(m.mid ?? "?") has no media codec")
        }
        let rtx = m.codecs.first { $0.name.lowercased() == "rtx" && $0.parameters["apt"] == String(codec.payloadType) }
        let extmaps = m.extmaps.isEmpty ? sessionExtmaps : m.extmaps
        func extID(_ uri: String) -> UInt8? {
            extmaps.first { $0.uri == uri }.flatMap { UInt8(exactly: $0.id) }
        }
        var layers: [ProducerLayerDescription] = []
        if let simulcast = m.simulcast, !simulcast.send.isEmpty {
            layers = simulcast.send.compactMap { $0.first }.map { ProducerLayerDescription(rid: $0.rid) }
        } else {
            let fid = m.sourceGroups.first { $0.semantics == "FID" && $0.ssrcs.count == 2 }
            let primary = fid?.ssrcs[0] ?? m.sourceAttributes.first?.ssrc
            layers = [ProducerLayerDescription(ssrc: primary, rtxSSRC: fid?.ssrcs[1])]
        }
        self.init(kind: kind, codec: CodecFamily(encodingName: codec.name), payloadType: codec.payloadType,
                  clockRate: codec.clockRate, rtxPayloadType: rtx?.payloadType, layers: layers,
                  ridExtensionID: extID(Self.ridURI), repairedRidExtensionID: extID(Self.repairedRidURI),
                  mid: m.mid, midExtensionID: extID(Self.midURI))
    }
}

/// An outgoing copy of a producer toward one subscriber, as its answer negotiated it.
public struct ConsumerDescription: Hashable, Sendable {
    /// Freshly allocated outgoing SSRC.
    public var ssrc: UInt32
    /// The subscriber's payload type for the producer's codec.
    public var payloadType: UInt8
    /// Outgoing RTX SSRC and PT when the subscriber negotiated RTX (RFC 4588); else plain resend.
    public var rtxSSRC: UInt32?
    public var rtxPayloadType: UInt8?
    /// Publisher's extension ID → subscriber's; IDs not listed are blanked to padding. `nil`
    /// forwards extension blocks untouched. See `extensionIDMap(from:to:)`.
    public var extensionIDs: [UInt8: UInt8]?
    /// First outgoing sequence number and timestamp (RFC 3550 §5.1 wants them random; the
    /// shell picks them, tests fix them).
    public var initialSequenceNumber: UInt16
    public var initialTimestamp: UInt32
    /// Preferred simulcast layer index (nil: the highest).
    public var preferredLayer: Int?
    /// When false the preferred layer is kept whatever the subscriber's bandwidth estimate (a
    /// viewer that asked for a layer by rid); it still falls back when that layer stops.
    public var followsBandwidthEstimate: Bool

    public init(ssrc: UInt32, payloadType: UInt8, rtxSSRC: UInt32? = nil, rtxPayloadType: UInt8? = nil,
                extensionIDs: [UInt8: UInt8]? = nil, initialSequenceNumber: UInt16 = 1,
                initialTimestamp: UInt32 = 0, preferredLayer: Int? = nil, followsBandwidthEstimate: Bool = true) {
        self.followsBandwidthEstimate = followsBandwidthEstimate
        self.ssrc = ssrc
        self.payloadType = payloadType
        self.rtxSSRC = rtxSSRC
        self.rtxPayloadType = rtxPayloadType
        self.extensionIDs = extensionIDs
        self.initialSequenceNumber = initialSequenceNumber
        self.initialTimestamp = initialTimestamp
        self.preferredLayer = preferredLayer
    }

    /// Extensions the SFU must not pass through verbatim: MID/RID values belong to the
    /// publisher's m-section, transport-wide sequence numbers to the publisher's transport.
    public static let transportScopedURIs: Set<String> = [
        ProducerDescription.midURI,
        ProducerDescription.ridURI,
        ProducerDescription.repairedRidURI,
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    ]

    /// Matches extensions by URI (RFC 8285 §5) and drops the transport-scoped ones.
    public static func extensionIDMap(from publisher: [SDPExtmap], to subscriber: [SDPExtmap]) -> [UInt8: UInt8] {
        var out: [UInt8: UInt8] = [:]
        for p in publisher where !transportScopedURIs.contains(p.uri) {
            if let s = subscriber.first(where: { $0.uri == p.uri }),
               let old = UInt8(exactly: p.id), let new = UInt8(exactly: s.id) {
                out[old] = new
            }
        }
        return out
    }
}
