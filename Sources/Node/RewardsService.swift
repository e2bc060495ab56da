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
/// (`QoSRewardEvidence`); b, s (H) and demand (L) from the replicated set of countersigned
/// session receipts; positions from registry records. So replicas holding equal QoS and receipt
/// sets (and records) compute byte-identical ledgers. A ledger is recomputed when either set
/// changes: receipts of a session's last part are countersigned just after its epoch ends.
/// `sources` below says so in every `/rewards` answer.
final class RewardsService: Service, Sendable {
    static let sources = RewardSources(
        availability: "QoS set: tests answered — u sums, over the epochs with counted reports, the weighted median share of the test the challengers received; l sums the node's activity probability over the epochs since its first ticket (Specs/rewards.md)",
        quality: "QoS set: the node's measured V in this epoch (Specs/qos.md \"Aggregation\", step 4); null when the epoch did not measure it",
        dataSupplied: "receipt set: b summed over the epoch's session receipts countersigned by their allocating orchestrator; s (history) over all receipts held (Specs/rewards.md \"Data supplied\")",
        demand: "receipt set: n_p + n_c of the epoch's countersigned receipts at the serving node's position",
        positions: "registry records (--geo), as declared; none for a node whose QoS reports mostly say location_implausible")

    private struct State {
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
    /// The newest epoch whose ledger was announced final (log line), and the evidence its
    /// gauges were set from (late receipts change them).
    private let announced = Mutex<(epoch: UInt64, key: String)?>(nil)
    private let registry: RegistryService
    private let metrics: DrtcMetrics
    private let logger: Logger
    private let me: PeerID
    /// The QoS set's digest and its aggregate (cached by the QoS service).
    private let qos: @Sendable () -> (digest: String, aggregate: QoSAggregate)
    /// Countersigned session receipts (b, s, demand); nil: none (benchmarks, tests).
    private let receipts: ReceiptService?

    init(schedule: QoSSchedule, horizonEpochs: UInt64, parameters: RewardParameters, registry: RegistryService, metrics: DrtcMetrics,
         logger: Logger, me: PeerID, qos: @escaping @Sendable () -> (digest: String, aggregate: QoSAggregate), receipts: ReceiptService? = nil) {
        let epochs = RewardEpochs(epochSeconds: UInt64(schedule.epochSeconds))
        self.epochs = epochs
        self.parameters = parameters
        finalAfterMs = schedule.setupMs
        retainedEpochs = max(1, horizonEpochs)
        // Ten looks an epoch at least, every 5 s at most.
        sampleIntervalMs = max(1_000, min(5_000, epochs.epochMs / 10))
        state = Mutex(State())
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.me = me
        self.qos = qos
        self.receipts = receipts
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.sample()
                try await Task.sleep(for: .milliseconds(Int64(self.sampleIntervalMs)))
            }
        }
    }

    /// Announces the newest final ledger when it (or its evidence) changes.
    func sample() {
        announceNewestFinal(nowMs: registry.clock())
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
            guard last.map({ $0.epoch <= e }) ?? true else { return }
            let (key, ledger) = keyedLedger(epoch: e, nowMs: now)
            guard last.map({ $0.epoch < e || $0.key != key }) ?? true else { return }
            if last.map({ $0.epoch < e }) ?? true, !ledger.rows.isEmpty {
                logger.info("rewards: epoch final", metadata: [
                    "epoch": "\(ledger.epoch)", "nodes": "\(ledger.rows.count)", "digest": "\(ledger.digest)"])
            }
            last = (e, key)
            exportGauges(ledger)
        }
    }

    /// The ledger of epoch `e` from the evidence held now: recomputed when the QoS set or the
    /// receipt set changed (and, for the running epoch, when the registry did: positions).
    private func ledger(epoch e: UInt64, nowMs now: UInt64) -> RewardLedger { keyedLedger(epoch: e, nowMs: now).ledger }

    private func keyedLedger(epoch e: UInt64, nowMs now: UInt64) -> (key: String, ledger: RewardLedger) {
        let (digest, aggregate) = qos()
        let generation = receipts?.withSet { $0.generation } ?? 0
        let key = e == epochs.epoch(atMs: now) ? "\(digest)/\(generation)/\(registry.withReplica { $0.table.generation })" : "\(digest)/\(generation)"
        if let hit = state.withLock({ $0.cache[e] }), hit.key == key { return (key, hit.ledger) }
        // Computed outside the lock: 10,000 nodes take a few tens of ms.
        let totals = receipts?.withSet {
            $0.totals(epoch: e, epochSeconds: UInt32(epochs.epochSeconds), streamBitrateKbps: parameters.streamBitrateKbps)
        }
        let seen = aggregate.nodesSeen(epoch: e).map(\.peerID)
        // Nodes that served countersigned sessions in the epoch belong to it too, QoS presence
        // or not (a node that joined too recently to hold a ticket): no lifetime in the QoS set,
        // so A = 0, V unmeasured, and their b counts.
        let served = (totals?.sessions.keys).map { Set($0).subtracting(seen).sorted() } ?? []
        let positions: [PeerID: GeoPoint] = registry.withReplica { replica in
            var out: [PeerID: GeoPoint] = [:]
            for id in seen + served { if let geo = replica.table[id]?.record.geo { out[id] = geo } }
            return out
        }
        var inputs = QoSRewardEvidence.inputs(epoch: e, aggregate: aggregate, epochSeconds: Double(epochs.epochSeconds),
                                              position: { positions[$0] }, demand: [])
        let present = Set(inputs.nodes.map(\.node))
        for id in served where !present.contains(id) {
            inputs.nodes.append(RewardNodeInput(node: id, position: positions[id], uptimeSeconds: 0, lifetimeSeconds: 0, quality: nil))
        }
        if let totals { inputs = totals.apply(to: inputs) }
        let ledger = RewardLedger(inputs, parameters: parameters)
        state.withLock { s in
            s.cache[e] = (key, ledger)
            if s.cache.count > 16, let oldest = s.cache.keys.min() { s.cache[oldest] = nil }
        }
        return (key, ledger)
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
