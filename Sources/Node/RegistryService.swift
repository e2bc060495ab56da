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

/// Milliseconds on the monotonic clock (CLOCK_MONOTONIC): for local durations (timers,
/// backoffs, ages), which must not jump or run backwards when the wall clock is stepped.
public func monotonicMs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
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
    struct Pending {
        var records: [SignedRecord]
        var continuation: CheckedContinuation<[MergeOutcome], any Error>
    }

    struct Queue {
        var pending: [Pending] = []
        var draining = false
    }

    private let replica: Mutex<RegistryReplica>
    private let queue = Mutex(Queue())
    private let writer = DispatchQueue(label: "drtc.registry.writer")
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
        metrics.onScrape { [weak self] in self?.updateGauges() }
    }

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
        guard !records.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            let schedule = queue.withLock { q in
                q.pending.append(Pending(records: records, continuation: continuation))
                if q.draining { return false }
                q.draining = true
                return true
            }
            if schedule { writer.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch: [Pending] = queue.withLock { q in
                var taken: [Pending] = []
                var count = 0
                while !q.pending.isEmpty, count < Self.maxBatch {
                    count += q.pending[0].records.count
                    taken.append(q.pending.removeFirst())
                }
                if taken.isEmpty { q.draining = false }
                return taken
            }
            if batch.isEmpty { return }
            process(batch)
        }
    }

    private func process(_ batch: [Pending]) {
        let now = clock()
        let snapshot = replica.withLock { $0.table }
        var winners: [PeerID: (new: SignedRecord, previous: SignedRecord?)] = [:]
        var outcomes: [[MergeOutcome]] = []
        for p in batch {
            outcomes.append(p.records.map { r in
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
            for p in batch { p.continuation.resume(throwing: error) }
            return
        }
        if !winners.isEmpty {
            replica.withLock { rep in
                for w in winners.values { rep.merge(w.new, nowMs: now) }
            }
        }
        for (p, o) in zip(batch, outcomes) {
            o.forEach(metrics.recordMerge)
            p.continuation.resume(returning: o)
        }

    }

    /// Drops records past the GC horizon from memory and disk.
    public func collectGarbage() throws {
        let now = clock()
        let dropped = replica.withLock { rep in
            rep.table.records.filter { $0.hlc.wallMs &+ rep.table.garbageCollectionMs < now }
        }
        guard !dropped.isEmpty else { return }
        try writer.sync { try store.commit(winners: [], deletions: dropped) }
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
        writer.sync { store.close() }
    }
}
