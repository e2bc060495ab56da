// The receive side of transport-wide congestion control
// (draft-holmer-rmcat-transport-wide-cc-extensions-01): every packet a publisher sends carries a
// transport-wide sequence number; we report when each arrived, and the publisher's send-side
// estimator (Chrome's GCC) turns the arrival pattern into a bandwidth estimate. Without it a
// browser that negotiated transport-cc never raises its estimate, and simulcast stays on its
// lowest layer.
import RTC

struct TransportWideFeedbackState: Sendable {
    /// The publisher's header extension ID for transport-wide sequence numbers.
    var extensionID: UInt8
    /// Unwrapped sequence number → arrival (ms) of packets not yet reported.
    private(set) var arrivals: [(sequence: Int64, at: Int64)] = []
    private var highest: Int64?
    private var lastReported: Int64?
    private var feedbackCount: UInt8 = 0
    var lastSentAt: Int64 = .min

    init(extensionID: UInt8) { self.extensionID = extensionID }

    /// Records one arrival. Sequence numbers are 16-bit; unwrapped against the highest seen.
    mutating func record(_ sequence: UInt16, at now: Int64) {
        let unwrapped: Int64
        if let h = highest {
            unwrapped = h + Int64(Int16(bitPattern: sequence &- UInt16(truncatingIfNeeded: h)))
        } else {
            unwrapped = Int64(sequence)
        }
        highest = max(highest ?? unwrapped, unwrapped)
        // A flood of arrivals between two feedback intervals is bounded, not buffered forever.
        if arrivals.count < 8192 { arrivals.append((unwrapped, now)) }
    }

    /// The feedback for everything recorded since the last one, or nil if nothing new arrived.
    /// Arrival times are in 250 µs ticks on the wire; ours have millisecond resolution.
    mutating func makeFeedback(senderSSRC: UInt32, mediaSSRC: UInt32) -> RTCPTransportFeedback? {
        var fresh = arrivals.filter { lastReported == nil || $0.sequence > lastReported! }
        arrivals.removeAll(keepingCapacity: true)
        guard !fresh.isEmpty else { return nil }
        fresh.sort { $0.sequence < $1.sequence }
        // One report covers at most 4096 sequence numbers; older arrivals are given up.
        let last = fresh[fresh.count - 1].sequence
        let base = max(fresh[0].sequence, last - 4095)
        var byOffset = [Int64?](repeating: nil, count: Int(last - base + 1))
        for a in fresh where a.sequence >= base {
            let i = Int(a.sequence - base)
            if byOffset[i] == nil { byOffset[i] = a.at }
        }
        let firstArrival = byOffset.lazy.compactMap { $0 }.first!
        let reference = firstArrival / 64
        var previousTicks = reference * 64 * 4
        let statuses: [RTCPTransportFeedback.Status] = byOffset.map { at in
            guard let at else { return .notReceived }
            let ticks = at * 4
            let delta = Int16(clamping: ticks - previousTicks)
            previousTicks += Int64(delta)
            return .received(delta: delta)
        }
        lastReported = last
        defer { feedbackCount &+= 1 }
        return RTCPTransportFeedback(
            senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequenceNumber: UInt16(truncatingIfNeeded: base),
            referenceTime: Int32(truncatingIfNeeded: reference & 0x7F_FFFF), feedbackPacketCount: feedbackCount,
            packets: statuses)
    }
}

extension Room {
    /// Turns on transport-wide feedback for a publisher transport whose answer negotiated the
    /// transport-cc extension (with this ID) and `a=rtcp-fb:… transport-cc`.
    public mutating func enableTransportWideFeedback(on transport: TransportID, extensionID: UInt8) {
        transports[transport]?.transportWide = TransportWideFeedbackState(extensionID: extensionID)
    }

    /// Records the transport-wide sequence number of any packet from `transport` (media, RTX and
    /// padding probes alike: the estimator needs them all).
    mutating func recordTransportWide(_ transport: TransportID, view: RTPHeaderView, bytes: [UInt8], now: Int64) {
        guard let id = transports[transport]?.transportWide?.extensionID,
              let value = view.extensionValue(id: id, in: bytes), value.count >= 2 else { return }
        let sequence = UInt16(value[value.startIndex]) << 8 | UInt16(value[value.startIndex + 1])
        transports[transport]!.transportWide!.record(sequence, at: now)
    }

    /// Feedback every `transportFeedbackIntervalMs` to each publisher transport that has news.
    mutating func sendTransportWideFeedback(now: Int64, into outputs: inout [RoomOutput]) {
        for t in transportOrder {
            guard let state = transports[t]?.transportWide,
                  state.lastSentAt == .min || now - state.lastSentAt >= configuration.transportFeedbackIntervalMs else { continue }
            let media = transports[t]!.routes.keys.min() ?? 0
            guard let feedback = transports[t]!.transportWide!.makeFeedback(senderSSRC: configuration.rtcpSenderSSRC, mediaSSRC: media) else { continue }
            transports[t]!.transportWide!.lastSentAt = now
            outputs.append(.sendRTCP(t, RTCPPacket.encodeCompound([.transportFeedback(feedback)])))
            counters.rtcpSent += 1
        }
    }
}
