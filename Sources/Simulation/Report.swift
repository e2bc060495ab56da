import Gossipsub

/// The figures of one run (`report.json`, Specs/simulation.md "Report"). Everything here
/// depends on the configuration only; wall time and memory go to `run.json`.
public struct SimReport: Sendable {
    public struct Quantiles: Sendable {
        public var p50 = 0.0, p99 = 0.0, p9999 = 0.0, max = 0.0, mean = 0.0
    }

    public var peers = 0
    public var seed: UInt64 = 0
    public var scenario = ""
    public var durationSeconds = 0.0
    public var warmupSeconds = 0.0
    public var link = LinkModel()
    public var minPeers = 0, maxPeers = 0
    public var updates = 0
    public var deliveryRatio = 1.0
    /// Pooled over (update, peer): time until the update was live there.
    public var convergence = Quantiles()
    /// Per update, the time until it was live on 99% / 99.99% / all expected peers; the worst update.
    public var worstUpdateP99 = 0.0, worstUpdateP9999 = 0.0
    public var duplicates = Quantiles()
    public var bytesPerPeerPerSecond = Quantiles()
    public var bytesInPerPeerPerSecond = Quantiles()
    public var agreementSeries: [(t: Double, share: Double)] = []
    public var events: UInt64 = 0
    public var signatureChecks = 0, signatureVerifications = 0, recordChecks = 0, recordVerifications = 0, snapshotsBuilt = 0, syncBusyReplies = 0
    /// Scenario-specific outcome, as ordered key/value pairs.
    public var outcome: [(String, Double)] = []
    /// The `qos` and `qos-collusion` scenarios (Specs/simulation.md "QoS").
    public var qos: QoSSection?

    public struct QoSSection: Sendable {
        public struct Epoch: Sendable {
            public var epoch = 0
            public var active = 0, eligibleChallengers = 0, assignedPairs = 0, bundles = 0, reports = 0, countedReports = 0, measured = 0
            public var measuredShareOfActive = 0.0, deliveryRatio = 0.0, meanBundleBytes = 0.0
        }
        public var epochSeconds = 0, testSeconds = 0
        public var productionEpochSeconds = 0.0
        public var epochs: [Epoch] = []
        /// Over epochs: share of active provers with ≥ 3 counted reports; share of all peers
        /// measured at least once in the run.
        public var measuredShareOfActiveMean = 0.0, measuredShareOfActiveMin = 0.0, measuredAtLeastOnceShare = 0.0
        public var deliveryRatio = 0.0
        /// QoS gossip sent per peer: in this run, and scaled to the production epoch.
        public var bytesPerPeerPerSecond = Quantiles(), bytesPerPeerPerSecondAtProductionEpoch = Quantiles()
        public var bytesPerPeerPerEpochMean = 0.0
        /// Score error against the simulated ground truth.
        public var colluders = 0, degraded = 0, measuredNodes = 0
        public var honestMeanAbsError = 0.0, honestP99AbsError = 0.0, honestWrongShare = 0.0
        public var colluderMeanScore = 0.0, colluderInflatedShare = 0.0, degradedDetectedShare = 0.0
        public var bundleChecks = 0, bundleVerifications = 0
    }
    /// The rewards of the run's last epoch (Specs/simulation.md "Rewards").
    public var rewards: RewardsSection?

    public struct RewardsSection: Sendable {
        public struct QualityBin: Sendable {
            public var lo = 0.0, hi = 0.0
            public var nodes = 0
            public var meanReward = 0.0, meanUnitReward = 0.0
        }
        public struct Bin: Sendable {
            public var lo = 0.0, hi = 0.0
            public var nodes = 0
        }
        public var epoch: UInt64 = 0
        public var epochSeconds = 0
        /// Where V and A came from: `qos` (the run's QoS aggregate: measured V of the epoch,
        /// availability from tests answered) or `seeded` (SimRewards.population and the run's
        /// uptime).
        public var evidence = ""
        public var nodes = 0, sessions = 0, nodesWithSessions = 0, measuredNodes = 0
        public var participants = 0.0, dataSuppliedMB = 0.0, totalReward = 0.0
        public var reward = Quantiles(), unitReward = Quantiles()
        public var availabilityMean = 0.0
        /// Rows whose r exceeds r_max(V) (whitepaper 2.3.3): 0 unless the core is wrong.
        public var aboveMaximumUnitReward = 0
        /// Mean R and r of measured nodes by V, in fifths.
        public var byQuality: [QualityBin] = []
        /// Nodes with R = 0, and the distribution of R over the others (20 bins).
        public var zeroRewardNodes = 0
        public var histogram: [Bin] = []
        /// (V, R) of every measured node (the scatter chart; not in report.json).
        public var scatter: [(v: Double, reward: Double)] = []
        public var digest = ""
    }

    public init() {}
    /// Chart data: convergence curve (seconds since publication → share of peers live),
    /// delivery-latency CDF points, sorted per-peer bandwidth.
    public var convergenceCurve: [(t: Double, share: Double)] = []
    public var latencyCDF: [(t: Double, share: Double)] = []
    public var bandwidthSorted: [Double] = []

