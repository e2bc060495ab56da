import RTC
import SFU

/// The challenger's side of a test, sans-I/O (Specs/qos.md "Measurement"): it is fed the RTP
/// packets it received from the prover (after SRTP), the round trips of its own STUN checks,
/// and the time; it closes one sample per interval:
///
/// - bitrate: RTP payload bytes received in the interval × 8 / interval;
/// - fraction lost: RFC 3550 A.3 over the interval (expected from the extended highest
///   sequence number, minus received), sequence validation per A.1 (`SFU.ReceiveStatistics`);
/// - RTT: median of the interval's STUN round trips, measured by the challenger itself;
/// - jitter: RFC 3550 A.8 at the end of the interval.
///
/// Nothing the prover computes enters a sample.
public struct ChallengerMeasurement: Sendable {
    public let testStartMs: UInt64
    public let intervalMs: UInt64
    public let intervals: Int
    public let clockRate: UInt32
    public private(set) var samples: [QoSSample] = []
    /// Smallest STUN round trip seen during the test, µs (0: none).
    public private(set) var minRttUs: UInt32 = 0
    public private(set) var packetsReceived = 0
    public private(set) var payloadBytesReceived = 0
    private var statistics = ReceiveStatistics()
    private var ssrc: UInt32?
    private var bytesInInterval = 0
    private var packetsInInterval = 0
    private var rttsInInterval: [UInt32] = []
    private var primed = false

    public init(schedule: QoSSchedule, epoch: UInt64, clockRate: UInt32 = 90_000) {
        testStartMs = schedule.testStartMs(epoch)
        intervalMs = UInt64(schedule.sampleIntervalMs)
        intervals = schedule.intervals
        self.clockRate = clockRate
    }

    public var finished: Bool { samples.count >= intervals }
    public var endMs: UInt64 { testStartMs + UInt64(intervals) * intervalMs }
    /// When the next interval closes (nil: finished).
    public var nextSampleAtMs: UInt64? { finished ? nil : testStartMs + UInt64(samples.count + 1) * intervalMs }

    /// One RTP packet from the prover's stream (decrypted), with its arrival time.
    public mutating func received(_ packet: RTPPacket, atMs now: UInt64) {
        advance(toMs: now)
        guard !finished else { return }
        // The test stream has one SSRC; anything else on the session is not counted.
        if ssrc == nil { ssrc = packet.ssrc }
        guard packet.ssrc == ssrc else { return }
        if now >= testStartMs && !primed {
            // Packets of the setup phase primed sequence numbers and jitter; they do not count
            // as expected in the first interval.
            primed = true
            _ = statistics.takeInterval()
        }
        guard statistics.update(sequence: packet.sequenceNumber, rtpTimestamp: packet.timestamp, arrivalMs: Int64(now), clockRate: clockRate) else { return }
        if now < testStartMs { return }
        packetsReceived += 1
        packetsInInterval += 1
        payloadBytesReceived += packet.payload.count
        bytesInInterval += packet.payload.count
    }

    /// The round trip of one of the challenger's own STUN checks, answered at `now`.
    public mutating func roundTrip(us: UInt32, atMs now: UInt64) {
        advance(toMs: now)
        guard now >= testStartMs, !finished else { return }
        let rtt = max(1, us)
        rttsInInterval.append(rtt)
        minRttUs = minRttUs == 0 ? rtt : min(minRttUs, rtt)
    }

    /// Closes every interval that ended by `now`.
    public mutating func advance(toMs now: UInt64) {
        while let due = nextSampleAtMs, due <= now { closeInterval() }
    }

    private mutating func closeInterval() {
        let rtt: UInt32
        if rttsInInterval.isEmpty {
            rtt = 0
        } else {
            let sorted = rttsInInterval.sorted()
            rtt = sorted[(sorted.count - 1) / 2]
        }
        if packetsInInterval == 0 {
            samples.append(QoSSample(bitrateBps: 0, lossPpm: 1_000_000, rttUs: rtt, jitterUs: 0))
        } else {
            let (expected, lost) = statistics.takeInterval()
            let fraction = expected <= 0 || lost <= 0 ? 0 : min(1, Double(lost) / Double(expected))
            let bps = UInt64(bytesInInterval) * 8 * 1000 / intervalMs
            let jitterUs = UInt64(statistics.jitter) * 1_000_000 / UInt64(clockRate)
            samples.append(QoSSample(bitrateBps: max(1, bps), lossPpm: UInt32(fraction * 1_000_000),
                                     rttUs: rtt, jitterUs: UInt32(min(jitterUs, UInt64(UInt32.max)))))
        }
        bytesInInterval = 0
        packetsInInterval = 0
        rttsInInterval = []
    }

    /// How the test ended, judged from the samples: media until the last interval →
    /// completed; media that started and then stopped → stopped; none at all → no answer.
    public var outcome: TestOutcome {
        guard samples.contains(where: \.hasMedia) else { return .noAnswer }
        return samples.last?.hasMedia == true ? .completed : .stopped
    }

    /// The report (and the samples it commits to) once the test is over. Intervals never
    /// closed (the challenger gave up early) are missing samples.
    public func report(prover: NodeKey, scoring: ScoringParameters = ScoringParameters(), locationImplausible: Bool = false) -> (QoSReport, SampleSeries) {
        var all = samples
        while all.count < intervals { all.append(.missing) }
        let series = SampleSeries(intervalMs: UInt32(intervalMs), samples: all)
        let counts = ScoreCounts.compute(all, scoring)
        var outcome = self.outcome
        if outcome == .completed && !(all.last?.hasMedia ?? false) { outcome = .stopped }
        let report = QoSReport(prover: prover, outcome: outcome, counts: counts, minRttUs: minRttUs,
                               locationImplausible: locationImplausible, samplesHash: counts.samples == 0 ? [] : series.hash)
        return (report, series)
    }
}

/// Fibre carries a signal about 100 km per millisecond of round trip (≈ 200,000 km/s one
/// way, halved for the return): an RTT below distance / 100 km·ms⁻¹ is physically impossible
/// for the claimed positions (Specs/qos.md "Location").
public enum LocationCheck {
    public static let kmPerMsOfRTT = 100.0

    /// Whether `minRttUs` is impossible for nodes `distanceKm` apart. No RTT, no claim.
    public static func isImplausible(minRttUs: UInt32, distanceKm: Double?) -> Bool {
        guard minRttUs > 0, let distanceKm else { return false }
        return Double(minRttUs) / 1000 * kmPerMsOfRTT < distanceKm
    }
}
