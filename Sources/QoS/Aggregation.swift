import Identity
import Registry

/// A node's QoS as every replica computes it from the same bundle set (the `qos` object of
/// `/nodeById`, Specs/qos.md "Aggregation").
public struct NodeQoS: Hashable, Sendable {
    /// Smoothed V; nil while the node is unmeasured.
    public var score: Double?
    public var bitrateScore: Double?
    public var fractionalLossScore: Double?
    public var latencyScore: Double?
    /// Reports counted in the last measured epoch.
    public var reports: Int
    /// The last epoch in which the node was measured.
    public var epoch: UInt64?
    public var measured: Bool { score != nil }
    /// False when most of the node's counted reports say its RTT is faster than fibre allows
    /// between its claimed position and the challengers'.
    public var locationPlausible: Bool

    public static let unmeasured = NodeQoS(score: nil, bitrateScore: nil, fractionalLossScore: nil, latencyScore: nil,
                                           reports: 0, epoch: nil, locationPlausible: true)
}

/// One prover's measurement in one epoch: weighted medians over its counted reports.
public struct EpochMeasurement: Hashable, Sendable {
    public var bitrateScore: Double
    public var fractionalLossScore: Double
    public var latencyScore: Double
    public var score: Double
    public var reports: Int
}

/// Whether one report counted, and if not, why.
public enum ReportStatus: Hashable, Sendable {
    case counted(weight: Double)
    case notCounted(reason: String)

    public var isCounted: Bool { if case .counted = self { return true } else { return false } }
}

/// What one epoch looked like to the aggregation.
public struct EpochResult: Sendable {
    public var plan: EpochPlan
    /// Tickets revealed for this epoch (β by node) and which of them made their node active.
    public var tickets: [NodeKey: [UInt8]]
    public var active: Set<NodeKey>
    /// Challenger weights in this epoch (0: ineligible or equivocating).
    public var weights: [NodeKey: Double]
    /// True when no node had a measurement in the lookback: every challenger is eligible.
    public var genesis: Bool
    public var measurements: [NodeKey: EpochMeasurement]
    /// Every prover with at least one counted report: the weighted median over its counted
    /// reports of `samples / intervals`, the share of the test during which its challengers
    /// received its media (the rewards' availability, Specs/rewards.md).
    public var answered: [NodeKey: Double] = [:]
}

public struct ReportRef: Hashable, Sendable {
    public var bundle: SyncID
    public var prover: NodeKey

    public init(bundle: SyncID, prover: NodeKey) {
        self.bundle = bundle
        self.prover = prover
    }
}

/// The aggregation: a pure function of the bundle set, the network's schedule and the
/// parameters. Equal sets give equal results on every replica (Specs/qos.md "Aggregation").
public struct QoSAggregate: Sendable {
    public let schedule: QoSSchedule
    public let parameters: QoSParameters
    public private(set) var nodes: [NodeKey: NodeQoS] = [:]
    public private(set) var epochs: [UInt64: EpochResult] = [:]
    public private(set) var reportStatus: [ReportRef: ReportStatus] = [:]
    public private(set) var equivocators: Set<NodeKey> = []
    /// Epochs in which each node revealed a ticket, and in which it was measured (ascending).
    public private(set) var ticketEpochs: [NodeKey: [UInt64]] = [:]
    public private(set) var measuredEpochs: [NodeKey: [UInt64]] = [:]
    /// Counted reports of each challenger: (epoch, far from the prover's median?).
    private var challengerHistory: [NodeKey: [(epoch: UInt64, far: Bool)]] = [:]
    private var smoothed: [NodeKey: Smoothed] = [:]
    private var location: [NodeKey: (implausible: Int, total: Int)] = [:]

    struct Smoothed {
        var v, b, l, f: Double
        var reports: Int
        var epoch: UInt64
    }

    public func qos(of node: NodeKey) -> NodeQoS { nodes[node] ?? .unmeasured }