    public var finalAgreement: Double { agreementSeries.last?.share ?? 1 }
    public var minAgreement: Double { agreementSeries.map(\.share).min() ?? 1 }
    public var meanAgreement: Double {
        agreementSeries.isEmpty ? 1 : agreementSeries.map(\.share).reduce(0, +) / Double(agreementSeries.count)
    }

    public func outcome(_ key: String) -> Double? { outcome.first { $0.0 == key }?.1 }

    // MARK: JSON (hand-written: fixed key order and number format, so that identical runs give identical bytes)

    public func json() -> String {
        let w = JSONWriter()
        w.object {
            w.field("peers", peers)
            w.field("seed", seed)
            w.field("scenario", scenario)
            w.field("durationSeconds", durationSeconds)
            w.field("warmupSeconds", warmupSeconds)
            w.key("link"); w.object {
                w.field("latencyMs", link.latencyMs)
                w.field("jitterMs", link.jitterMs)
                w.field("loss", link.loss)
                w.field("uplinkBytesPerSecond", link.uplinkBytesPerSecond)
                w.field("regionLatency", link.regionLatencyMs != nil)
                w.field("framingOverheadBytes", link.framingOverheadBytes)
            }
            w.field("minPeers", minPeers)
            w.field("maxPeers", maxPeers)
            w.field("updates", updates)
            w.field("deliveryRatio", deliveryRatio)
            w.key("convergenceSeconds"); w.object {
                w.field("p50", convergence.p50)
                w.field("p99", convergence.p99)
                w.field("p9999", convergence.p9999)
                w.field("max", convergence.max)
                w.field("mean", convergence.mean)
                w.field("worstUpdateP99", worstUpdateP99)
                w.field("worstUpdateP9999", worstUpdateP9999)
            }
            w.key("duplicatesPerMessage"); w.object {
                w.field("mean", duplicates.mean)
                w.field("p99", duplicates.p99)
                w.field("max", duplicates.max)
            }
            w.key("bytesPerPeerPerSecond"); w.object {
                w.field("mean", bytesPerPeerPerSecond.mean)
                w.field("p99", bytesPerPeerPerSecond.p99)
                w.field("max", bytesPerPeerPerSecond.max)
                w.field("inMean", bytesInPerPeerPerSecond.mean)
                w.field("inP99", bytesInPerPeerPerSecond.p99)
            }
            w.key("tableAgreement"); w.object {
                w.field("final", finalAgreement)
                w.field("min", minAgreement)
                w.field("mean", meanAgreement)
                w.field("settleSeconds", Double(Simulator.settleMs) / 1000)
                w.key("series"); w.array(agreementSeries) { w.pair($0.t, $0.share) }
            }
            w.key("outcome"); w.object {
                for (k, v) in outcome { w.field(k, v) }
            }
            if let q = qos {
                w.key("qos"); w.object {
                    w.field("epochSeconds", q.epochSeconds)
                    w.field("testSeconds", q.testSeconds)
                    w.field("productionEpochSeconds", q.productionEpochSeconds)
                    w.field("measuredShareOfActiveMean", q.measuredShareOfActiveMean)
                    w.field("measuredShareOfActiveMin", q.measuredShareOfActiveMin)
                    w.field("measuredAtLeastOnceShare", q.measuredAtLeastOnceShare)
                    w.field("deliveryRatio", q.deliveryRatio)
                    w.key("bytesPerPeerPerSecond"); w.object {
                        w.field("mean", q.bytesPerPeerPerSecond.mean)
                        w.field("p99", q.bytesPerPeerPerSecond.p99)
                        w.field("atProductionEpochMean", q.bytesPerPeerPerSecondAtProductionEpoch.mean)
                        w.field("atProductionEpochP99", q.bytesPerPeerPerSecondAtProductionEpoch.p99)
                        w.field("perEpochMean", q.bytesPerPeerPerEpochMean)
                    }
                    w.key("scoreError"); w.object {
                        w.field("colluders", q.colluders)
                        w.field("degraded", q.degraded)
                        w.field("measuredNodes", q.measuredNodes)
                        w.field("honestMeanAbsError", q.honestMeanAbsError)
                        w.field("honestP99AbsError", q.honestP99AbsError)
                        w.field("honestWrongShare", q.honestWrongShare)
                        w.field("colluderMeanScore", q.colluderMeanScore)
                        w.field("colluderInflatedShare", q.colluderInflatedShare)
                        w.field("degradedDetectedShare", q.degradedDetectedShare)
                    }
                    w.key("epochs"); w.array(q.epochs) { e in
                        w.object {
                            w.field("epoch", e.epoch)
                            w.field("active", e.active)
                            w.field("eligibleChallengers", e.eligibleChallengers)
                            w.field("assignedPairs", e.assignedPairs)
                            w.field("bundles", e.bundles)
                            w.field("reports", e.reports)
                            w.field("countedReports", e.countedReports)
                            w.field("measured", e.measured)
                            w.field("measuredShareOfActive", e.measuredShareOfActive)
                            w.field("deliveryRatio", e.deliveryRatio)
                            w.field("meanBundleBytes", e.meanBundleBytes)
                        }
                    }
                    w.key("engine"); w.object {
                        w.field("bundleChecks", q.bundleChecks)
                        w.field("bundleVerifications", q.bundleVerifications)
                    }
                }
            }
            if let rw = rewards {
                w.key("rewards"); w.object {
                    w.field("epoch", rw.epoch)
                    w.field("epochSeconds", rw.epochSeconds)
                    w.field("evidence", rw.evidence)
                    w.field("nodes", rw.nodes)
                    w.field("measuredNodes", rw.measuredNodes)
                    w.field("sessions", rw.sessions)
                    w.field("nodesWithSessions", rw.nodesWithSessions)
                    w.field("participants", rw.participants)
                    w.field("dataSuppliedMB", rw.dataSuppliedMB)
                    w.field("totalReward", rw.totalReward)
                    for (name, q) in [("reward", rw.reward), ("unitReward", rw.unitReward)] {
                        w.key(name); w.object {
                            w.field("mean", q.mean)
                            w.field("p50", q.p50)
                            w.field("p99", q.p99)
                            w.field("max", q.max)
                        }
                    }
                    w.field("availabilityMean", rw.availabilityMean)
                    w.field("aboveMaximumUnitReward", rw.aboveMaximumUnitReward)
                    w.key("byQuality"); w.array(rw.byQuality) { b in
                        w.object {
                            w.field("lo", b.lo)
                            w.field("hi", b.hi)
                            w.field("nodes", b.nodes)
                            w.field("meanReward", b.meanReward)
                            w.field("meanUnitReward", b.meanUnitReward)
                        }
                    }
                    w.field("zeroRewardNodes", rw.zeroRewardNodes)
                    w.key("histogram"); w.array(rw.histogram) { b in
                        w.object {
                            w.field("lo", b.lo)
                            w.field("hi", b.hi)
                            w.field("nodes", b.nodes)
                        }
                    }
                    w.field("digest", rw.digest)
                }
            }
            w.key("engine"); w.object {
                w.field("events", events)
                w.field("signatureChecks", signatureChecks)
                w.field("signatureVerifications", signatureVerifications)
                w.field("recordChecks", recordChecks)
                w.field("recordVerifications", recordVerifications)
                w.field("syncSnapshotsBuilt", snapshotsBuilt)
                w.field("syncBusyReplies", syncBusyReplies)
            }
            w.key("charts"); w.object {
                w.key("convergenceCurve"); w.array(convergenceCurve) { w.pair($0.t, $0.share) }
                w.key("latencyCDF"); w.array(latencyCDF) { w.pair($0.t, $0.share) }
                w.key("bandwidthPerPeer"); w.array(bandwidthSorted) { w.number($0) }
            }
        }
        return w.out + "\n"
    }
}

