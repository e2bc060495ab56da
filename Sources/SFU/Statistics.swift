// Reception statistics for one incoming SSRC (RFC 3550 Appendix A.1 sequence validation,
// A.3 loss, A.8 interarrival jitter), the bitrate of a layer over a sliding window, and the
// retransmission ring.
import RTC

/// RFC 3550 A.1 and A.3, without the probation period (WebRTC senders start sequences at random
/// values but never restart them mid-stream). Used by the SFU's receiver reports and by the QoS
/// challenger's loss and jitter samples.
public struct ReceiveStatistics: Sendable {
    static let maxDropout: UInt16 = 3000
    static let maxMisorder: UInt16 = 100

    private(set) var started = false
    private var baseSequence: UInt32 = 0
    private(set) var maxSequence: UInt16 = 0
    private var cycles: UInt32 = 0
    private var badSequence: UInt32 = 0x1_0001
    private(set) var received: UInt64 = 0
    private var expectedPrior: UInt64 = 0
    private var receivedPrior: UInt64 = 0
    /// A.8: relative transit time of the previous in-order packet, in timestamp units.
    private var transit: Int64 = 0
    private var hasTransit = false
    /// Jitter scaled by 16, the integer form of A.8.
    private var jitterScaled: UInt32 = 0
    /// Middle 32 bits of the last SR's NTP timestamp and when it arrived (ms).
    private var lastSenderReport: UInt32 = 0
    private var lastSenderReportAt: Int64?

    public init() {}

    /// Records a packet; false when A.1 judges it a wild jump to ignore (until confirmed).
    public mutating func update(sequence seq: UInt16, rtpTimestamp: UInt32, arrivalMs: Int64, clockRate: UInt32) -> Bool {
        if !started {
            started = true
            restart(at: seq)
            received = 1
            updateJitter(rtpTimestamp: rtpTimestamp, arrivalMs: arrivalMs, clockRate: clockRate)
            return true
        }
        let delta = seq &- maxSequence
        if delta == 0 {
            received += 1  // duplicate; A.1 counts it, so cumulative loss may go negative
            return true
        } else if delta < Self.maxDropout {
            if seq < maxSequence { cycles &+= 0x1_0000 }
            maxSequence = seq
            received += 1
            updateJitter(rtpTimestamp: rtpTimestamp, arrivalMs: arrivalMs, clockRate: clockRate)
            return true
        } else if delta <= UInt16.max - Self.maxMisorder {
            // A very large jump: accept only if the next packet follows it (source restarted).
            if UInt32(seq) == badSequence {
                restart(at: seq)
                received = 1
                hasTransit = false
                return true
            }
            badSequence = UInt32(seq &+ 1)
            return false
        } else {
            received += 1  // late or reordered
            return true
        }
    }

    private mutating func restart(at seq: UInt16) {
        baseSequence = UInt32(seq)
        maxSequence = seq
        badSequence = 0x1_0001
        cycles = 0
        received = 0
        receivedPrior = 0
        expectedPrior = 0
    }

    /// A.8: J += (|D| − J)/16 with D the change of relative transit time, for in-order packets.
    private mutating func updateJitter(rtpTimestamp: UInt32, arrivalMs: Int64, clockRate: UInt32) {
        let arrival = arrivalMs &* Int64(clockRate) / 1000
        let t = arrival &- Int64(rtpTimestamp)
        if hasTransit {
            var d = t &- transit
            if d < 0 { d = -d }
            let dd = UInt32(truncatingIfNeeded: min(d, Int64(UInt32.max >> 5)))
            jitterScaled = jitterScaled &+ dd &- ((jitterScaled &+ 8) >> 4)
        }
        transit = t
        hasTransit = true
    }

    mutating func recordSenderReport(ntp: UInt64, at now: Int64) {
        lastSenderReport = UInt32(truncatingIfNeeded: ntp >> 16)
        lastSenderReportAt = now
    }

    var extendedHighestSequence: UInt32 { cycles &+ UInt32(maxSequence) }
    var expected: UInt64 { UInt64(extendedHighestSequence) &- UInt64(baseSequence) &+ 1 }
    /// A.8 interarrival jitter, in RTP timestamp units.
    public var jitter: UInt32 { jitterScaled >> 4 }

    /// A.3: packets expected and lost since the previous call (lost may be negative when
    /// duplicates arrived); advances the "prior" counters.
    public mutating func takeInterval() -> (expected: Int64, lost: Int64) {
        let expected = Int64(self.expected)
        let expectedInterval = expected - Int64(expectedPrior)
        let receivedInterval = Int64(received) - Int64(receivedPrior)
        expectedPrior = UInt64(max(expected, 0))
        receivedPrior = received
        return (expectedInterval, expectedInterval - receivedInterval)
    }

