import Dispatch
import HTTPAPI
import Identity
import Logging
import Registry
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock milliseconds since the Unix epoch. The only clock the registry shell reads; the
/// cores receive it as a parameter.
public func wallClockMs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}

/// The registry's I/O shell: owns the replica (pure core) and the LMDB store.
///
/// Writes go through a group-commit queue: callers verify signatures on their own threads
/// (that is the expensive part), then enqueue; one writer thread takes everything queued,
/// decides winners, commits them in a single durable LMDB transaction, publishes them to the
/// in-memory replica, and only then answers the callers. Under load, one fsync covers many
/// merges; nothing is acknowledged before it is on disk.
public final class RegistryService: Sendable {
    private let replica: Mutex<RegistryReplica>
    private let committer: Mutex<GroupCommitter<SignedRecord, MergeOutcome>?> = Mutex(nil)
    let store: RegistryStore
    let metrics: DrtcMetrics
    let logger: Logger
    let clock: @Sendable () -> UInt64
    /// Largest number of records committed in one transaction.
    static let maxBatch = 4096

    public init(directory: String, metrics: DrtcMetrics, logger: Logger, clock: @escaping @Sendable () -> UInt64 = wallClockMs) throws {
        self.store = try RegistryStore(directory: directory)
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        var replica = RegistryReplica()
        let loaded = try store.loadAll()
        let now = clock()
        for r in loaded.records { replica.merge(r, nowMs: now) }
        replica.compact()
        if !loaded.invalid.isEmpty {
            logger.error("registry store holds entries that do not verify; they were not loaded", metadata: ["count": "\(loaded.invalid.count)"])
        }
        if store.env.staleReadersCleared > 0 {
            logger.notice("cleared stale LMDB reader slots left by a crashed process", metadata: ["count": "\(store.env.staleReadersCleared)"])
        }
        logger.info("registry opened", metadata: ["records": "\(loaded.records.count)", "path": "\(directory)"])
        self.replica = Mutex(replica)
        let committer = GroupCommitter<SignedRecord, MergeOutcome>(label: "drtc.registry.writer", maxBatch: Self.maxBatch) { [weak self] batch in
            guard let self else { throw CancellationError() }
            return try self.process(batch)
        }
        self.committer.withLock { $0 = committer }
        metrics.onScrape { [weak self] in self?.updateGauges() }
    }

    private var writer: GroupCommitter<SignedRecord, MergeOutcome> { committer.withLock { $0! } }

    /// Verifies and merges one encoded record; returns after a winning record is committed.
    public func submit(encoded: [UInt8]) async throws -> SubmitResult {
        let record: SignedRecord
        do {
            record = try SignedRecord.verify(encoded: encoded, nowMs: clock())
        } catch {
            metrics.mergeRejected(error)
            return .rejected(error)
        }
        let outcome = try await merge([record])[0]
        return .merged(record, outcome)
    }

    /// Merges verified records; returns their outcomes once the winners are committed.
    public func merge(_ records: [SignedRecord]) async throws -> [MergeOutcome] {
        try await writer.submit(records)
    }

    /// One group commit: decides winners against the table, commits them in one durable
    /// transaction, then publishes them to the in-memory replica.
    private func process(_ batch: [[SignedRecord]]) throws -> [[MergeOutcome]] {
        let now = clock()
        let snapshot = replica.withLock { $0.table }
        var winners: [PeerID: (new: SignedRecord, previous: SignedRecord?)] = [:]
        var outcomes: [[MergeOutcome]] = []
        for records in batch {
            outcomes.append(records.map { r in
                let current = winners[r.nodeID]?.new ?? snapshot[r.nodeID]
                let o = RegistryTable.outcome(of: r, against: current, nowMs: now, garbageCollectionMs: snapshot.garbageCollectionMs)
                if o == .accepted { winners[r.nodeID] = (r, winners[r.nodeID]?.previous ?? snapshot[r.nodeID]) }
                return o
            })
        }
        do {
            try store.commit(winners: Array(winners.values))
        } catch {
            logger.error("registry commit failed; merges not acknowledged", metadata: ["error": "\(error)", "records": "\(winners.count)"])
            throw error
        }
        if !winners.isEmpty {
            replica.withLock { rep in
                for w in winners.values { rep.merge(w.new, nowMs: now) }
            }
        }
        for o in outcomes { o.forEach(metrics.recordMerge) }
        return outcomes
    }

    /// Drops records past the GC horizon from memory and disk.
    public func collectGarbage() throws {
        let now = clock()
        let dropped = replica.withLock { rep in
            rep.table.records.filter { $0.hlc.wallMs &+ rep.table.garbageCollectionMs < now }
        }
        guard !dropped.isEmpty else { return }
        try writer.onWriter { try store.commit(winners: [], deletions: dropped) }
        _ = replica.withLock { $0.collectGarbage(nowMs: now) }
        logger.info("registry garbage-collected old entries", metadata: ["count": "\(dropped.count)"])
    }

    /// Signs and merges a new version of this node's own record, with a fresh HLC.
    @discardableResult
    public func publishOwn(_ build: (HLC) -> MediaNodeRecord, key: Ed25519KeyPair) async throws -> SignedRecord {
        let hlc = replica.withLock { $0.nextTimestamp(nowMs: clock()) }
        let signed = try build(hlc).signed(with: key)
        _ = try await merge([signed])
        return signed
    }

    public func withReplica<T>(_ body: (inout RegistryReplica) -> T) -> T {
        replica.withLock { body(&$0) }
    }

    /// Counting live records scans the table, so the gauges are set when `/metrics` is
    /// scraped rather than after every merge.
    func updateGauges() {
        let now = clock()
        let (live, stored) = replica.withLock { ($0.table.liveCount(nowMs: now), $0.table.count) }
        metrics.liveRecords.set(live)
        metrics.storedRecords.set(stored)
    }

    /// Waits for queued merges, then closes LMDB.
    public func close() {
        writer.onWriter { store.close() }
    }
}