/// A minimal JSON writer with a fixed number format (up to 6 decimals, trailing zeros cut).
final class JSONWriter {
    var out = ""
    private var needsComma = [false]

    private func separator() {
        if needsComma[needsComma.count - 1] { out += "," }
        needsComma[needsComma.count - 1] = true
    }

    func object(_ body: () -> Void) {
        separator()
        out += "{"
        needsComma.append(false)
        body()
        needsComma.removeLast()
        out += "}"
    }

    func array<T>(_ items: [T], _ each: (T) -> Void) {
        separator()
        out += "["
        needsComma.append(false)
        for item in items { each(item) }
        needsComma.removeLast()
        out += "]"
    }

    func key(_ k: String) {
        separator()
        out += "\"\(k)\":"
        needsComma[needsComma.count - 1] = false
        pendingKey = true
    }

    private var pendingKey = false

    func field(_ k: String, _ v: Int) { key(k); raw(String(v)) }
    func field(_ k: String, _ v: UInt64) { key(k); raw(String(v)) }
    func field(_ k: String, _ v: Double) { key(k); number(v) }
    func field(_ k: String, _ v: Bool) { key(k); raw(v ? "true" : "false") }
    func field(_ k: String, _ v: String) { key(k); raw("\"" + Self.escape(v) + "\"") }

    func raw(_ s: String) {
        separator()
        out += s
        if pendingKey {
            pendingKey = false
        }
    }

    func number(_ v: Double) { raw(Self.format(v)) }

    func pair(_ a: Double, _ b: Double) { raw("[" + Self.format(a) + "," + Self.format(b) + "]") }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func format(_ v: Double) -> String {
        guard v.isFinite else { return "null" }
        let scaled = (v * 1_000_000).rounded()
        if scaled == 0 { return "0" }
        let negative = scaled < 0
        let magnitude = UInt64(abs(scaled))
        let whole = magnitude / 1_000_000
        var frac = String(magnitude % 1_000_000)
        frac = String(repeating: "0", count: 6 - frac.count) + frac
        while frac.hasSuffix("0") { frac.removeLast() }
        return (negative ? "-" : "") + String(whole) + (frac.isEmpty ? "" : "." + frac)
    }
}