    /// A.3 report block; advances the "prior" counters, so call once per report.
    mutating func makeReportBlock(ssrc: UInt32, now: Int64) -> RTCPReportBlock {
        let expected = Int64(self.expected)
        var lost = expected - Int64(received)
        lost = min(max(lost, -0x80_0000), 0x7F_FFFF)
        let (expectedInterval, lostInterval) = takeInterval()
        let fraction: UInt8 = (expectedInterval == 0 || lostInterval <= 0) ? 0 : UInt8(min(255, (lostInterval << 8) / expectedInterval))
        var dlsr: UInt32 = 0
        if let at = lastSenderReportAt {
            dlsr = UInt32(truncatingIfNeeded: max(0, now - at) * 65536 / 1000)
        }
        return RTCPReportBlock(ssrc: ssrc, fractionLost: fraction, cumulativeLost: Int32(lost),
                               extendedHighestSequence: extendedHighestSequence, jitter: jitter,
                               lastSenderReport: lastSenderReportAt == nil ? 0 : lastSenderReport,
                               delaySinceLastSenderReport: dlsr)
    }
}

/// Bytes received over the last second, in ten 100 ms buckets.
struct BitrateMeter: Sendable {
    static let bucketMs: Int64 = 100
    static let buckets = 10
    private var bytes = [Int](repeating: 0, count: BitrateMeter.buckets)
    private var epochs = [Int64](repeating: -1, count: BitrateMeter.buckets)

    mutating func add(_ count: Int, now: Int64) {
        let epoch = now / Self.bucketMs
        let slot = Int(epoch % Int64(Self.buckets))
        if epochs[slot] != epoch {
            epochs[slot] = epoch
            bytes[slot] = 0
        }
        bytes[slot] += count
    }

    var memoryBytes: Int { HeapSize.array(bytes) + HeapSize.array(epochs) }

    /// Bits per second over the window ending at `now`.
    func bitsPerSecond(now: Int64) -> Int {
        let epoch = now / Self.bucketMs
        var total = 0
        for i in 0..<Self.buckets where epochs[i] > epoch - Int64(Self.buckets) && epochs[i] <= epoch {
            total += bytes[i]
        }
        return total * 8 * 1000 / Int(Self.bucketMs * Int64(Self.buckets))
    }
}

/// The last packets of one incoming SSRC, indexed by sequence number modulo a power of two.
///
/// What it holds is bounded twice: by age (`maxAge`, older packets are dropped as new ones come
/// and on every report tick) and by bytes (`maxBytes`, the oldest go first), so a layer's buffer
/// costs at most `maxBytes` whatever the publisher's bitrate. Packets are kept as arrays sized to
/// the packet: one that arrives with spare capacity (the SRTP tag removed in place, a receive
/// buffer) is copied down to its length first, otherwise the received array itself is kept
/// (copy-on-write, so storing is free). `heldBytes` counts real capacities plus array headers.
struct RetransmissionBuffer: Sendable {
    /// Spare capacity above which a packet is copied down to its length before it is kept.
    static let compactionSlack = 16

    private var packets: [[UInt8]]
    private var sequences: [UInt16]
    private var arrivals: [Int64]
    private let mask: Int
    /// The cap on `heldBytes`.
    let maxBytes: Int
    /// Heap bytes of the packets held now.
    private(set) var heldBytes = 0
    /// Newest stored sequence number, and the oldest one not yet examined for expiry.
    private var head: UInt16 = 0
    private var tail: UInt16 = 0
    private var isEmpty = true

    init(capacity: Int, maxBytes: Int = .max) {
        var size = 1
        while size < max(1, capacity) { size <<= 1 }
        packets = Array(repeating: [], count: size)
        sequences = Array(repeating: 0, count: size)
        arrivals = Array(repeating: .min, count: size)
        mask = size - 1
        self.maxBytes = maxBytes
    }

    var capacity: Int { mask + 1 }

    static func footprint(_ packet: [UInt8]) -> Int {
        HeapSize.array(packet)
    }

    /// True if this sequence number is already held (a duplicate).
    func contains(_ seq: UInt16, now: Int64, maxAge: Int64) -> Bool {
        let i = Int(seq) & mask
        return sequences[i] == seq && arrivals[i] != .min && now - arrivals[i] <= maxAge
    }

