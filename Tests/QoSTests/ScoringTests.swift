import Testing
@testable import QoS

/// The whitepaper's bucket algorithms (4.3.2.4.2), sample by sample.
@Suite struct ScoringTests {
    @Test func bitrateBucketFollowsAlgorithm3() {
        // No EWMA yet: the "" bucket.
        #expect(Buckets.bitrate(500, ewma: nil) == .none)
        // Below 667 kbps the 100 kbps floor is the threshold; the bound itself is good.
        #expect(Buckets.bitrate(600, ewma: 500) == .good)
        #expect(Buckets.bitrate(600.001, ewma: 500) == .bad)
        #expect(Buckets.bitrate(400, ewma: 500) == .good)
        #expect(Buckets.bitrate(399.9, ewma: 500) == .bad)
        // Above it, 15 % of the EWMA: 150 kbps at 1000.
        #expect(Buckets.bitrate(1150, ewma: 1000) == .good)
        #expect(Buckets.bitrate(1150.5, ewma: 1000) == .bad)
        #expect(Buckets.bitrate(849, ewma: 1000) == .bad)
        #expect(Buckets.bitrate(0, ewma: 50) == .good, "a stream that never exceeded the floor")
    }

    @Test func lossBucketFollowsAlgorithm4() {
        #expect(Buckets.fractionalLoss(0) == .good)
        #expect(Buckets.fractionalLoss(0.05) == .good)
        #expect(Buckets.fractionalLoss(0.050001) == .bad)
        #expect(Buckets.fractionalLoss(1) == .bad)
    }

    @Test func latencyBucketFollowsAlgorithm5() {
        #expect(Buckets.latency(30, ewma: nil) == .none)
        #expect(Buckets.latency(50, ewma: 30) == .good)
        #expect(Buckets.latency(50.01, ewma: 30) == .bad)
        #expect(Buckets.latency(10, ewma: 30) == .good)
        #expect(Buckets.latency(9.99, ewma: 30) == .bad)
    }

    @Test func ewmaIsAlphaNewPlusOneMinusAlphaPrevious() {
        #expect(Buckets.ewma(nil, 42, alpha: 0.1) == 42)
        #expect(abs(Buckets.ewma(100, 200, alpha: 0.1) - 110) < 1e-12)
        #expect(abs(Buckets.ewma(100, 200, alpha: 0.7) - 170) < 1e-12)
    }

    /// The whitepaper's example report: bitrateScore 0.6153846153846154 over 13 samples, which
    /// is 8 good of 13 with the bucket taken against the EWMA before the value, α = 0.7, and
    /// the first sample in the denominator.
    @Test func reproducesTheWhitepaperExampleBitrateScore() {
        let kbps = [64.614, 267.958, 599.459, 742.682, 818.534, 736.214, 834.406, 743.117, 811.645, 730.448, 822.909, 741.19, 834.986]
        let samples = kbps.map { QoSSample(bitrateBps: UInt64(($0 * 1000).rounded()), lossPpm: 0, rttUs: 15_000, jitterUs: 0) }
        let counts = ScoreCounts.compute(samples)
        #expect(counts.intervals == 13)
        #expect(counts.bitrateGood == 8)
        #expect(counts.bitrateScore == 0.6153846153846154)
        // Sample by sample: the buckets the whitepaper's Go code returns.
        var ewma: Double?
        var buckets: [Bucket] = []
        for v in kbps {
            buckets.append(Buckets.bitrate(v, ewma: ewma))
            ewma = Buckets.ewma(ewma, v, alpha: 0.7)
        }
        #expect(buckets == [.none, .bad, .bad, .bad, .bad, .good, .good, .good, .good, .good, .good, .good, .good])
    }

    @Test func everyIntervalCountsAndMissingOnesAreBad() {
        let good = QoSSample(bitrateBps: 1_000_000, lossPpm: 10_000, rttUs: 20_000, jitterUs: 500)
        // 6 intervals: media in 4, the first of which only starts the EWMAs.
        let samples = [.missing, good, good, .missing, good, good]
        let c = ScoreCounts.compute(samples)
        #expect(c.intervals == 6)
        #expect(c.samples == 4)
        #expect(c.bitrateGood == 3)
        #expect(c.lossGood == 4)
        #expect(c.latencyGood == 3)
        #expect(c.bitrateScore == 0.5)
        #expect(abs(c.fractionalLossScore - 4.0 / 6) < 1e-12)
        #expect(abs(c.score - (4.0 / 6) * (0.5 + 0.5) / 2) < 1e-12)
    }

    @Test func lossAboveFivePercentAndUnansweredChecksAreBad() {
        var samples: [QoSSample] = []
        for i in 0..<10 {
            samples.append(QoSSample(bitrateBps: 1_000_000, lossPpm: i % 2 == 0 ? 100_000 : 20_000, rttUs: i == 5 ? 0 : 10_000, jitterUs: 0))
        }
        let c = ScoreCounts.compute(samples)
        #expect(c.lossGood == 5)
        // First RTT starts the EWMA, interval 5 has none: 8 good of 10.
        #expect(c.latencyGood == 8)
        #expect(c.bitrateGood == 9)
        #expect(abs(c.score - 0.5 * (0.9 + 0.8) / 2) < 1e-12)
    }

    @Test func latencySpikeIsBadAndPullsTheEWMA() {
        let rtts: [UInt32] = [30, 31, 29, 80, 30, 30]  // ms
        let samples = rtts.map { QoSSample(bitrateBps: 800_000, lossPpm: 0, rttUs: $0 * 1000, jitterUs: 0) }
        var ewma: Double?
        var buckets: [Bucket] = []
        for r in rtts {
            buckets.append(Buckets.latency(Double(r), ewma: ewma))
            ewma = Buckets.ewma(ewma, Double(r), alpha: 0.1)
        }
        // After the spike the EWMA is ≈ 35 ms, so 30 ms is still within 20 ms.
        #expect(buckets == [.none, .good, .good, .bad, .good, .good])
        #expect(ScoreCounts.compute(samples).latencyGood == 4)
    }

    @Test func noMediaAtAllScoresZero() {
        let c = ScoreCounts.compute(Array(repeating: .missing, count: 15))
        #expect(c.samples == 0 && c.bitrateGood == 0 && c.lossGood == 0 && c.latencyGood == 0)
        #expect(c.score == 0)
    }
}
