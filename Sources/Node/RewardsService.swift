import HTTPAPI
import Identity
import Logging
import Registry
import Rewards
import ServiceLifecycle
import Synchronization

/// Keeps this node's reward ledgers (Specs/rewards.md): samples the registry, closes each epoch
/// into a ledger, serves `/rewards` and sets the `drtc_rewards_*` gauges for this node.
///
/// INPUTS (Specs/rewards.md "Inputs"): V is the node's smoothed QoS score from the replicated
/// QoS set (the same on every peer holding the same set) when the epoch closes; b, s (H) and
/// demand (L) come from the replicated set of countersigned session receipts (equal on every
/// peer holding the same receipts); availability and positions from `LivenessObserver` over
/// this node's own registry (a local view, in memory). `sources` below says so in every
/// `/rewards` answer. A closed epoch's ledger is recomputed when receipts of it arrive later
/// (a session's last part is countersigned just after its epoch ends).
final class RewardsService: Service, Sendable {
    static let sources = RewardSources(
        availability: "placeholder: liveness of registry records as sampled by this node since it started (to be replaced by QoS tests answered, Specs/rewards.md)",
        quality: "QoS set: the node's smoothed score V when the epoch closed (Specs/qos.md \"Aggregation\"); null while unmeasured",
        dataSupplied: "receipt set: b summed over the epoch's session receipts countersigned by their allocating orchestrator; s (history) over all receipts held (Specs/rewards.md \"Data supplied\")",
        demand: "receipt set: n_p + n_c of the epoch's countersigned receipts at the serving node's position",
        positions: "registry records (--geo), as declared")

    /// Closed ledgers kept in memory (about 2 MB each at 10,000 nodes).
    static let retainedEpochs = 12

    /// A closed epoch: its inputs (without receipts) and its ledger as of a receipt-set generation.
    private struct Closed {
        var inputs: RewardInputs
        var ledger: RewardLedger
        var generation: UInt64
    }

    private struct State {
        var observer: LivenessObserver
        /// Closed epochs, oldest first.
        var closed: [Closed] = []
        /// The current epoch's ledger, computed on demand and kept until the next sample (or
        /// until the receipt set changes).
        var provisional: (ledger: RewardLedger, generation: UInt64)?
    }

    let epochs: RewardEpochs
    let parameters: RewardParameters
    let sampleIntervalMs: UInt64
    private let state: Mutex<State>
    private let registry: RegistryService
    private let metrics: DrtcMetrics
    private let logger: Logger
    private let me: PeerID
    /// Measured nodes' V now (the QoS aggregate's smoothed scores).
    private let quality: @Sendable () -> [PeerID: Double]
    /// Countersigned session receipts (b, s, demand); nil: none (benchmarks, tests).
    private let receipts: ReceiptService?

    init(epochSeconds: UInt32, parameters: RewardParameters, registry: RegistryService, metrics: DrtcMetrics, logger: Logger, me: PeerID,
         quality: @escaping @Sendable () -> [PeerID: Double] = { [:] }, receipts: ReceiptService? = nil) {
        let epochs = RewardEpochs(epochSeconds: UInt64(epochSeconds))
        self.epochs = epochs
        self.parameters = parameters
        // Ten samples an epoch at least, every 5 s at most.
        sampleIntervalMs = max(1_000, min(5_000, epochs.epochMs / 10))
        state = Mutex(State(observer: LivenessObserver(
            epochs: epochs, maxGapMs: 3 * sampleIntervalMs + 2_000,
            forgetAfterMs: UInt64(Self.retainedEpochs) * epochs.epochMs)))
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.me = me
        self.quality = quality
        self.receipts = receipts
    }

    private var receiptGeneration: UInt64 { receipts?.withSet { $0.generation } ?? 0 }

    /// The ledger of `inputs` with b, s and demand from the receipts of its epoch.
    private func ledger(_ inputs: RewardInputs) -> RewardLedger {
        guard let receipts else { return RewardLedger(inputs, parameters: parameters) }
        let totals = receipts.withSet {
            $0.totals(epoch: inputs.epoch, epochSeconds: UInt32(epochs.epochSeconds), streamBitrateKbps: parameters.streamBitrateKbps)
        }
        return RewardLedger(totals.apply(to: inputs), parameters: parameters)
    }

