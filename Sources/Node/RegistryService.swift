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

/// What a caller of `RegistryService.merge` needs before it is answered.
public enum Durability: Sendable {
    /// Answered only once every winner is on disk; a failed commit fails the merge
    /// (`POST /register` and `/deregister`: nothing is acknowledged that is not stored).
    case required
    /// Records from the mesh (gossip, sync) and the node's own refresh: when the store cannot
    /// take them (a full disk), they are still merged in memory, served and forwarded, and
    /// written by the first commit that succeeds (Specs/registry.md "A full disk").
    case deferrable
}

/// A merge with `Durability.required` that was not committed.
public struct RegistryStorageError: Error, CustomStringConvertible {
    /// `storage_full` (no room on the disk, or the database at its size limit) or `storage_error`.
    public let code: String
    /// The metric label: `disk_full`, `map_full`, `io_error`, `other`.
    public let reason: String
    public let detail: String
    public var description: String { "registry commit failed (\(reason)); merges not acknowledged: \(detail)" }
}

/// A merge after `RegistryService.close()` (the node is shutting down).
public struct RegistryClosedError: Error, CustomStringConvertible {
    public var description: String { "the registry is closed: the node is shutting down" }
}

/// The registry's storage as `/health` reports it.
public struct RegistryStorageStatus: Sendable {
    public var degraded: (reason: String, code: String, detail: String, sinceMs: UInt64)?
    /// Records merged in memory that are not on disk yet.
    public var deferredRecords: Int
}

/// The registry's I/O shell: owns the replica (pure core) and the LMDB store.
///
/// Writes go through a group-commit queue: callers verify signatures on their own threads
/// (that is the expensive part), then enqueue; one writer thread takes everything queued,
/// decides winners, commits them in a single durable LMDB transaction, publishes them to the
/// in-memory replica, and only then answers the callers. Under load, one fsync covers many
/// merges; nothing is acknowledged before it is on disk.
///
/// When a commit fails (a full disk), callers that need durability get a
/// `RegistryStorageError`; deferrable merges are applied in memory and their records kept in
/// `deferred` until a commit succeeds (every commit carries them; while the store is
/// degraded, deferrable work retries at most once a second).
public final class RegistryService: Sendable {
    struct Pending {
        var records: [SignedRecord]
        var durability: Durability
        var continuation: CheckedContinuation<[MergeOutcome], any Error>
    }

    struct Queue {
        var pending: [Pending] = []
        var draining = false
    }

    /// State owned by the writer thread (read by `/health` and `/metrics`).
    struct WriterState {
        /// Records merged in memory but not on disk: PeerID → the version on disk (nil: none).
        var deferred: [PeerID: SignedRecord?] = [:]
        var health = StorageHealth()
        var closed = false
    }

