import Identity
import Registry
import Testing
@testable import Rewards

#if canImport(Glibc)
import Glibc
#endif

/// Random valid parameters: weights from a Dirichlet-like split, k, r_asym in their ranges.
func randomParameters(_ rng: inout SplitMix64) -> RewardParameters {
    var raw = (0..<4).map { _ in Double.random(in: 0...1, using: &rng) }
    if Int.random(in: 0..<4, using: &rng) == 0 { raw[Int.random(in: 0..<4, using: &rng)] = 0 }  // a zero weight now and then
    let sum = raw.reduce(0, +)
    let w = sum > 0 ? raw.map { $0 / sum } : [0.25, 0.25, 0.25, 0.25]
    var p = RewardParameters.standard
    p.weights = .init(availability: w[0], history: w[1], location: w[2], coverage: w[3])
    p.k = Double.random(in: 0.5...40, using: &rng)
    p.rAsym = Double.random(in: 0.1...2, using: &rng)
    return p
}

func unit(_ rng: inout SplitMix64) -> Double { Double.random(in: 0...1, using: &rng) }

struct RewardFunctionTests {
    @Test func unitRewardStaysWithinZeroAndTheMaximumForItsQuality() {
        var rng = SplitMix64(seed: 1)
        for _ in 0..<20_000 {
            let p = randomParameters(&rng)
            let (a, h, l, c, v) = (unit(&rng), unit(&rng), unit(&rng), unit(&rng), unit(&rng))
            let r = RewardFunction.unitReward(availability: a, history: h, location: l, coverage: c, quality: v, parameters: p)
            let rMax = RewardFunction.maximumUnitReward(quality: v, parameters: p)
            #expect(r >= 0)
            #expect(r <= rMax * (1 + 1e-12), "r \(r) > r_max \(rMax) for A=\(a) H=\(h) L=\(l) C=\(c) V=\(v) \(p)")
            #expect(rMax < p.rAsym)
        }
    }

    @Test func maximumRewardIdentityWhenEveryPreDeterminedScoreIsOne() {
        // Whitepaper 2.3.3: A = H = L = C = 1 gives r_max = r_asym / (1 + e^(−k(V − r_asym/2))).
        var rng = SplitMix64(seed: 2)
        for _ in 0..<5_000 {
            let p = randomParameters(&rng)
            let v = unit(&rng)
            let r = RewardFunction.unitReward(availability: 1, history: 1, location: 1, coverage: 1, quality: v, parameters: p)
            let closed = p.rAsym / (1 + exp(-p.k * (v - p.rAsym / 2)))
            #expect(abs(r - closed) <= 1e-12 * closed, "r \(r) vs r_max \(closed) at V=\(v)")
            #expect(RewardFunction.maximumUnitReward(quality: v, parameters: p) == closed)
        }
    }

    @Test func unitRewardRisesWithEachScore() {
        var rng = SplitMix64(seed: 3)
        for _ in 0..<10_000 {
            let p = randomParameters(&rng)
            var s = (0..<5).map { _ in Double.random(in: 0...0.9, using: &rng) }
            let before = RewardFunction.unitReward(availability: s[0], history: s[1], location: s[2], coverage: s[3], quality: s[4], parameters: p)
            let which = Int.random(in: 0..<5, using: &rng)
            s[which] += Double.random(in: 0.01...0.1, using: &rng)
            let after = RewardFunction.unitReward(availability: s[0], history: s[1], location: s[2], coverage: s[3], quality: s[4], parameters: p)
            let weight = which < 4 ? p.weights.all[which] : 1
            let otherWeighted = zip(p.weights.all, s.prefix(4)).reduce(0) { $0 + $1.0 * $1.1 } > 0
            #expect(after >= before, "raising score \(which) lowered r: \(before) → \(after)")
            // Strictly, where r is large enough for a step in one score to show in a Double
            // (with V far below the sigmoid's centre, r is ~1e-15 and flat in S).
            if weight > 1e-3 && otherWeighted && before > 1e-6 {
                #expect(after > before, "raising score \(which) (weight \(weight)) did not raise r: \(before) → \(after)")
            }
        }
    }

    @Test func zeroWeightedSumEarnsNothingAndScoresAreClamped() {
        let p = RewardParameters.standard
        #expect(RewardFunction.unitReward(availability: 0, history: 0, location: 0, coverage: 0, quality: 1, parameters: p) == 0)
        let clamped = RewardFunction.unitReward(availability: 7, history: -1, location: .nan, coverage: 1, quality: 3, parameters: p)
        #expect(clamped == RewardFunction.unitReward(availability: 1, history: 0, location: 0, coverage: 1, quality: 1, parameters: p))
    }