    /// The smoothed score V of every measured node, by PeerID (the orchestrator's, the
    /// rewards' and the dashboard's input).
    public func measuredScores() -> [PeerID: Double] {
        var out: [PeerID: Double] = [:]
        for (key, q) in nodes { if let score = q.score { out[key.peerID] = score } }
        return out
    }

    init(schedule: QoSSchedule, parameters: QoSParameters) {
        self.schedule = schedule
        self.parameters = parameters
    }

    func lookbackStart(_ e: UInt64) -> UInt64 { e >= parameters.lookbackEpochs ? e - parameters.lookbackEpochs : 0 }

    /// The epoch's plan: the network-size count is the number of nodes with a ticket in the
    /// lookback before `e` (tickets for e itself when there are none, at the network's start).
    public func plan(for e: UInt64, ticketsForEpoch: Int) -> EpochPlan {
        let lo = lookbackStart(e)
        var observed = 0
        for (_, list) in ticketEpochs where list.contains(where: { $0 >= lo && $0 < e }) { observed += 1 }
        return EpochPlan(epoch: e, observedNodes: observed == 0 ? ticketsForEpoch : observed, parameters: parameters)
    }

    /// No node measured in the lookback up to e − 2: every challenger is eligible.
    public func isGenesis(_ e: UInt64) -> Bool {
        guard e >= 2 else { return true }
        let lo = lookbackStart(e)
        return !measuredEpochs.values.contains { list in list.contains { $0 >= lo && $0 <= e - 2 } }
    }

    /// Not measured within `gap` epochs before e − 1 (or never): activity is doubled.
    public func isStale(_ key: NodeKey, epoch: UInt64, gap: UInt64) -> Bool {
        guard let last = measuredEpochs[key]?.last(where: { $0 + 2 <= epoch }) else { return true }
        return epoch - last > gap
    }

    public func isActive(_ key: NodeKey, beta: [UInt8], plan: EpochPlan) -> Bool {
        plan.isActive(beta: beta, stale: isStale(key, epoch: plan.epoch, gap: plan.biasGapEpochs))
    }

    /// A challenger's weight in epoch e (Specs/qos.md "Weights"): 0 for equivocators and for
    /// nodes without a measured epoch in the lookback (unless at genesis); else tenure (measured
    /// epochs / `tenureEpochs`, at most 1) times the outlier factor.
    public func weight(of c: NodeKey, epoch e: UInt64, genesis: Bool) -> Double {
        if equivocators.contains(c) { return 0 }
        let lo = lookbackStart(e)
        var tenure = 1.0
        if !genesis {
            let measured = measuredEpochs[c]?.filter { $0 >= lo && $0 + 2 <= e }.count ?? 0
            tenure = min(1, Double(measured) / Double(parameters.tenureEpochs))
        }
        guard tenure > 0 else { return 0 }
        let recent = challengerHistory[c]?.filter { $0.epoch >= lo && $0.epoch < e } ?? []
        let far = recent.filter(\.far).count
        let outlier = max(parameters.outlierFloor, 1 - 2 * Double(far) / Double(max(recent.count, 4)))
        return tenure * outlier
    }

    public static func compute(_ ledger: QoSLedger, schedule: QoSSchedule, parameters p: QoSParameters = QoSParameters()) -> QoSAggregate {
        var out = QoSAggregate(schedule: schedule, parameters: p)
        // Tickets for epoch e come from bundles of e − 1 (either of an equivocating pair: the
        // VRF output is the same).
        var tickets: [UInt64: [NodeKey: [UInt8]]] = [:]
        var bundlesByEpoch: [UInt64: [NodeKey: [SignedQoSBundle]]] = [:]
        for epoch in ledger.epochs {
            for b in ledger.bundles(epoch: epoch) {
                bundlesByEpoch[epoch, default: [:]][b.challenger, default: []].append(b)
                guard b.bundle.schedule == schedule else { continue }
                if let beta = b.nextBeta { tickets[epoch + 1, default: [:]][b.challenger] = beta }
            }
        }
        for (_, byChallenger) in bundlesByEpoch {
            for (c, list) in byChallenger where list.count > 1 { out.equivocators.insert(c) }
        }
        for epoch in tickets.keys.sorted() {
            for key in tickets[epoch]!.keys { out.ticketEpochs[key, default: []].append(epoch) }
        }
        for e in Set(tickets.keys).union(bundlesByEpoch.keys).sorted() {
            out.process(epoch: e, tickets: tickets[e] ?? [:], bundles: bundlesByEpoch[e] ?? [:])
        }
        for (key, s) in out.smoothed {
            let (implausible, total) = out.location[key] ?? (0, 0)
            out.nodes[key] = NodeQoS(score: s.v, bitrateScore: s.b, fractionalLossScore: s.f, latencyScore: s.l,
                                     reports: s.reports, epoch: s.epoch,
                                     locationPlausible: !(total >= p.minReports && 2 * implausible > total))
        }
        return out
    }

