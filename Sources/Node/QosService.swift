import HTTPAPI
import Identity
import Logging
import QoS
import Registry
import Synchronization

/// The QoS set's I/O shell (Specs/qos.md "Storage"): the replicated `QoSLedger` (pure core)
/// over LMDB, with group-committed merges, a cached aggregation and digest, garbage
/// collection and this node's own samples.
public final class QoSService: Sendable {
    public let schedule: QoSSchedule
    public let parameters: QoSParameters
    let store: QoSStore
    let metrics: DrtcMetrics
    let logger: Logger
    let clock: @Sendable () -> UInt64
    private let ledger: Mutex<QoSLedger>
    private let committer: Mutex<GroupCommitter<SignedQoSBundle, QoSLedger.InsertOutcome>?> = Mutex(nil)
    private let cache = Mutex<(generation: UInt64, aggregate: QoSAggregate?, digest: [UInt8])>((.max, nil, []))

    public init(directory: String, schedule: QoSSchedule, parameters: QoSParameters = QoSParameters(),
                metrics: DrtcMetrics, logger: Logger, clock: @escaping @Sendable () -> UInt64 = wallClockMs) throws {
        self.schedule = schedule
        self.parameters = parameters
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        store = try QoSStore(directory: directory)
        var ledger = QoSLedger()
        for b in try store.bundles.loadVerified(what: "QoS", logger: logger, { try? SignedQoSBundle.verify(encoded: $0) }) { ledger.insert(b) }
        logger.info("QoS set opened", metadata: ["bundles": "\(ledger.count)", "path": "\(directory)"])
        self.ledger = Mutex(ledger)
        let committer = GroupCommitter<SignedQoSBundle, QoSLedger.InsertOutcome>(label: "drtc.qos.writer", maxBatch: 4096) { [weak self] batch in
            guard let self else { throw CancellationError() }
            return try self.process(batch)
        }
        self.committer.withLock { $0 = committer }
    }

    private var writer: GroupCommitter<SignedQoSBundle, QoSLedger.InsertOutcome> { committer.withLock { $0! } }

    /// Merges verified bundles; returns once the ones kept are durably committed.
    public func merge(_ bundles: [SignedQoSBundle]) async throws -> [QoSLedger.InsertOutcome] {
        try await writer.submit(bundles)
    }

    /// One group commit: decides every bundle against the set plus the batch so far (the
    /// retention rule, `QoSLedger.outcome`), commits the kept ones and the evicted ones in one
    /// durable transaction, then publishes them: nothing is visible before it is on disk.
    private func process(_ batch: [[SignedQoSBundle]]) throws -> [[QoSLedger.InsertOutcome]] {
        var overlay: [QoSLedger.Key: [SyncID]] = [:]
        var added: [SyncID: SignedQoSBundle] = [:]
        var removed: [SignedQoSBundle] = []
        let outcomes = batch.map { bundles in
            bundles.map { b -> QoSLedger.InsertOutcome in
                let key = QoSLedger.Key(epoch: b.epoch, challenger: b.challenger)
                var held = overlay[key] ?? ledger.withLock { $0.held(key) }
                let o = QoSLedger.outcome(of: b.syncID, held: held)
                switch o {
                case .added(let evicted), .equivocation(let evicted):
                    if let evicted {
                        held.removeAll { $0 == evicted }
                        if added.removeValue(forKey: evicted) == nil, let old = ledger.withLock({ $0[evicted] }) { removed.append(old) }
                    }
                    held.append(b.syncID)
                    overlay[key] = held
                    added[b.syncID] = b
                case .duplicate, .discarded:
                    break
                }
                return o
            }
        }
        let kept = added.values.sorted { $0.syncID < $1.syncID }
        try store.commit(added: kept, removed: removed)
        ledger.withLock { current in
            for b in kept { current.insert(b) }
        }
        for o in outcomes.joined() {
            if case .equivocation = o { metrics.counter("drtc_qos_equivocations_total", "kind", "stored").increment() }
        }
        return outcomes
    }

    public func withLedger<T>(_ body: (QoSLedger) -> T) -> T { ledger.withLock { body($0) } }

    /// The aggregation of the current set, recomputed when the set changed.
    public func aggregate() -> QoSAggregate {
        let generation = ledger.withLock { $0.generation }
        if let hit = cache.withLock({ $0.generation == generation ? $0.aggregate : nil }) { return hit }
        let snapshot = ledger.withLock { $0 }
        let computed = QoSAggregate.compute(snapshot, schedule: schedule, parameters: parameters)
        cache.withLock { $0 = (snapshot.generation, computed, snapshot.digest) }
        return computed
    }

    /// Gossip-time check (Specs/qos.md "Validation"): the prover's ticket for `epoch` is held
    /// here and does not assign `challenger` even at twice τ (the last computed plan's).
    public func isDefinitelyUnassigned(challenger: NodeKey, prover: NodeKey, epoch: UInt64) -> Bool {
        guard epoch > 0, let beta = ledger.withLock({ $0.bundles(epoch: epoch - 1, challenger: prover).first?.nextBeta }),
              let agg = cache.withLock({ $0.aggregate }) else { return false }
        let plan = agg.epochs[epoch]?.plan ?? agg.plan(for: epoch, ticketsForEpoch: 1)
        return !Sortition.selected(Sortition.pairDraw(proverBeta: beta, challenger: challenger), probability: min(1, 2 * plan.tau))
    }

    /// `/health.qosDigest`.
    public func digest() -> String {
        let generation = ledger.withLock { $0.generation }
        if let hit = cache.withLock({ $0.generation == generation ? $0.digest : nil }) { return Hex.encode(hit) }
        _ = aggregate()
        return Hex.encode(cache.withLock { $0.digest })
    }

    public func saveSamples(_ series: SampleSeries, epoch: UInt64) {
        do { try store.putSamples(series, epoch: epoch) } catch {
            logger.warning("could not store QoS samples", metadata: ["error": "\(error)"])
        }
    }

    public func samples(hash: [UInt8]) -> SampleSeries? {
        guard let bytes = try? store.samples(hash: hash) else { return nil }
        return try? SampleSeries(decoding: bytes)
    }

    /// Drops epochs older than the horizon (Specs/qos.md "Garbage collection").
    public func collectGarbage() {
        let current = schedule.epoch(atMs: clock())
        guard current > parameters.horizonEpochs else { return }
        let oldest = current - parameters.horizonEpochs
        do {
            let dropped = try writer.onWriter { () throws -> Int in
                let n = try store.deleteEpochs(before: oldest)
                ledger.withLock { _ = $0.collectGarbage(oldestKept: oldest) }
                return n
            }
            if dropped > 0 { logger.info("QoS set garbage-collected old epochs", metadata: ["bundles": "\(dropped)", "oldestKept": "\(oldest)"]) }
        } catch {
            logger.error("QoS garbage collection failed", metadata: ["error": "\(error)"])
        }
    }

    public func close() { writer.onWriter { store.close() } }
}
