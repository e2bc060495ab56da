import Identity
// The vocabulary of the SFU core: identifiers, configuration, outputs, events and counters.
// Object graph after mediasoup (Router → Transport → Producer/Consumer, STYLE.md §7).
import RTC

/// A participant's WebRTC transport (one ICE/DTLS association), named by the shell.
public struct TransportID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "transport#\(rawValue)" }
}

/// One incoming track (all its simulcast layers), assigned by the room.
public struct ProducerID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { "producer#\(rawValue)" }
}

/// One (subscriber transport, producer) pair, assigned by the room.
public struct ConsumerID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public var description: String { "consumer#\(rawValue)" }
}

public enum MediaKind: String, Hashable, Sendable {
    case audio, video
}

/// What the core must know about a codec's payload: where keyframes start.
public enum CodecFamily: String, Hashable, Sendable {
    /// Every packet is independently decodable ("always key").
    case opus
    /// Keyframes from the payload descriptor and frame header (RFC 7741 §4.2, §4.3).
    case vp8
    /// Keyframes from NAL types 5 (IDR) and 7 (SPS), also inside STAP-A and FU-A (RFC 6184 §5).
    case h264
    /// Unknown payload: treated as always key, so layer switches may show artefacts.
    case other

    /// From an rtpmap encoding name (`VP8`, `H264`, `opus`), case-insensitively.
    public init(encodingName: String) {
        switch encodingName.lowercased() {
        case "opus": self = .opus
        case "vp8": self = .vp8
        case "h264": self = .h264
        default: self = .other
        }
    }
}

/// Codes for `SFUError`.
public enum SFUErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        case unknownTransport, unknownProducer, unknownConsumer
        /// A producer description that cannot be forwarded (no layers, SSRC clash, bad RID setup).
        case invalidDescription
        /// A layer RID the producer does not have.
        case unknownLayer
        public var description: String { rawValue }
    }
}

/// A command the room refused, and why.
public typealias SFUError = CodedError<SFUErrorDomain>

/// Tunables. Defaults follow what mediasoup/LiveKit ship with.
public struct RoomConfiguration: Hashable, Sendable {
    /// SSRC the SFU uses as sender of its own RTCP (RR, REMB, PLI).
    public var rtcpSenderSSRC: UInt32 = 0x5346_5500
    /// Packets kept per incoming video SSRC for retransmission; rounded up to a power of two.
    public var videoRetransmissionPackets = 512
    /// Same for audio (Opus NACK is rare; a small ring keeps the memory down).
    public var audioRetransmissionPackets = 64
    /// Older packets are neither retransmitted nor kept in memory.
    public var retransmissionMaxAgeMs: Int64 = 1000
    /// Heap bytes one incoming video SSRC may keep for retransmission (the oldest packets go
    /// first), so a publisher's buffers cost the same at any bitrate: the ≤ 200 KiB per consumer
    /// budget must hold with a single subscriber, who then pays for the whole buffer. 144 KiB is
    /// ~750 ms of 1.5 Mbit/s VP8 (the full `retransmissionMaxAgeMs` below ~1.1 Mbit/s): room
    /// for a NACK and two retries, one RTT apart, at RTTs up to ~250 ms. mediasoup keeps 2 s of
    /// video and LiveKit 500 packets (~3 s at 1.5 Mbit/s) for every track, several hundred KiB;
    /// when a packet is no longer here the subscriber's PLI brings a keyframe instead.
    public var videoRetransmissionBytes = 144 * 1024
    /// Per consumer: the same sequence number is retransmitted at most once in this interval.
    public var nackSameSequenceIntervalMs: Int64 = 100
    /// Per consumer: retransmissions per second (token bucket of this size, refilled continuously).
    public var maxRetransmissionsPerSecond = 250
    /// Keyframe requests (PLI) to a publisher, per producer layer.
    public var keyframeRequestIntervalMs: Int64 = 1000
    /// Transport-wide congestion control feedback to publishers goes out at this period (libwebrtc
    /// sends it every 50–100 ms), when `tick` is called at least that often.
    public var transportFeedbackIntervalMs: Int64 = 50
    /// Receiver and sender reports (and REMB) go out at this period on `tick`.
    public var reportIntervalMs: Int64 = 1000
    /// When set, REMB toward every publisher never exceeds this.
    public var maxIncomingBitrate: Int?
    /// A layer that sent nothing for this long is not chosen for consumers.
    public var layerInactiveAfterMs: Int64 = 1500

    public init() {}
}

/// What the shell must do after an input.
public enum RoomOutput: Sendable {
    /// Protect with the transport's SRTP context and send.
    case sendRTP(TransportID, [UInt8])
    /// Protect with SRTCP and send.
    case sendRTCP(TransportID, [UInt8])
    case event(RoomEvent)
}

/// Things the signalling layer or an operator may want to know about.
public enum RoomEvent: Hashable, Sendable {
    case producerAdded(ProducerID, TransportID, MediaKind)
    case producerRemoved(ProducerID)
    case consumerRemoved(ConsumerID)
    /// A PLI went to the publisher for this layer's SSRC.
    case keyframeRequested(ProducerID, layer: Int, ssrc: UInt32)
    /// The consumer started (`from == nil`) or switched layer, on a keyframe of `to`.
    case layerSwitched(ConsumerID, from: Int?, to: Int)
    /// A publisher's RID-only layer announced its SSRC with its first packet.
    case layerBound(ProducerID, layer: Int, ssrc: UInt32)
}

/// Room-wide counters, for metrics. Everything dropped is counted under one reason.
public struct RoomCounters: Hashable, Sendable {
    public var rtpReceived = 0
    public var rtpForwarded = 0
    public var rtcpReceived = 0
    public var rtcpSent = 0
    public var malformedRTP = 0
    public var malformedRTCP = 0
    /// RTP (or RTCP for a consumer SSRC) from an SSRC no producer/consumer of that transport owns.
    public var unknownSSRC = 0
    public var unknownTransport = 0
    public var duplicateRTP = 0
    /// RTP whose PT is not the producer's codec (RED, FEC, a codec switch the core was not told of).
    public var unexpectedPayloadType = 0
    /// A jump of more than 3000 sequence numbers, held back until confirmed (RFC 3550 A.1).
    public var sequenceJump = 0
    /// Publisher RTX (repair/padding) packets; the core does not NACK publishers yet.
    public var publisherRTXDropped = 0
    /// Sequence numbers asked for in NACKs.
    public var nackedPackets = 0
    public var retransmitted = 0
    /// NACKed sequence numbers never sent to that consumer, or no longer buffered.
    public var nackUnknownOrTooOld = 0
    public var nackRateLimited = 0
    public var keyframeRequestsFromConsumers = 0
    public var keyframeRequestsSent = 0
    public var keyframeRequestsSuppressed = 0
    public var layerSwitches = 0
    /// Sequence numbers NACKed to the node upstream of a pipe.
    public var nacksSentUpstream = 0

    public init() {}
}
