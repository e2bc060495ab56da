import HTTPAPI
import Identity
import Logging
import Registry
import RegistryGossip
import Rewards
import Store
import Synchronization

/// The receipt set's I/O shell (Specs/rewards.md "Data supplied"): the replicated `ReceiptSet`
/// (pure core) over LMDB in `<data-dir>/receipts` (`EpochItemTable` "receipts", as the QoS set
/// keeps its bundles), with group-committed merges and garbage collection at the QoS set's
/// horizon.
final class ReceiptService: Sendable {
    let epochSeconds: UInt32
    let horizonEpochs: UInt64
    let env: LMDBEnvironment
    let table: EpochItemTable
    let metrics: DrtcMetrics
    let logger: Logger
    let clock: @Sendable () -> UInt64
    private let set: Mutex<ReceiptSet>
    private let committer: Mutex<GroupCommitter<SignedSessionReceipt, Bool>?> = Mutex(nil)

    init(directory: String, epochSeconds: UInt32, horizonEpochs: UInt64, metrics: DrtcMetrics, logger: Logger,
         clock: @escaping @Sendable () -> UInt64) throws {
        self.epochSeconds = epochSeconds
        self.horizonEpochs = horizonEpochs
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        env = try LMDBEnvironment(path: directory, mapSize: 64 << 20)
        table = try EpochItemTable(env: env, name: "receipts")
        var set = ReceiptSet()
        for r in try table.loadVerified(what: "receipt", logger: logger, { try? SignedSessionReceipt.verify(encoded: $0) }) { set.insert(r) }
        logger.info("receipt set opened", metadata: ["receipts": "\(set.count)", "path": "\(directory)"])
        self.set = Mutex(set)
        let committer = GroupCommitter<SignedSessionReceipt, Bool>(label: "drtc.receipts.writer", maxBatch: 4096) { [weak self] batch in
            guard let self else { throw CancellationError() }
            return try self.process(batch)
        }
        self.committer.withLock { $0 = committer }
        metrics.onScrape { [weak self] in
            guard let self else { return }
            metrics.gauge("drtc_receipts", "kind", "stored").set(self.withSet { $0.count })
        }
    }

    private var writer: GroupCommitter<SignedSessionReceipt, Bool> { committer.withLock { $0! } }

    /// Merges verified, countersigned receipts; returns (once the new ones are durably
    /// committed) which were new.
    @discardableResult
    func merge(_ receipts: [SignedSessionReceipt]) async throws -> [Bool] {
        try await writer.submit(receipts)
    }

    private func process(_ batch: [[SignedSessionReceipt]]) throws -> [[Bool]] {
        var added: [SyncID: SignedSessionReceipt] = [:]
        let outcomes = batch.map { receipts in
            receipts.map { r -> Bool in
                guard added[r.syncID] == nil, !set.withLock({ $0.contains(r.syncID) }) else { return false }
                added[r.syncID] = r
                return true
            }
        }
        let kept = added.values.sorted { $0.syncID < $1.syncID }
        try table.commit(added: kept, removed: [SignedSessionReceipt]())
        set.withLock { s in for r in kept { s.insert(r) } }
        if !kept.isEmpty { metrics.counter("drtc_receipts_total", "result", "stored").increment(by: kept.count) }
        return outcomes
    }

    func withSet<T>(_ body: (ReceiptSet) -> T) -> T { set.withLock { body($0) } }

    func digest() -> String { Hex.encode(withSet { $0.digest }) }

    /// Drops epochs older than the horizon (the QoS set's, Specs/qos.md "Garbage collection").
    func collectGarbage() {
        let current = clock() / (UInt64(epochSeconds) * 1000)
        guard current > horizonEpochs else { return }
        let oldest = current - horizonEpochs
        do {
            let dropped = try writer.onWriter { () throws -> Int in
                let n = try env.write { txn in try table.deleteEpochs(before: oldest, in: txn) }
                set.withLock { _ = $0.collectGarbage(oldestKept: oldest) }
                return n
            }
            if dropped > 0 { logger.info("receipt set garbage-collected old epochs", metadata: ["receipts": "\(dropped)", "oldestKept": "\(oldest)"]) }
        } catch {
            logger.error("receipt garbage collection failed", metadata: ["error": "\(error)"])
        }
    }

    func close() { writer.onWriter { env.close() } }

    /// The receipt topic and set in the mesh.
    func attach(to gossip: MeshGossip) {
        let metrics = metrics, epochSeconds = epochSeconds
        SetReplication<SignedSessionReceipt>(
            topic: ReceiptGossip.topic, protocolID: ReceiptGossip.syncProtocolID, metricsPrefix: "drtc_receipts_sync", what: "session receipt",
            validate: { message, now in
                let (result, receipt) = ReceiptGossip.validate(message, nowMs: now, epochSeconds: epochSeconds)
                if case .reject(let reason) = result {
                    metrics.counter("drtc_receipts_rejected_total", "reason", String(reason.dropFirst("receipt_".count))).increment()
                }
                return (result, receipt)
            },
            verify: { bytes in
                do { return try SignedSessionReceipt.verify(encoded: bytes) } catch {
                    metrics.counter("drtc_receipts_rejected_total", "reason", (error as? ReceiptRejection)?.reason ?? "malformed").increment()
                    return nil
                }
            },
            merge: { [weak self] receipts, _ in _ = try await self?.merge(receipts) },
            syncItems: { [weak self] in self?.withSet { $0.syncItems } ?? [] },
            busySample: { [weak self] in
                self?.withSet { s in Array(s.receipts(epoch: s.epochs.last ?? 0).shuffled().prefix(SyncPolicy.busySample)).map(\.encoded) } ?? []
            }
        ).attach(to: gossip, logger: logger)
    }
}