    private let replica: Mutex<RegistryReplica>
    private let queue = Mutex(Queue())
    private let writerState = Mutex(WriterState())
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
        logger.info("registry opened", metadata: ["records": "\(loaded.records.count)", "path": "\(store.env.path)"])
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
        let outcome = try await merge([record], durability: .required)[0]
        return .merged(record, outcome)
    }

    /// Merges verified records; returns their outcomes once the winners are committed (or,
    /// for `.deferrable`, merged in memory while the store refuses writes).
    public func merge(_ records: [SignedRecord], durability: Durability = .required) async throws -> [MergeOutcome] {
        guard !records.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            let schedule = queue.withLock { q in
                q.pending.append(Pending(records: records, durability: durability, continuation: continuation))
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

    /// The merge decisions for `pendings` against `table`, in order: each record against the
    /// current winner for its node.
    private static func decide(_ pendings: some Sequence<Pending>, against table: RegistryTable, nowMs now: UInt64)
        -> (winners: [PeerID: SignedRecord], outcomes: [[MergeOutcome]]) {
        var winners: [PeerID: SignedRecord] = [:]
        var outcomes: [[MergeOutcome]] = []
        for p in pendings {
            outcomes.append(p.records.map { r in
                let o = RegistryTable.outcome(of: r, against: winners[r.nodeID] ?? table[r.nodeID], nowMs: now,
                                              garbageCollectionMs: table.garbageCollectionMs)
                if o == .accepted { winners[r.nodeID] = r }
                return o
            })
        }
        return (winners, outcomes)
    }

    private func process(_ batch: [Pending]) {
        let now = clock()
        let (closed, deferred, attemptAllowed) = writerState.withLock { ($0.closed, $0.deferred, $0.health.shouldAttempt(nowMs: now)) }
        if closed {
            for p in batch { p.continuation.resume(throwing: RegistryClosedError()) }
            return
        }
        let snapshot = replica.withLock { $0.table }
        let (winners, outcomes) = Self.decide(batch, against: snapshot, nowMs: now)
        let durable = batch.contains { $0.durability == .required }
        let failure: (any Error)?
        if winners.isEmpty && deferred.isEmpty {
            failure = nil
        } else if durable || attemptAllowed {
            // Every commit also carries the deferred records, and replaces what is on disk
            // (which for a deferred node is not the version in memory).
            var writes = winners.map { id, new in (new: new, previous: Self.onDisk(id, deferred: deferred, table: snapshot)) }
            writes += Self.deferredWrites(deferred, table: snapshot, except: winners)
            failure = commit(writes, nowMs: now)
        } else {
            // Degraded, and the last attempt was less than a second ago: keep these in memory
            // without touching the disk (the retry writes them).
            failure = StorageHealth.RetryNotDue()
        }
        guard let failure else {
            writerState.withLock { $0.deferred.removeAll() }
            if !winners.isEmpty {
                replica.withLock { rep in
                    for w in winners.values { rep.merge(w, nowMs: now) }
                }
            }
            for (p, o) in zip(batch, outcomes) {
                o.forEach(metrics.recordMerge)
                p.continuation.resume(returning: o)
            }
            return
        }
        // Durable callers learn that nothing was stored; deferrable merges are decided again
        // without the durable ones and applied in memory only.
        if durable {
            let error = storageError(failure)
            for p in batch where p.durability == .required { p.continuation.resume(throwing: error) }
        }
        let deferrable = batch.filter { $0.durability == .deferrable }
        let (kept, keptOutcomes) = Self.decide(deferrable, against: snapshot, nowMs: now)
        if !kept.isEmpty {
            writerState.withLock { s in
                for id in kept.keys where s.deferred.index(forKey: id) == nil { s.deferred[id] = .some(snapshot[id]) }
            }
            replica.withLock { rep in
                for w in kept.values { rep.merge(w, nowMs: now) }
            }
        }
        for (p, o) in zip(deferrable, keptOutcomes) {
            o.forEach(metrics.recordMerge)
            p.continuation.resume(returning: o)
        }
    }

    /// The deferred records as writes: the version in memory replaces the one on disk.
    private static func deferredWrites(_ deferred: [PeerID: SignedRecord?], table: RegistryTable, except skipped: [PeerID: SignedRecord] = [:])
        -> [(new: SignedRecord, previous: SignedRecord?)] {
        deferred.compactMap { id, onDisk in
            skipped[id] == nil ? table[id].map { (new: $0, previous: onDisk) } : nil
        }
    }

    /// The version of a node's record on disk: the deferred entry's, else the table's.
    private static func onDisk(_ id: PeerID, deferred: [PeerID: SignedRecord?], table: RegistryTable) -> SignedRecord? {
        if let entry = deferred.index(forKey: id) { return deferred[entry].value }
        return table[id]
    }

    private func storageError(_ failure: any Error) -> RegistryStorageError {
        let reason = StorageHealth.Reason(failure)
        return RegistryStorageError(code: reason.code, reason: reason.rawValue, detail: "\(failure)")
    }

    /// Commits on the writer thread, keeping the storage health, the failure metric and the
    /// log up to date. Returns the error if the commit failed.
    private func commit(_ writes: [(new: SignedRecord, previous: SignedRecord?)], deletions: [SignedRecord] = [], nowMs now: UInt64) -> (any Error)? {
        do {
            try store.commit(winners: writes, deletions: deletions)
        } catch {
            let reason = StorageHealth.Reason(error)
            metrics.counter("drtc_registry_commit_failures_total", "reason", reason.rawValue).increment()
            let (report, deferred) = writerState.withLock { s in
                (s.health.commitFailed(reason, detail: "\(error)", nowMs: now), s.deferred.count)
            }
            log(report, records: writes.count + deletions.count, deferred: deferred)
            return error
        }
        let report = writerState.withLock { $0.health.commitSucceeded() }
        log(report, records: writes.count + deletions.count, deferred: 0)
        return nil
    }

    private func log(_ report: StorageHealth.Report?, records: Int, deferred: Int) {
        switch report {
        case nil:
            break
        case .failing(let reason, let detail, let failures):
            logger.error("registry commit failed; merges not acknowledged. Until a commit succeeds, /register answers \(reason.code == "storage_full" ? 507 : 503) and records from the mesh are kept in memory only", metadata: [
                "reason": "\(reason.rawValue)", "error": "\(detail)", "records": "\(records)", "failedCommits": "\(failures)",
                "path": "\(store.env.path)"])
        case .stillFailing(let reason, let detail, let failures, let since):
            logger.warning("registry commits still failing", metadata: [
                "reason": "\(reason.rawValue)", "error": "\(detail)", "failedCommits": "\(failures)",
                "degradedForSeconds": "\((clock() &- since) / 1000)", "deferredRecords": "\(deferred)"])
        case .recovered(let failed, let since):
            logger.notice("registry storage recovered: commits succeed again", metadata: [
                "failedCommits": "\(failed)", "degradedForSeconds": "\((clock() &- since) / 1000)", "recordsWritten": "\(records)"])
        }
    }

    /// Writes the deferred records if the store is due for a retry (called every second by
    /// the node's lifecycle, so a node recovers after space is freed even when nothing
    /// else is written).
    public func retryDeferredWrites() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            writer.async {
                self.flushDeferred(force: false)
                done.resume()
            }
        }
    }

    /// On the writer thread.
    private func flushDeferred(force: Bool) {
        let now = clock()
        let (deferred, due, closed) = writerState.withLock { ($0.deferred, $0.health.shouldAttempt(nowMs: now), $0.closed) }
        guard !closed, !deferred.isEmpty, force || due else { return }
        let snapshot = replica.withLock { $0.table }
        if commit(Self.deferredWrites(deferred, table: snapshot), nowMs: now) == nil {
            writerState.withLock { $0.deferred.removeAll() }
        }
    }

    /// How the store is doing, for `/health`.
    public func storageStatus() -> RegistryStorageStatus {
        writerState.withLock { s in
            RegistryStorageStatus(
                degraded: s.health.degraded.map { ($0.reason.rawValue, $0.reason.code, $0.detail, $0.sinceMs) },
                deferredRecords: s.deferred.count)
        }
    }

    /// Drops records past the GC horizon from memory and disk. If the store refuses the
    /// deletions they stay in both, for the next collection.
    public func collectGarbage() {
        writer.sync {
            let now = clock()
            let dropped = replica.withLock { rep in
                rep.table.records.filter { $0.isGarbage(nowMs: now, horizonMs: rep.table.garbageCollectionMs) }
            }
            guard !dropped.isEmpty else { return }
            let snapshot = replica.withLock { $0.table }
            let deferred = writerState.withLock { $0.closed ? nil : $0.deferred }
            guard let deferred else { return }
            // What to delete is what is on disk, which for a deferred node is an older version;
            // the other deferred records ride along.
            let onDisk = dropped.compactMap { Self.onDisk($0.nodeID, deferred: deferred, table: snapshot) }
            let droppedIDs = Dictionary(dropped.map { ($0.nodeID, $0) }, uniquingKeysWith: { a, _ in a })
            let writes = Self.deferredWrites(deferred, table: snapshot, except: droppedIDs)
            guard commit(writes, deletions: onDisk, nowMs: now) == nil else { return }
            writerState.withLock { $0.deferred.removeAll() }
            _ = replica.withLock { $0.collectGarbage(nowMs: now) }
            logger.info("registry garbage-collected old entries", metadata: ["count": "\(dropped.count)"])
        }
    }

    /// Signs and merges a new version of this node's own record, with a fresh HLC. The merge
    /// is deferrable: on a full disk the record is still current in memory and gossiped.
    @discardableResult
    public func publishOwn(_ build: (HLC) -> MediaNodeRecord, key: Ed25519KeyPair) async throws -> SignedRecord {
        let hlc = replica.withLock { $0.nextTimestamp(nowMs: clock(), owner: key.peerID) }
        let signed = try build(hlc).signed(with: key)
        _ = try await merge([signed], durability: .deferrable)
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
        let (degraded, deferred) = writerState.withLock { ($0.health.isDegraded, $0.deferred.count) }
        metrics.storageDegraded.set(degraded ? 1 : 0)
        metrics.deferredRecords.set(deferred)
    }

    /// Waits for queued merges, tries once more to write deferred records, then closes LMDB.
    /// Later merges throw `RegistryClosedError`. Returns how many records merged in memory
    /// could not be written.
    @discardableResult
    public func close() -> Int {
        writer.sync {
            guard !writerState.withLock({ $0.closed }) else { return 0 }
            flushDeferred(force: true)
            let unwritten = writerState.withLock { s in
                s.closed = true
                return s.deferred.count
            }
            if unwritten > 0 {
                logger.error("registry closed with records that were merged in memory but could not be written (the store refused them); peers send them again by registry sync after the next start", metadata: [
                    "records": "\(unwritten)"])
            }
            store.close()
            return unwritten
        }
    }
}