    /// `inputs` with V filled in from the QoS aggregate.
    private func withQuality(_ inputs: RewardInputs) -> RewardInputs {
        let scores = quality()
        guard !scores.isEmpty else { return inputs }
        var out = inputs
        for i in out.nodes.indices { out.nodes[i].quality = scores[out.nodes[i].node] }
        return out
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.sample()
                try await Task.sleep(for: .milliseconds(Int64(self.sampleIntervalMs)))
            }
        }
    }

    /// One sample of the registry's live records; closes the epochs it ends.
    func sample() {
        let now = registry.clock()
        let sightings = registry.withReplica { replica in
            replica.table.liveRecords(nowMs: now).map {
                LivenessObserver.Sighting(node: $0.nodeID, position: $0.record.geo, activeSessions: Int($0.record.load.activeSessions))
            }
        }
        let closedInputs = state.withLock { s -> [RewardInputs] in
            s.provisional = nil
            return s.observer.observe(sightings, atMs: now)
        }
        guard !closedInputs.isEmpty else { return }
        // Ledgers are computed outside the lock: 10,000 nodes take a few tens of ms.
        let generation = receiptGeneration
        let closed = closedInputs.map { inputs in
            let withV = withQuality(inputs)
            return Closed(inputs: withV, ledger: ledger(withV), generation: generation)
        }
        let ledgers = closed.map(\.ledger)
        state.withLock { s in
            s.closed += closed
            if s.closed.count > Self.retainedEpochs { s.closed.removeFirst(s.closed.count - Self.retainedEpochs) }
        }
        if let last = ledgers.last {
            logger.info("rewards: epoch closed", metadata: [
                "epoch": "\(last.epoch)", "nodes": "\(last.rows.count)", "digest": "\(last.digest)"])
            exportGauges(last)
        }
    }

    /// `drtc_rewards_*{}` for this node, from the last closed epoch.
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
        let current = epochs.epoch(atMs: registry.clock())
        let wanted = epoch ?? current
        if wanted > current { throw .future(current: current) }
        // Just past a boundary, before the next sample: sample now, so the epoch that just
        // ended is closed and the new one exists.
        if wanted == current, state.withLock({ $0.observer.currentEpoch }) != current { sample() }
        let generation = receiptGeneration
        let found: (RewardLedger, Bool)? = state.withLock { s in
            if let i = s.closed.lastIndex(where: { $0.ledger.epoch == wanted }) {
                // Receipts of the epoch that arrived since: the ledger is recomputed.
                if s.closed[i].generation != generation {
                    s.closed[i].ledger = ledger(s.closed[i].inputs)
                    s.closed[i].generation = generation
                    if i == s.closed.count - 1 { exportGauges(s.closed[i].ledger) }
                }
                return (s.closed[i].ledger, true)
            }
            guard wanted == s.observer.currentEpoch else { return nil }
            if s.provisional?.generation != generation, let inputs = s.observer.provisional() {
                s.provisional = (ledger(withQuality(inputs)), generation)
            }
            return s.provisional.map { ($0.ledger, false) }
        }
        guard let (ledger, final) = found else {
            throw .unknown(oldest: state.withLock { $0.closed.first?.ledger.epoch }, current: current)
        }
        return RewardsReport(ledger: ledger, epochs: epochs, final: final, sources: Self.sources)
    }

    /// This node's line of the last `count` epochs, newest first (the dashboard).
    func ownHistory(count: Int) -> [DashboardOverview.EpochReward] {
        let id = me.description
        var out: [DashboardOverview.EpochReward] = []
        if let current = try? report(epoch: nil) {
            out.append(.init(epoch: current.ledger.epoch, final: false, row: current.ledger.row(for: id).map(RewardNodeJSON.init)))
        }
        // Through `report`, so late receipts show in the closed epochs too.
        let closed = state.withLock { $0.closed.suffix(count).map(\.ledger.epoch) }
        for e in closed.reversed() where out.count < count {
            guard let l = try? report(epoch: e).ledger else { continue }
            out.append(.init(epoch: l.epoch, final: true, row: l.row(for: id).map(RewardNodeJSON.init)))
        }
        return out
    }
}