    /// Stores a packet, then frees a few expired ones from the tail (so the ring holds about
    /// `maxAge` worth of media rather than `capacity` packets) and as many of the oldest as it
    /// takes to stay within `maxBytes`.
    mutating func store(_ packet: [UInt8], sequence seq: UInt16, now: Int64, maxAge: Int64) {
        if !isEmpty, Int16(bitPattern: seq &- tail) < 0 {
            // Reordered behind the oldest packet held: keep it only if the ring still spans it.
            guard Int(head &- seq) < capacity else { return }
            tail = seq
        }
        let i = Int(seq) & mask
        if arrivals[i] != .min { release(i) }  // the slot still holds the packet `capacity` numbers back
        let kept = packet.capacity - packet.count >= Self.compactionSlack ? Array(unsafeUninitializedCapacity: packet.count) { b, n in
            n = b.initialize(fromContentsOf: packet)
        } : packet
        packets[i] = kept
        sequences[i] = seq
        arrivals[i] = now
        heldBytes += Self.footprint(kept)
        if isEmpty {
            head = seq
            tail = seq
            isEmpty = false
        } else if Int16(bitPattern: seq &- head) > 0 {
            head = seq
            if Int(head &- tail) >= capacity { tail = head &- UInt16(capacity - 1) }
        }
        let cutoff = now - maxAge
        var steps = 0
        while tail != head, steps < 4 {  // bounded work per packet; expiry outpaces arrival
            let t = Int(tail) & mask
            if sequences[t] == tail, arrivals[t] != .min {
                if arrivals[t] >= cutoff { break }
                release(t)
            }
            tail &+= 1
            steps += 1
        }
        // Each step frees a slot that a later store would otherwise have to, so this is O(1)
        // amortised per packet.
        while heldBytes > maxBytes, tail != head {
            let t = Int(tail) & mask
            if sequences[t] == tail, arrivals[t] != .min { release(t) }
            tail &+= 1
        }
    }

    private mutating func release(_ i: Int) {
        heldBytes -= Self.footprint(packets[i])
        packets[i] = []
        arrivals[i] = .min
    }

    func packet(_ seq: UInt16, now: Int64, maxAge: Int64) -> [UInt8]? {
        let i = Int(seq) & mask
        guard sequences[i] == seq, arrivals[i] != .min, now - arrivals[i] <= maxAge else { return nil }
        return packets[i]
    }

    /// Frees packets too old to be worth retransmitting.
    mutating func evict(olderThan cutoff: Int64) {
        for i in 0...mask where arrivals[i] != .min && arrivals[i] < cutoff {
            release(i)
        }
    }

    /// Heap bytes: the packets held plus the ring's own three arrays, at their real capacities.
    var memoryBytes: Int {
        heldBytes + HeapSize.array(packets) + HeapSize.array(sequences) + HeapSize.array(arrivals)
    }
}

/// What a consumer sent, by outgoing sequence number, so a NACK can find the source packet.
/// One 20-byte entry per packet (this ring is per consumer, so it is most of a consumer's own
/// memory): times are kept as the low 32 bits of the millisecond clock and compared by wrapping
/// difference, exact for ages under 49 days; an older entry can only ever look younger, and the
/// retransmission buffer's own 64-bit arrival times still refuse its packet.
struct SentPacketHistory: Sendable {
    struct Entry: Sendable {
        var outgoingSequence: UInt16 = 0
        var sourceSequence: UInt16 = 0
        var layer: UInt8 = 0
        var flags: UInt8 = 0
        var outgoingTimestamp: UInt32 = 0
        var sentAt: UInt32 = 0
        var lastRetransmitAt: UInt32 = 0

        static let valid: UInt8 = 1
        static let retransmitted: UInt8 = 2
    }

    /// One sent packet, with its times as ages relative to the `now` of the lookup.
    struct Sent: Sendable {
        var sourceSequence: UInt16
        var layer: Int
        var outgoingTimestamp: UInt32
        /// Milliseconds since it was sent.
        var age: Int64
        /// Milliseconds since it was last retransmitted, if it was.
        var sinceRetransmit: Int64?
    }

    private(set) var entries: [Entry]
    private let mask: Int

    init(capacity: Int) {
        var size = 1
        while size < max(1, capacity) { size <<= 1 }
        entries = Array(repeating: Entry(), count: size)
        mask = size - 1
    }

    private static func low(_ ms: Int64) -> UInt32 { UInt32(truncatingIfNeeded: ms) }

    mutating func record(outgoing: UInt16, source: UInt16, layer: Int, timestamp: UInt32, now: Int64) {
        entries[Int(outgoing) & mask] = Entry(outgoingSequence: outgoing, sourceSequence: source,
                                              layer: UInt8(truncatingIfNeeded: layer), flags: Entry.valid,
                                              outgoingTimestamp: timestamp, sentAt: Self.low(now))
    }

    func lookup(_ outgoing: UInt16, now: Int64) -> Sent? {
        let e = entries[Int(outgoing) & mask]
        guard e.flags & Entry.valid != 0, e.outgoingSequence == outgoing else { return nil }
        let nowLow = Self.low(now)
        return Sent(sourceSequence: e.sourceSequence, layer: Int(e.layer), outgoingTimestamp: e.outgoingTimestamp,
                    age: Int64(nowLow &- e.sentAt),
                    sinceRetransmit: e.flags & Entry.retransmitted != 0 ? Int64(nowLow &- e.lastRetransmitAt) : nil)
    }

    mutating func markRetransmitted(_ outgoing: UInt16, at now: Int64) {
        entries[Int(outgoing) & mask].lastRetransmitAt = Self.low(now)
        entries[Int(outgoing) & mask].flags |= Entry.retransmitted
    }

    var memoryBytes: Int { HeapSize.array(entries) }
}
