// Per-producer and per-consumer state (mediasoup's Producer/Consumer, LiveKit's Buffer/DownTrack
// with its Forwarder). Internal: the room is the only API.

/// One simulcast layer (or the only stream) of a producer.
struct ProducerLayer: Sendable {
    var rid: String?
    var ssrc: UInt32?
    var rtxSSRC: UInt32?
    var statistics = ReceiveStatistics()
    var buffer: RetransmissionBuffer
    var meter = BitrateMeter()
    var lastPacketAt: Int64 = .min
    var lastKeyframeAt: Int64 = .min
    var lastKeyframeRequestAt: Int64 = .min
    var bytesReceived = 0

    func isActive(now: Int64, inactiveAfter: Int64) -> Bool {
        lastPacketAt != .min && now - lastPacketAt <= inactiveAfter
    }
}

struct ProducerState: Sendable {
    let id: ProducerID
    let transport: TransportID
    let description: ProducerDescription
    var layers: [ProducerLayer]
    var consumers: [ConsumerID] = []
}

/// What happened to one packet at one consumer.
enum ForwardDecision {
    case drop
    case forward
    /// Forwarded, and it was the keyframe that started or switched the consumer's layer.
    case switched(from: Int?)
}

struct ConsumerState: Sendable {
    let id: ConsumerID
    let transport: TransportID
    let producer: ProducerID
    let description: ConsumerDescription
    let remap: ExtensionRemap
    let kind: MediaKind
    let clockRate: UInt32

    var preferredLayer: Int
    var estimatedBitrate: Int?
    /// The layer forwarded now; nil until the first keyframe.
    var currentLayer: Int?
    /// The layer selection wants; a switch happens on its next keyframe.
    var targetLayer: Int

    // Sequence/timestamp continuity (LiveKit Forwarder, mediasoup SeqManager).
    var sequenceOffset: UInt16 = 0
    var timestampOffset: UInt32 = 0
    var layerStartSequence: UInt16 = 0
    var packetsSinceSwitch = 0
    var highestOutgoingSequence: UInt16 = 0
    var highestOutgoingTimestamp: UInt32 = 0
    var lastSentAt: Int64 = .min
    var rtxSequence: UInt16

    // SR counters (RFC 3550 §6.4.1: octets are payload only).
    var packetsSent: UInt32 = 0
    var octetsSent: UInt32 = 0
    var retransmitted = 0

    var history: SentPacketHistory
    /// A pipe's relay: every layer forwarded verbatim (`Room.addRelayConsumer`).
    var isRelay = false
    var retransmitTokens: Double
    var retransmitTokensAt: Int64 = .min

    var hasSent: Bool { lastSentAt != .min }
    var isWaitingForKeyframe: Bool { !isRelay && currentLayer != targetLayer }

    /// Decides about one packet of `layer` and appends the consumer's copy to `outputs`.
    mutating func forward(_ bytes: [UInt8], view: RTPHeaderView, layer: Int, isKeyframe: Bool, now: Int64,
                          into outputs: inout [RoomOutput], reusing spare: inout [[UInt8]]) -> ForwardDecision {
        if isRelay {
            outputs.append(.sendRTP(transport, PacketRewriter.copy(bytes)))
            packetsSent &+= 1
            octetsSent &+= UInt32(truncatingIfNeeded: view.payload.count)
            return .forward
        }
        var switchedFrom: Int?? = .none
        if let current = currentLayer, layer == current {
            // A late packet of this layer from before we switched to it has no place in our numbering.
            if packetsSinceSwitch < 1000, Int16(bitPattern: view.sequenceNumber &- layerStartSequence) < 0 {
                return .drop
            }
        } else if layer == targetLayer, isKeyframe {
            if hasSent {
                // Continue right after what the subscriber last saw: no sequence gap, and a
                // timestamp advanced by the wall time since (at least one tick).
                let elapsed = max(0, now - lastSentAt)
                let delta = UInt32(truncatingIfNeeded: max(1, elapsed * Int64(clockRate) / 1000))
                sequenceOffset = (highestOutgoingSequence &+ 1) &- view.sequenceNumber
                timestampOffset = (highestOutgoingTimestamp &+ delta) &- view.timestamp
            } else {
                sequenceOffset = description.initialSequenceNumber &- view.sequenceNumber
                timestampOffset = description.initialTimestamp &- view.timestamp
            }
            switchedFrom = .some(currentLayer)
            currentLayer = layer
            layerStartSequence = view.sequenceNumber
            packetsSinceSwitch = 0
        } else {
            return .drop
        }
        packetsSinceSwitch += 1
        let seq = view.sequenceNumber &+ sequenceOffset
        let ts = view.timestamp &+ timestampOffset
        let out = PacketRewriter.rewrite(bytes, view: view, payloadType: description.payloadType,
                                         sequenceNumber: seq, timestamp: ts, ssrc: description.ssrc, remap: remap, reusing: &spare)
        if !hasSent || Int16(bitPattern: seq &- highestOutgoingSequence) > 0 {
            highestOutgoingSequence = seq
            highestOutgoingTimestamp = ts
            lastSentAt = now
        }
        packetsSent &+= 1
        octetsSent &+= UInt32(truncatingIfNeeded: view.payload.count)
        history.record(outgoing: seq, source: view.sequenceNumber, layer: layer, timestamp: ts, now: now)
        outputs.append(.sendRTP(transport, out))
        if case .some(let from) = switchedFrom { return .switched(from: from) }
        return .forward
    }

    /// Token bucket for retransmissions: true (and a token spent) when one may go out now.
    mutating func takeRetransmitToken(now: Int64, perSecond: Int) -> Bool {
        if retransmitTokensAt != .min {
            retransmitTokens = min(Double(perSecond), retransmitTokens + Double(now - retransmitTokensAt) * Double(perSecond) / 1000)
        }
        retransmitTokensAt = now
        guard retransmitTokens >= 1 else { return false }
        retransmitTokens -= 1
        return true
    }
}
