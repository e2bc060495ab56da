import HTTPAPI
import Identity
import Logging
import QoS
import Registry
import Rewards
import ServiceLifecycle
import Synchronization

/// This node's reward ledgers (Specs/rewards.md): computes the ledger of any epoch in the QoS
/// set's GC horizon on demand, serves `/rewards`, and sets the `drtc_rewards_*` gauges for this
/// node when an epoch's ledger becomes final.
///
/// INPUTS (Specs/rewards.md "Inputs"): the node set, availability (tests answered), V of the
/// epoch and the plausibility of positions come from the replicated QoS set
/// (`QoSRewardEvidence`), so replicas with equal `qosDigest` compute equal values; positions
/// from registry records; demand from `LivenessObserver` over this node's own registry (a local
/// placeholder, in memory); data supplied is 0 for everyone (no countersigned receipts yet).
/// `sources` below says so in every `/rewards` answer.
final class RewardsService: Service, Sendable {
    static let sources = RewardSources(
        availability: "QoS set: tests answered — u sums, over the epochs with counted reports, the weighted median share of the test the challengers received; l sums the node's activity probability over the epochs since its first ticket (Specs/rewards.md)",
        quality: "QoS set: the node's measured V in this epoch (Specs/qos.md \"Aggregation\", step 4); null when the epoch did not measure it",
        dataSupplied: "placeholder: none — 0 until countersigned session receipts are merged",
        demand: "placeholder: sessions the records declare (load.activeSessions), averaged over the epoch as this node sampled it",
        positions: "registry records (--geo), as declared; none for a node whose QoS reports mostly say location_implausible")

    /// Closed epochs whose demand placeholder is kept.
    static let demandEpochs: UInt64 = 12

    private struct State {
        /// Placeholder demand only (Specs/rewards.md "Inputs").
        var observer: LivenessObserver
        /// The demand of closed epochs, by epoch.
        var demand: [UInt64: [DemandPoint]] = [:]
        /// Bumped by every sample: the current epoch's demand and positions may have changed.
        var samples: UInt64 = 0
        /// Computed ledgers by epoch, with the evidence they were computed from.
        var cache: [UInt64: (key: String, ledger: RewardLedger)] = [:]
    }

    let epochs: RewardEpochs
    let parameters: RewardParameters
    let sampleIntervalMs: UInt64
    /// An epoch's ledger is final this long after the epoch ends: its bundles are published in
    /// the next epoch's setup (Specs/qos.md "Reports on the wire").
    let finalAfterMs: UInt64
    /// Epochs a ledger can be computed for: the QoS set's GC horizon.
    let retainedEpochs: UInt64
    private let state: Mutex<State>
    /// The newest epoch whose ledger was announced final (log line, gauges).
    private let announced = Mutex<UInt64?>(nil)
    private let registry: RegistryService
    private let metrics: DrtcMetrics
    private let logger: Logger
    private let me: PeerID
    /// The QoS set's digest and its aggregate (cached by the QoS service).
    private let qos: @Sendable () -> (digest: String, aggregate: QoSAggregate)