    private mutating func process(epoch e: UInt64, tickets epochTickets: [NodeKey: [UInt8]], bundles: [NodeKey: [SignedQoSBundle]]) {
        let p = parameters
        var plan = plan(for: e, ticketsForEpoch: epochTickets.count)
        let genesis = isGenesis(e)
        var active = Set<NodeKey>()
        for (key, beta) in epochTickets where isActive(key, beta: beta, plan: plan) { active.insert(key) }
        plan.setActive(count: active.count, parameters: p)
        var weights: [NodeKey: Double] = [:]
        for c in active.union(bundles.keys) { weights[c] = weight(of: c, epoch: e, genesis: genesis) }
        var counted: [NodeKey: [(counts: ScoreCounts, weight: Double, challenger: NodeKey, implausible: Bool)]] = [:]
        for (c, list) in bundles.sorted(by: { $0.key < $1.key }) {
            let w = weights[c] ?? 0
            for b in list {
                let reason: String?
                if list.count > 1 { reason = "equivocation" }
                else if b.bundle.schedule != schedule { reason = "wrong_schedule" }
                else if !active.contains(c) { reason = epochTickets[c] == nil ? "challenger_no_ticket" : "challenger_inactive" }
                else if w <= 0 { reason = equivocators.contains(c) ? "equivocator" : "challenger_ineligible" }
                else { reason = nil }
                for r in b.bundle.reports {
                    let ref = ReportRef(bundle: b.syncID, prover: r.prover)
                    if let reason {
                        reportStatus[ref] = .notCounted(reason: reason)
                        continue
                    }
                    guard let proverBeta = epochTickets[r.prover], active.contains(r.prover) else {
                        reportStatus[ref] = .notCounted(reason: epochTickets[r.prover] == nil ? "prover_no_ticket" : "prover_inactive")
                        continue
                    }
                    guard plan.isAssigned(proverBeta: proverBeta, challenger: c) else {
                        reportStatus[ref] = .notCounted(reason: "unassigned")
                        continue
                    }
                    reportStatus[ref] = .counted(weight: w)
                    counted[r.prover, default: []].append((r.counts, w, c, r.locationImplausible))
                }
            }
        }
        var answered: [NodeKey: Double] = [:]
        for (prover, reports) in counted {
            answered[prover] = Self.weightedMedian(reports.map {
                ($0.counts.intervals > 0 ? Double($0.counts.samples) / Double($0.counts.intervals) : 0, $0.weight, $0.challenger)
            })
        }
        var measurements: [NodeKey: EpochMeasurement] = [:]
        for (prover, reports) in counted.sorted(by: { $0.key < $1.key }) where reports.count >= p.minReports {
            func median(_ f: (ScoreCounts) -> Double) -> Double {
                Self.weightedMedian(reports.map { (f($0.counts), $0.weight, $0.challenger) })
            }
            let b = median(\.bitrateScore), l = median(\.latencyScore), f = median(\.fractionalLossScore)
            let m = EpochMeasurement(bitrateScore: b, fractionalLossScore: f, latencyScore: l,
                                     score: ScoreCounts.v(b: b, l: l, f: f), reports: reports.count)
            measurements[prover] = m
            noteMeasured(prover, epoch: e, m, implausible: reports.filter(\.implausible).count, of: reports.count)
            for r in reports {
                challengerHistory[r.challenger, default: []].append((e, abs(r.counts.score - m.score) > p.outlierDistance))
            }
        }
        epochs[e] = EpochResult(plan: plan, tickets: epochTickets, active: active, weights: weights, genesis: genesis,
                                measurements: measurements, answered: answered)
    }

