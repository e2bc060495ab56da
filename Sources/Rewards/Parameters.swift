/// The reward function's parameters (whitepaper 2.3.3; Specs/rewards.md "Parameters"). Every
/// node of a network must use the same values, or their ledgers differ: they come from the
/// node's configuration and are validated at start (`problem`).
public struct RewardParameters: Hashable, Sendable {
    /// w_A, w_H, w_L, w_C: the weights of availability, history, location and coverage. Each
    /// in [0, 1]; they sum to 1 (whitepaper 2.3.3).
    public var weights: Weights
    /// k: the curvature of the sigmoid in V.
    public var k: Double
    /// r_asym: the asymptote of the unit reward. The whitepaper also centres the sigmoid on
    /// r_asym / 2, which must lie in V's range [0, 1]: hence 0 < r_asym ≤ 2.
    public var rAsym: Double
    /// H_min: the lower bound of the history score, so that new nodes are not starved.
    public var hMin: Double
    /// Radius of the participant demand counted in the location score L.
    public var locationRadiusKm: Double
    /// Radius of the media-node density counted in the coverage score C.
    public var coverageRadiusKm: Double
    /// b_av: the bitrate of one stream (whitepaper 2.3.2: 64 kbit/s audio, 650 video, 700 both).
    public var streamBitrateKbps: Double
    /// The V used for a node QoS has not measured in the epoch. 0: a node cannot earn the
    /// quality part of its reward without being measured, so withholding one's QoS ticket
    /// never pays (Specs/rewards.md "Quality").
    public var unmeasuredQuality: Double

    public struct Weights: Hashable, Sendable {
        public var availability: Double
        public var history: Double
        public var location: Double
        public var coverage: Double

        public init(availability: Double, history: Double, location: Double, coverage: Double) {
            self.availability = availability
            self.history = history
            self.location = location
            self.coverage = coverage
        }

        public var all: [Double] { [availability, history, location, coverage] }
    }

    public static let standard = RewardParameters(
        weights: Weights(availability: 0.4, history: 0.2, location: 0.2, coverage: 0.2),
        k: 10, rAsym: 1, hMin: 0.5, locationRadiusKm: 500, coverageRadiusKm: 500,
        streamBitrateKbps: 700, unmeasuredQuality: 0)

    public init(weights: Weights, k: Double, rAsym: Double, hMin: Double, locationRadiusKm: Double,
                coverageRadiusKm: Double, streamBitrateKbps: Double, unmeasuredQuality: Double) {
        self.weights = weights
        self.k = k
        self.rAsym = rAsym
        self.hMin = hMin
        self.locationRadiusKm = locationRadiusKm
        self.coverageRadiusKm = coverageRadiusKm
        self.streamBitrateKbps = streamBitrateKbps
        self.unmeasuredQuality = unmeasuredQuality
    }

    /// Tolerance of the weights' sum: decimal weights such as 0.1 + 0.2 are not exact in binary.
    public static let weightSumTolerance = 1e-9

    /// What is wrong with these parameters, naming the setting as an operator writes it
    /// (`--reward-weights`), or nil when they are valid.
    public var problem: RewardParameterProblem? {
        for w in weights.all where !(w.isFinite && (0...1).contains(w)) {
            return .init("--reward-weights", "each weight must be in 0..1, got \(weights.all.map(Self.text).joined(separator: ","))")
        }
        let sum = weights.all.reduce(0, +)
        if abs(sum - 1) > Self.weightSumTolerance {
            return .init("--reward-weights", "the four weights (A,H,L,C) must sum to 1 (whitepaper 2.3.3), got \(weights.all.map(Self.text).joined(separator: ",")) = \(Self.text(sum))")
        }
        if !(k.isFinite && k > 0 && k <= 1000) {
            return .init("--reward-k", "the sigmoid's curvature must be in (0, 1000], got \(Self.text(k))")
        }
        if !(rAsym.isFinite && rAsym > 0 && rAsym <= 2) {
            return .init("--reward-r-asym", "must be in (0, 2]: the sigmoid is centred on r_asym/2, which must lie in V's range 0..1; got \(Self.text(rAsym))")
        }
        if !(hMin.isFinite && (0...1).contains(hMin)) {
            return .init("--reward-h-min", "must be in 0..1, got \(Self.text(hMin))")
        }
        for (flag, r) in [("--reward-location-radius-km", locationRadiusKm), ("--reward-coverage-radius-km", coverageRadiusKm)]
        where !(r.isFinite && r >= 1 && r <= 20_000) {
            return .init(flag, "must be in 1..20000 km, got \(Self.text(r))")
        }
        if !(streamBitrateKbps.isFinite && streamBitrateKbps > 0 && streamBitrateKbps <= 1_000_000) {
            return .init("--reward-stream-kbps", "must be in (0, 1000000] kbit/s, got \(Self.text(streamBitrateKbps))")
        }
        if !(unmeasuredQuality.isFinite && (0...1).contains(unmeasuredQuality)) {
            return .init("unmeasuredQuality", "must be in 0..1, got \(Self.text(unmeasuredQuality))")
        }
        return nil
    }

    static func text(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d) }
}

/// An invalid parameter: the setting, and what is wrong with it.
public struct RewardParameterProblem: Error, Hashable, Sendable, CustomStringConvertible {
    public var setting: String
    public var message: String
    public init(_ setting: String, _ message: String) {
        self.setting = setting
        self.message = message
    }
    public var description: String { "\(setting): \(message)" }
}

/// Epochs: epoch `e` covers `[e·E, (e+1)·E)` seconds since the Unix epoch, the QoS schedule's
/// epochs (the QoS protocol's, issue 14), so that a node's V and its reward describe the same time.
public struct RewardEpochs: Hashable, Sendable {
    public var epochSeconds: UInt64

    public init(epochSeconds: UInt64) {
        precondition(epochSeconds > 0)
        self.epochSeconds = epochSeconds
    }

    public var epochMs: UInt64 { epochSeconds * 1000 }
    public func epoch(atMs ms: UInt64) -> UInt64 { ms / epochMs }
    public func startMs(_ e: UInt64) -> UInt64 { e * epochMs }
    public func endMs(_ e: UInt64) -> UInt64 { (e + 1) * epochMs }
}