    init(schedule: QoSSchedule, horizonEpochs: UInt64, parameters: RewardParameters, registry: RegistryService, metrics: DrtcMetrics,
         logger: Logger, me: PeerID, qos: @escaping @Sendable () -> (digest: String, aggregate: QoSAggregate)) {
        let epochs = RewardEpochs(epochSeconds: UInt64(schedule.epochSeconds))
        self.epochs = epochs
        self.parameters = parameters
        finalAfterMs = schedule.setupMs
        retainedEpochs = max(1, horizonEpochs)
        // Ten samples an epoch at least, every 5 s at most.
        sampleIntervalMs = max(1_000, min(5_000, epochs.epochMs / 10))
        state = Mutex(State(observer: LivenessObserver(
            epochs: epochs, maxGapMs: 3 * sampleIntervalMs + 2_000,
            forgetAfterMs: Self.demandEpochs * epochs.epochMs)))
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.me = me
        self.qos = qos
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.sample()
                try await Task.sleep(for: .milliseconds(Int64(self.sampleIntervalMs)))
            }
        }
    }

    /// One sample of the registry's live records (the demand placeholder); announces the
    /// newest final ledger when it changes.
    func sample() {
        let now = registry.clock()
        let sightings = registry.withReplica { replica in
            replica.table.liveRecords(nowMs: now).map {
                LivenessObserver.Sighting(node: $0.nodeID, position: $0.record.geo, activeSessions: Int($0.record.load.activeSessions))
            }
        }
        let current = epochs.epoch(atMs: now)
        state.withLock { s in
            for closed in s.observer.observe(sightings, atMs: now) { s.demand[closed.epoch] = closed.demand }
            s.demand = s.demand.filter { $0.key + Self.demandEpochs > current }
            s.samples &+= 1
        }
        announceNewestFinal(nowMs: now)
    }

    /// The newest epoch whose ledger is final at `now`.
    func newestFinal(nowMs now: UInt64) -> UInt64? {
        let current = epochs.epoch(atMs: now)
        if current > 0, now >= epochs.endMs(current - 1) + finalAfterMs { return current - 1 }
        return current > 1 ? current - 2 : nil
    }

    /// Once per epoch, when its ledger becomes final: the log line and this node's gauges.
    /// Called by every sample and before every `/rewards` answer, so the gauges never lag
    /// behind a ledger the API calls final.
    private func announceNewestFinal(nowMs now: UInt64) {
        guard let e = newestFinal(nowMs: now) else { return }
        // Under its own lock, held while the ledger is computed: a concurrent caller waits
        // until the gauges are set (the state lock is never held while taking this one).
        announced.withLock { last in
            guard last.map({ $0 < e }) ?? true else { return }
            last = e
            let ledger = ledger(epoch: e, nowMs: now)
            if !ledger.rows.isEmpty {
                logger.info("rewards: epoch final", metadata: [
                    "epoch": "\(ledger.epoch)", "nodes": "\(ledger.rows.count)", "digest": "\(ledger.digest)"])
            }
            exportGauges(ledger)
        }
    }

    /// The ledger of epoch `e` from the evidence held now: recomputed when the QoS set changed
    /// (or, for the running epoch, after every sample).
    private func ledger(epoch e: UInt64, nowMs now: UInt64) -> RewardLedger {
        let (digest, aggregate) = qos()
        let current = epochs.epoch(atMs: now)
        let (key, demand): (String, [DemandPoint]) = state.withLock { s in
            if e == current || s.observer.currentEpoch == e {
                return ("\(digest)/\(s.samples)", s.observer.provisional()?.demand ?? [])
            }
            return (digest, s.demand[e] ?? [])
        }
        if let hit = state.withLock({ $0.cache[e] }), hit.key == key { return hit.ledger }
        // Computed outside the lock: 10,000 nodes take a few tens of ms.
        let seen = aggregate.nodesSeen(epoch: e).map(\.peerID)
        let positions: [PeerID: GeoPoint] = registry.withReplica { replica in
            var out: [PeerID: GeoPoint] = [:]
            for id in seen { if let geo = replica.table[id]?.record.geo { out[id] = geo } }
            return out
        }
        let inputs = QoSRewardEvidence.inputs(epoch: e, aggregate: aggregate, epochSeconds: Double(epochs.epochSeconds),
                                              position: { positions[$0] }, demand: demand)
        let ledger = RewardLedger(inputs, parameters: parameters)
        state.withLock { s in
            s.cache[e] = (key, ledger)
            if s.cache.count > 16, let oldest = s.cache.keys.min() { s.cache[oldest] = nil }
        }
        return ledger
    }

    /// `drtc_rewards_*{}` for this node, from the newest final epoch.
    private func exportGauges(_ ledger: RewardLedger) {
        metrics.gauge("drtc_rewards_epoch", "kind", "closed").set(Double(ledger.epoch))
        guard let row = ledger.row(for: me.description) else { return }
        for (name, value) in [("availability", row.availability), ("history", row.history), ("location", row.location),
                              ("coverage", row.coverage), ("quality", row.quality ?? parameters.unmeasuredQuality)] {
            metrics.gauge("drtc_rewards_score", "score", name).set(value)
        }
        metrics.gauge("drtc_rewards_unit_reward", "kind", "closed").set(row.unitReward)
        metrics.gauge("drtc_rewards_data_supplied_megabytes", "kind", "closed").set(row.dataSuppliedMB)
        metrics.gauge("drtc_rewards_reward", "kind", "closed").set(row.reward)
        metrics.gauge("drtc_rewards_quality_measured", "kind", "closed").set(row.quality == nil ? 0 : 1)
    }

    /// The ledger of `epoch` (nil: the current one, provisional).
    func report(epoch: UInt64?) throws(RewardsLookupError) -> RewardsReport {
        let now = registry.clock()
        let current = epochs.epoch(atMs: now)
        let wanted = epoch ?? current
        if wanted > current { throw .future(current: current) }
        let oldest = current >= retainedEpochs - 1 ? current - (retainedEpochs - 1) : 0
        if wanted < oldest { throw .unknown(oldest: oldest, current: current) }
        announceNewestFinal(nowMs: now)
        let final = now >= epochs.endMs(wanted) + finalAfterMs
        return RewardsReport(ledger: ledger(epoch: wanted, nowMs: now), epochs: epochs, final: final, sources: Self.sources)
    }

    /// This node's line of the last `count` epochs, newest first (the dashboard).
    func ownHistory(count: Int) -> [DashboardOverview.EpochReward] {
        let id = me.description
        var out: [DashboardOverview.EpochReward] = []
        guard let current = try? report(epoch: nil) else { return out }
        out.append(.init(epoch: current.ledger.epoch, final: current.final, row: current.ledger.row(for: id).map(RewardNodeJSON.init)))
        var e = current.ledger.epoch
        while out.count < count, e > 0 {
            e -= 1
            guard let r = try? report(epoch: e) else { break }
            out.append(.init(epoch: e, final: r.final, row: r.ledger.row(for: id).map(RewardNodeJSON.init)))
        }
        return out
    }
}