    private mutating func noteMeasured(_ key: NodeKey, epoch: UInt64, _ m: EpochMeasurement, implausible: Int, of total: Int) {
        let alpha = parameters.smoothingAlpha
        measuredEpochs[key, default: []].append(epoch)
        if var s = smoothed[key] {
            s.v = alpha * m.score + (1 - alpha) * s.v
            s.b = alpha * m.bitrateScore + (1 - alpha) * s.b
            s.l = alpha * m.latencyScore + (1 - alpha) * s.l
            s.f = alpha * m.fractionalLossScore + (1 - alpha) * s.f
            s.reports = m.reports
            s.epoch = epoch
            smoothed[key] = s
        } else {
            smoothed[key] = Smoothed(v: m.score, b: m.bitrateScore, l: m.latencyScore, f: m.fractionalLossScore, reports: m.reports, epoch: epoch)
        }
        let l = location[key] ?? (0, 0)
        location[key] = (l.implausible + implausible, l.total + total)
    }

    /// The lower weighted median: sorted by value (then challenger), the first value at which
    /// the cumulative weight passes half the total; the mean of two values when it lands on
    /// half exactly.
    static func weightedMedian(_ xs: [(Double, Double, NodeKey)]) -> Double {
        let sorted = xs.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.2 < $1.2 }
        let total = sorted.reduce(0) { $0 + $1.1 }
        guard total > 0 else { return sorted[sorted.count / 2].0 }
        let half = total / 2
        var cumulative = 0.0
        for (i, x) in sorted.enumerated() {
            cumulative += x.1
            if abs(cumulative - half) <= 1e-12 * total, i + 1 < sorted.count { return (x.0 + sorted[i + 1].0) / 2 }
            if cumulative > half { return x.0 }
        }
        return sorted.last!.0
    }
}

/// What one node does in one epoch, as this replica sees it (Specs/qos.md "Duties").
public struct Duties: Hashable, Sendable {
    /// The node revealed a ticket for the epoch and it made the node active.
    public var active: Bool
    /// The node's challenger weight is positive (it may report).
    public var eligible: Bool
    /// The provers it is assigned to test (empty unless active and eligible).
    public var provers: [NodeKey]
    public var plan: EpochPlan?

    public static let idle = Duties(active: false, eligible: false, provers: [], plan: nil)
}

extension QoSAggregate {
    /// `me`'s duties in epoch `e`: test every active prover whose ticket assigns it.
    public func duties(of me: NodeKey, epoch e: UInt64) -> Duties {
        guard let r = epochs[e], r.active.contains(me) else { return .idle }
        let w = r.weights[me] ?? weight(of: me, epoch: e, genesis: r.genesis)
        guard w > 0 else { return Duties(active: true, eligible: false, provers: [], plan: r.plan) }
        let provers = r.active.filter { $0 != me && r.plan.isAssigned(proverBeta: r.tickets[$0]!, challenger: me) }.sorted()
        return Duties(active: true, eligible: true, provers: provers, plan: r.plan)
    }

    /// The prover side: whether `me` accepts a test request from `challenger` in epoch `e`.
    /// Generous (τ doubled, eligibility not checked): the prover's view of the network size may
    /// differ a little from the challenger's, and refusing an assigned challenger counts
    /// against the prover.
    public func accepts(challenger: NodeKey, prover me: NodeKey, epoch e: UInt64, ownBeta: [UInt8]) -> Bool {
        guard challenger != me else { return false }
        let plan = epochs[e]?.plan ?? plan(for: e, ticketsForEpoch: 1)
        return Sortition.selected(Sortition.pairDraw(proverBeta: ownBeta, challenger: challenger), probability: min(1, 2 * plan.tau))
    }

