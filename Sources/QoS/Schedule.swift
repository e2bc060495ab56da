/// The QoS clock (Specs/qos.md "Epochs"): wall time is cut into epochs of `epochSeconds`; each
/// starts with a setup phase and ends with a test of `testSeconds`, sampled every
/// `sampleIntervalMs`. Epoch e covers [e·E, (e+1)·E) seconds since the Unix epoch, so every
/// node with a roughly synchronised clock numbers epochs alike.
public struct QoSSchedule: Hashable, Sendable {
    public var epochSeconds: UInt32
    public var testSeconds: UInt32
    public var sampleIntervalMs: UInt32

    /// The whitepaper's 2-minute setup plus 20-minute test, sampled every 5 s (4.3.2.4.2).
    public static let standard = QoSSchedule(epochSeconds: 1320, testSeconds: 1200, sampleIntervalMs: 5000)

    public init(epochSeconds: UInt32, testSeconds: UInt32, sampleIntervalMs: UInt32) {
        self.epochSeconds = epochSeconds
        self.testSeconds = testSeconds
        self.sampleIntervalMs = sampleIntervalMs
    }

    /// Why a schedule is unusable, naming the setting; nil when it is fine.
    public var problem: String? {
        if epochSeconds < 10 || epochSeconds > 86_400 { return "--qos-epoch must be 10..86400 s, got \(epochSeconds)" }
        if sampleIntervalMs < 500 || sampleIntervalMs > 60_000 { return "--qos-sample-interval must be 0.5..60 s, got \(Double(sampleIntervalMs) / 1000) s" }
        if testSeconds + 4 > epochSeconds {
            return "--qos-test-duration must leave at least 4 s of setup in the \(epochSeconds) s epoch, got \(testSeconds)"
        }
        if UInt64(testSeconds) * 1000 < 2 * UInt64(sampleIntervalMs) {
            return "--qos-test-duration must hold at least two sample intervals of \(sampleIntervalMs) ms, got \(testSeconds) s"
        }
        if intervals > Self.maxIntervals { return "a test of \(testSeconds) s sampled every \(sampleIntervalMs) ms has more than \(Self.maxIntervals) samples" }
        return nil
    }

    public static let maxIntervals = 4096

    public var epochMs: UInt64 { UInt64(epochSeconds) * 1000 }
    public var setupMs: UInt64 { UInt64(epochSeconds - min(testSeconds, epochSeconds)) * 1000 }
    /// Sample intervals in one test.
    public var intervals: Int { Int(UInt64(testSeconds) * 1000 / UInt64(max(1, sampleIntervalMs))) }

    public func epoch(atMs ms: UInt64) -> UInt64 { ms / epochMs }
    public func startMs(_ epoch: UInt64) -> UInt64 { epoch &* epochMs }
    /// Sampling starts here (after the setup phase)…
    public func testStartMs(_ epoch: UInt64) -> UInt64 { startMs(epoch) &+ setupMs }
    /// …and ends with the epoch.
    public func testEndMs(_ epoch: UInt64) -> UInt64 { testStartMs(epoch) &+ UInt64(intervals) * UInt64(sampleIntervalMs) }

    /// Bundles of epoch e travel by gossip from the start of e until the end of e + 1 (a full
    /// epoch after the test ends), give or take `clockSlackMs`: 60 s, or a quarter of a shorter
    /// epoch (Specs/qos.md "Validation").
    public var clockSlackMs: UInt64 { min(60_000, epochMs / 4) }

    public func gossipWindow(_ epoch: UInt64) -> ClosedRange<UInt64> {
        let lo = startMs(epoch) >= clockSlackMs ? startMs(epoch) - clockSlackMs : 0
        let hi = startMs(epoch &+ 2) &+ clockSlackMs
        return min(lo, hi)...max(lo, hi)
    }
}

/// The protocol's constants (Specs/qos.md explains each choice).
public struct QoSParameters: Hashable, Sendable {
    /// Active nodes wanted per epoch: beyond it, each node takes part in a share of epochs, so
    /// that bundles (one per active node and epoch) stay within the gossip budget.
    public var activeTarget = 512
    /// Epochs of tickets and measurements that count as recent: the network-size estimate and
    /// a challenger's tenure look this far back.
    public var lookbackEpochs: UInt64 = 32
    /// Epochs kept; older bundles are garbage-collected.
    public var horizonEpochs: UInt64 = 72
    /// A challenger's weight reaches 1 after this many measured epochs within the lookback.
    public var tenureEpochs = 4
    /// A report farther than this from the epoch's median V is an outlier.
    public var outlierDistance = 0.25
    /// Floor of an outlying challenger's weight.
    public var outlierFloor = 0.05
    /// Reports a prover needs in one epoch to be measured in it.
    public var minReports = 3
    /// Epoch-to-epoch smoothing of a node's scores.
    public var smoothingAlpha = 0.3
    public var maxReportsPerBundle = 64

    public init() {}

    /// Expected challengers per prover (λ): 6 while at most 64 nodes are active, 8 beyond
    /// (Specs/qos.md "How many challengers").
    public func expectedChallengers(active: Int) -> Double { active <= 64 ? 6 : 8 }
}