    @Test func dataSuppliedFollowsTheWhitepapersUnitBitrate() {
        // b_unit = b_av·n_p·((n_p − 1) + n_c); 700 kbit/s for a minute is 5.25 MB per stream.
        #expect(RewardFunction.dataSuppliedMB(publishers: 1, viewers: 0, minutes: 10, streamBitrateKbps: 700) == 0)
        #expect(RewardFunction.dataSuppliedMB(publishers: 1, viewers: 1, minutes: 1, streamBitrateKbps: 700) == 5.25)
        #expect(RewardFunction.dataSuppliedMB(publishers: 3, viewers: 4, minutes: 2, streamBitrateKbps: 700) == 5.25 * 3 * 6 * 2)
        #expect(RewardFunction.dataSuppliedMB(publishers: 0, viewers: 9, minutes: 2, streamBitrateKbps: 700) == 0)
        #expect(RewardFunction.sessionReward(unitReward: 0.25, dataSuppliedMB: 42) == 10.5)
    }

    @Test func historyIsTheBoundedPercentileRank() {
        let h = RewardFunction.history(lifetimeSupplied: [0, 10, 10, 30], hMin: 0)
        // (count ≤ s − 0.5·count = s) / N
        let expected: [Double] = [0.125, 0.5, 0.5, 0.875]
        #expect(h == expected)
        #expect(RewardFunction.history(lifetimeSupplied: [0, 10, 10, 30], hMin: 0.5) == [0.5, 0.5, 0.5, 0.875])
        // Everyone equal (no receipts yet): the median rank, 0.5.
        #expect(RewardFunction.history(lifetimeSupplied: [0, 0, 0], hMin: 0) == [0.5, 0.5, 0.5])

        var rng = SplitMix64(seed: 4)
        for _ in 0..<2_000 {
            let n = Int.random(in: 1...40, using: &rng)
            var s = (0..<n).map { _ in Double(Int.random(in: 0...20, using: &rng)) }
            let hMin = unit(&rng)
            let before = RewardFunction.history(lifetimeSupplied: s, hMin: hMin)
            #expect(before.allSatisfy { $0 >= hMin && $0 <= 1 })
            let i = Int.random(in: 0..<n, using: &rng)
            s[i] += Double(Int.random(in: 1...10, using: &rng))
            let after = RewardFunction.history(lifetimeSupplied: s, hMin: hMin)
            #expect(after[i] >= before[i], "supplying more lowered the history score")
        }
    }

    @Test func parametersAreValidatedWithTheFlagToFix() {
        #expect(RewardParameters.standard.problem == nil)
        var p = RewardParameters.standard
        p.weights.coverage = 0.3
        #expect(p.problem?.setting == "--reward-weights")
        #expect(p.problem?.message.contains("sum to 1") == true)
        p = .standard
        p.weights = .init(availability: 1.2, history: -0.2, location: 0, coverage: 0)
        #expect(p.problem?.setting == "--reward-weights")
        p = .standard
        p.rAsym = 3
        #expect(p.problem?.setting == "--reward-r-asym")
        p = .standard
        p.k = 0
        #expect(p.problem?.setting == "--reward-k")
        p = .standard
        p.hMin = 1.5
        #expect(p.problem?.setting == "--reward-h-min")
        p = .standard
        p.coverageRadiusKm = 0
        #expect(p.problem?.setting == "--reward-coverage-radius-km")
        p = .standard
        p.locationRadiusKm = .infinity
        #expect(p.problem?.setting == "--reward-location-radius-km")
        p = .standard
        p.streamBitrateKbps = -1
        #expect(p.problem?.setting == "--reward-stream-kbps")
        // Decimal weights that do not add up exactly in binary are accepted.
        p = .standard
        p.weights = .init(availability: 0.1, history: 0.2, location: 0.3, coverage: 0.4)
        #expect(p.problem == nil)
    }

    @Test func fixedDecimalsHaveNoExponentAndNoLocale() {
        #expect(RewardLedger.fixed(0.5, 6) == "0.500000")
        #expect(RewardLedger.fixed(0.000001, 6) == "0.000001")
        #expect(RewardLedger.fixed(1234.5678, 3) == "1234.568")
        #expect(RewardLedger.fixed(-0.25, 2) == "-0.25")
        #expect(RewardLedger.fixed(7, 0) == "7")
        #expect(RewardLedger.fixed(1e-9, 6) == "0.000000")
    }
}