    /// Whether `me`, holding ticket `beta` for epoch `e`, is active then (decided when it
    /// publishes its bundle of e − 1: an inactive node does not reveal the ticket).
    public func wouldBeActive(_ me: NodeKey, beta: [UInt8], epoch e: UInt64, ticketsKnown: Int) -> Bool {
        isActive(me, beta: beta, plan: plan(for: e, ticketsForEpoch: max(1, ticketsKnown)))
    }

    /// Gossip-time check: true only when this replica holds the prover's ticket for the
    /// bundle's epoch and the pair is not assigned even at twice τ. Tickets are unique VRF
    /// outputs, so every replica holding the ticket agrees.
    public func isDefinitelyUnassigned(challenger: NodeKey, prover: NodeKey, epoch e: UInt64) -> Bool {
        guard let r = epochs[e], let beta = r.tickets[prover] else { return false }
        return !Sortition.selected(Sortition.pairDraw(proverBeta: beta, challenger: challenger), probability: min(1, 2 * r.plan.tau))
    }
}

/// A node's availability evidence up to an epoch (Specs/rewards.md "Availability: QoS tests
/// answered"): what the network expected of it and what it answered, in epochs.
public struct TestAvailability: Hashable, Sendable {
    /// u: over the epochs with counted reports on the node, the share of each test answered
    /// (`EpochResult.answered`).
    public var answered: Double
    /// l: over the epochs from the node's first ticket in the set, its activity probability
    /// p(n, e) — the chance the network tested it then (Specs/qos.md "Activity").
    public var expected: Double
    public var firstTicketEpoch: UInt64

    /// A = min(1, u/l); 0 without expected tests.
    public var value: Double { expected > 0 && answered > 0 ? min(1, answered / expected) : 0 }
}

extension QoSAggregate {
    /// Every node with a ticket in the set for an epoch ≤ `e`: its availability evidence over
    /// the epochs from its first ticket to `e` inclusive. Absence accrues: an epoch in which
    /// the node revealed nothing (down, or not drawn active) still adds its p(n, e) to l. A
    /// pure function of the aggregate, summed in epoch order, so equal sets give bit-equal
    /// values.
    public func testAvailability(upTo e: UInt64) -> [NodeKey: TestAvailability] {
        guard let lo = ticketEpochs.values.compactMap(\.first).min(), lo <= e else { return [:] }
        // Each epoch's plan (network size, base activity) and result, once.
        var plans: [EpochPlan] = []
        var results: [EpochResult?] = []
        for x in lo...e {
            let r = epochs[x]
            results.append(r)
            plans.append(r?.plan ?? plan(for: x, ticketsForEpoch: 0))
        }
        var out: [NodeKey: TestAvailability] = [:]
        for (key, tickets) in ticketEpochs {
            guard let first = tickets.first, first <= e else { continue }
            let measured = measuredEpochs[key] ?? []
            var next = 0
            var lastMeasured: UInt64?
            var a = TestAvailability(answered: 0, expected: 0, firstTicketEpoch: first)
            for x in first...e {
                // Stale as `isStale` says: not measured in an epoch ≤ x − 2 within the gap.
                while next < measured.count, measured[next] + 2 <= x {
                    lastMeasured = measured[next]
                    next += 1
                }
                let i = Int(x - lo)
                let plan = plans[i]
                let stale = lastMeasured.map { x - $0 > plan.biasGapEpochs } ?? true
                a.expected += min(1, plan.activeProbability * (stale ? 2 : 1))
                if let share = results[i]?.answered[key] { a.answered += share }
            }
            out[key] = a
        }
        return out
    }

    /// The nodes that showed life in epoch `e` in the set: a ticket for `e`, or a bundle of
    /// `e` (sorted).
    public func nodesSeen(epoch e: UInt64) -> [NodeKey] {
        guard let r = epochs[e] else { return [] }
        return Set(r.tickets.keys).union(r.weights.keys).sorted()
    }
}
