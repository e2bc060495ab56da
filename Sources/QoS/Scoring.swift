/// The whitepaper's bucket algorithms and scores (4.3.2.4.2), sample by sample.
///
/// Each sample interval's value is classified against the EWMA of the values *before* it
/// (the functions take `ewma`, which is nil for the first value); then the EWMA takes the value
/// in. Every interval of the test counts in the denominator: the first value (no EWMA yet,
/// bucket "") counts as not good, exactly as the whitepaper's example report, whose
/// `bitrateScore` 0.6153846153846154 is 8 good of its 13 samples (α ∈ [0.6, 0.8]); intervals in
/// which no media arrived count as bad in all three metrics.
public struct ScoringParameters: Hashable, Sendable {
    /// EWMA weight of a new bitrate value. The whitepaper leaves it open; 0.7 reproduces its
    /// example report.
    public var bitrateAlpha = 0.7
    /// EWMA weight of a new RTT value: "typically 0.1" (whitepaper).
    public var latencyAlpha = 0.1
    /// Bitrate is bad when |value − EWMA| > max(floorKbps, relative · EWMA).
    public var bitrateFloorKbps = 100.0
    public var bitrateRelative = 0.15
    /// Loss is bad above this fraction.
    public var lossThreshold = 0.05
    /// RTT is bad when it deviates from its EWMA by more than this.
    public var latencyThresholdMs = 20.0

    public init() {}
}

/// A bucket: the whitepaper's "good", "bad", or "" (no EWMA to compare with yet).
public enum Bucket: Hashable, Sendable {
    case none, good, bad
}

public enum Buckets {
    /// Algorithm 3: bitrate in kbit/s.
    public static func bitrate(_ value: Double, ewma: Double?, _ p: ScoringParameters = ScoringParameters()) -> Bucket {
        guard let ewma else { return .none }
        let diff = abs(value - ewma)
        let threshold = max(p.bitrateFloorKbps, ewma * p.bitrateRelative)
        return threshold < diff ? .bad : .good
    }

    /// Algorithm 4: fraction lost, 0…1.
    public static func fractionalLoss(_ value: Double, _ p: ScoringParameters = ScoringParameters()) -> Bucket {
        value > p.lossThreshold ? .bad : .good
    }

    /// Algorithm 5: RTT in ms.
    public static func latency(_ value: Double, ewma: Double?, _ p: ScoringParameters = ScoringParameters()) -> Bucket {
        guard let ewma else { return .none }
        return abs(value - ewma) > p.latencyThresholdMs ? .bad : .good
    }

    /// EWMA = α · new + (1 − α) · previous; the first value starts it.
    public static func ewma(_ previous: Double?, _ value: Double, alpha: Double) -> Double {
        guard let previous else { return value }
        return alpha * value + (1 - alpha) * previous
    }
}

/// One sample interval as the challenger measured it.
public struct QoSSample: Hashable, Sendable {
    /// RTP payload bits per second received in the interval; 0: no media arrived.
    public var bitrateBps: UInt64
    /// Fraction lost over the interval (RFC 3550 A.3), in millionths.
    public var lossPpm: UInt32
    /// Median STUN round trip of the interval in µs; 0: no check was answered.
    public var rttUs: UInt32
    /// RFC 3550 A.8 interarrival jitter at the end of the interval, µs.
    public var jitterUs: UInt32

    public init(bitrateBps: UInt64, lossPpm: UInt32, rttUs: UInt32, jitterUs: UInt32) {
        self.bitrateBps = bitrateBps
        self.lossPpm = lossPpm
        self.rttUs = rttUs
        self.jitterUs = jitterUs
    }

    /// An interval in which nothing arrived.
    public static let missing = QoSSample(bitrateBps: 0, lossPpm: 1_000_000, rttUs: 0, jitterUs: 0)

    public var hasMedia: Bool { bitrateBps > 0 }
    public var bitrateKbps: Double { Double(bitrateBps) / 1000 }
    public var fractionLost: Double { Double(lossPpm) / 1_000_000 }
    public var rttMs: Double? { rttUs == 0 ? nil : Double(rttUs) / 1000 }
}

/// Good counts of a test: each score is good / intervals.
public struct ScoreCounts: Hashable, Sendable {
    public var intervals: Int
    public var samples: Int
    public var bitrateGood: Int
    public var lossGood: Int
    public var latencyGood: Int

    public init(intervals: Int, samples: Int, bitrateGood: Int, lossGood: Int, latencyGood: Int) {
        self.intervals = intervals
        self.samples = samples
        self.bitrateGood = bitrateGood
        self.lossGood = lossGood
        self.latencyGood = latencyGood
    }

    public var bitrateScore: Double { ratio(bitrateGood) }
    public var fractionalLossScore: Double { ratio(lossGood) }
    public var latencyScore: Double { ratio(latencyGood) }
    /// V = F · (B + L) / 2 (whitepaper 2.3.1).
    public var score: Double { Self.v(b: bitrateScore, l: latencyScore, f: fractionalLossScore) }

    public static func v(b: Double, l: Double, f: Double) -> Double { f * (b + l) / 2 }

    private func ratio(_ good: Int) -> Double { intervals == 0 ? 0 : Double(good) / Double(intervals) }

    /// Runs the three bucket algorithms over a test's samples (one per interval, missing ones
    /// as `QoSSample.missing`).
    public static func compute(_ samples: [QoSSample], _ p: ScoringParameters = ScoringParameters()) -> ScoreCounts {
        var counts = ScoreCounts(intervals: samples.count, samples: 0, bitrateGood: 0, lossGood: 0, latencyGood: 0)
        var bitrateEWMA: Double?
        var latencyEWMA: Double?
        for s in samples where s.hasMedia {
            counts.samples += 1
            if Buckets.bitrate(s.bitrateKbps, ewma: bitrateEWMA, p) == .good { counts.bitrateGood += 1 }
            bitrateEWMA = Buckets.ewma(bitrateEWMA, s.bitrateKbps, alpha: p.bitrateAlpha)
            if Buckets.fractionalLoss(s.fractionLost, p) == .good { counts.lossGood += 1 }
            // An interval with media but no answered STUN check is bad for latency: the
            // prover's ICE agent stopped answering.
            if let rtt = s.rttMs {
                if Buckets.latency(rtt, ewma: latencyEWMA, p) == .good { counts.latencyGood += 1 }
                latencyEWMA = Buckets.ewma(latencyEWMA, rtt, alpha: p.latencyAlpha)
            }
        }
        return counts
    }
}
