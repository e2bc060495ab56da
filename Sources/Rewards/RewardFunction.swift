#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The whitepaper's reward formulas (2.3.1–2.3.4) as pure functions.
public enum RewardFunction {
    /// Unit reward (2.3.3):
    /// `r = r_asym / (1/(w_A·A + w_H·H + w_L·L + w_C·C) + e^(−k(V − r_asym/2)))`.
    /// Scores are clamped to [0, 1]. When the weighted sum is 0 the first term is infinite and
    /// r is 0 (the formula's limit).
    public static func unitReward(availability a: Double, history h: Double, location l: Double, coverage c: Double,
                                  quality v: Double, parameters p: RewardParameters) -> Double {
        let w = p.weights
        let s = w.availability * clamp(a) + w.history * clamp(h) + w.location * clamp(l) + w.coverage * clamp(c)
        guard s > 0 else { return 0 }
        return p.rAsym / (1 / s + exp(-p.k * (clamp(v) - p.rAsym / 2)))
    }

    /// The maximum reward of a node with ideal pre-determined scores (2.3.3, "Maximum reward"):
    /// `r_max = r_asym / (1 + e^(−k(V − r_asym/2)))`.
    public static func maximumUnitReward(quality v: Double, parameters p: RewardParameters) -> Double {
        p.rAsym / (1 + exp(-p.k * (clamp(v) - p.rAsym / 2)))
    }

    /// Data supplied in a session (2.3.2): `b = b_unit·m`, `b_unit = b_av·n_p·((n_p − 1) + n_c)`:
    /// every one of the `n_p` published streams goes to the other `n_p − 1` publishers and to the
    /// `n_c` viewers. In megabytes (10⁶ bytes): `b_av` [kbit/s] × 60 s × m [min] ÷ 8 ÷ 1000.
    public static func dataSuppliedMB(publishers np: Int, viewers nc: Int, minutes m: Double, streamBitrateKbps bav: Double) -> Double {
        guard np > 0, nc >= 0, m > 0 else { return 0 }
        let streams = Double(np) * Double(np - 1 + nc)
        return bav * 60 / 8 / 1000 * streams * m
    }

    /// Session reward (2.3.4): `R = r·b`.
    public static func sessionReward(unitReward r: Double, dataSuppliedMB b: Double) -> Double { r * b }

    /// Availability (2.3.1): `A = u/l`, 0 for a node with no observed lifetime.
    public static func availability(uptimeSeconds u: Double, lifetimeSeconds l: Double) -> Double {
        guard l > 0, u > 0 else { return 0 }
        return min(1, u / l)
    }

    /// History (2.3.1): the normalised percentile rank of each node's lifetime data supplied
    /// among all `N` nodes, `(count(s_j ≤ s_i) − 0.5·count(s_j = s_i)) / N`, bounded below by
    /// `H_min`. (The whitepaper writes the tie term as `0.5·s_i`; the percentile rank it names
    /// counts the nodes tied with `i`, which keeps H in [0, 1] whatever the unit of s.)
    /// Returns the scores in the order of `supplied`.
    public static func history(lifetimeSupplied supplied: [Double], hMin: Double) -> [Double] {
        let n = supplied.count
        guard n > 0 else { return [] }
        let sorted = supplied.sorted()
        return supplied.map { s in
            let le = upperBound(sorted, s)
            let lt = lowerBound(sorted, s)
            let rank = (Double(le) - 0.5 * Double(le - lt)) / Double(n)
            return max(hMin, rank)
        }
    }

    static func clamp(_ x: Double) -> Double { x.isNaN ? 0 : min(1, max(0, x)) }

    static func lowerBound(_ a: [Double], _ x: Double) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    static func upperBound(_ a: [Double], _ x: Double) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] <= x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
