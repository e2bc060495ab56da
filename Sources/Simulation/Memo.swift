#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Gossipsub
import Identity
import Registry

/// A mutex for the memos that partitions running on separate threads share.
final class SimLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(mutex, nil) }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// Verification memo shared by all simulated peers (Specs/simulation.md "Signatures").
///
/// Ed25519 verification is a pure function of the bytes. In production every node verifies
/// every message it receives once; in the simulator 10,000 peers receive the same bytes, so
/// the first verification's result is remembered and reused for byte-identical input. A
/// message or record that differs in any byte (a forgery reusing a message ID, a tampered
/// record) misses the memo and is verified for real. Everything else the routers do —
/// decoding every frame, the seen cache, validation order, scoring — runs per peer.
///
/// Partitions share it under a lock. Its counters count distinct inputs, not which thread
/// got there first, so they do not depend on the partition count.
final class VerificationMemo: @unchecked Sendable {
    private let lock = SimLock()
    /// Every distinct message seen under an ID (a forgery reusing an ID is a second entry).
    private var messages: [MessageID: [(GossipMessage, StrictSign.Failure?)]] = [:]
    private var records: [RecordBytes: Result<SignedRecord, RecordRejection>] = [:]
    private var checks = 0
    private var verifications = 0
    private var recordCheckCount = 0
    private var recordVerificationCount = 0

    var signatureChecks: Int { lock.locked { checks } }
    var signatureVerifications: Int { lock.locked { verifications } }
    var recordChecks: Int { lock.locked { recordCheckCount } }
    var recordVerifications: Int { lock.locked { recordVerificationCount } }

    func checkSignature(_ message: GossipMessage) -> StrictSign.Failure? {
        let id = StrictSign.messageID(message)
        return lock.locked {
            checks += 1
            if let known = messages[id], let hit = known.first(where: { $0.0 == message }) { return hit.1 }
            verifications += 1
            let result = StrictSign.verify(message)
            messages[id, default: []].append((message, result))
            return result
        }
    }

    func verifyRecord(_ bytes: [UInt8], nowMs: UInt64) throws(RecordRejection) -> SignedRecord {
        let key = RecordBytes(bytes)
        let result: Result<SignedRecord, RecordRejection> = lock.locked {
            recordCheckCount += 1
            if let known = records[key] { return known }
            let verified = Result { () throws(RecordRejection) -> SignedRecord in try SignedRecord.verify(encoded: bytes, nowMs: nowMs) }
            // A timestamp too far ahead is judged again later (time passes); anything else is a
            // property of the bytes. Only what is remembered counts as a verification.
            if case .failure(.futureTimestamp) = verified { return verified }
            recordVerificationCount += 1
            records[key] = verified
            return verified
        }
        switch result {
        case .success(let record):
            // The clock-skew check depends on the time, so it is repeated.
            guard record.hlc.wallMs <= nowMs &+ SignedRecord.maxFutureSkewMs else { throw .futureTimestamp }
            return record
        case .failure(let rejection): throw rejection
        }
    }

    /// A record signed inside the simulation: later receivers of its bytes share this instance.
    func remember(_ record: SignedRecord) {
        let key = RecordBytes(record.encoded)
        lock.locked { records[key] = .success(record) }
    }
}

/// A record's encoded bytes as a memo key, hashed once and in bulk (outside the lock): an
/// `[UInt8]` key is fed to the hasher a byte at a time, on every check of every peer.
struct RecordBytes: Hashable {
    let bytes: [UInt8]
    let fingerprint: Int

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        fingerprint = KeyedHash.of(bytes)
    }

    static func == (a: RecordBytes, b: RecordBytes) -> Bool { a.fingerprint == b.fingerprint && a.bytes == b.bytes }
    func hash(into hasher: inout Hasher) { hasher.combine(fingerprint) }
    func _rawHashValue(seed: Int) -> Int { KeyedHash.tableHash(fingerprint, seed: seed) }
}

/// Set fingerprint of a replica: the sum of its records' sync item IDs (mod 2^128) and their
/// count — the quantity range-based reconciliation compares (Specs/registry-sync.md). Equal
/// fingerprints mean equal record sets; the simulator keeps it per peer incrementally.
struct TableFingerprint: Hashable, Comparable {
    var sum = SyncID.zero
    var count = 0

    mutating func add(_ id: SyncID) {
        sum = sum &+ id
        count += 1
    }

    mutating func remove(_ id: SyncID) {
        sum = sum &- id
        count -= 1
    }

    static func < (a: TableFingerprint, b: TableFingerprint) -> Bool {
        a.count != b.count ? a.count < b.count : a.sum < b.sum
    }
}

/// Sync snapshots by table fingerprint. Building one sorts the whole table; most peers hold
/// the same table most of the time, so the sorted view is built once per distinct table.
///
/// Partitions share it under a lock. Eviction happens between windows only (`endWindow`), by
/// the window a snapshot was last used in, so which snapshots exist during a window — and the
/// `built` count — does not depend on the order in which threads asked for them.
final class SnapshotMemo: @unchecked Sendable {
    private let lock = SimLock()
    private var snapshots: [TableFingerprint: (snapshot: SyncSnapshot, lastWindow: UInt64)] = [:]
    /// Snapshots of tables' shared parts (`RegistryTable.Layers`), by the part's token (kept,
    /// so that its identifier is not reused): the snapshots above overlay them.
    private var bases: [ObjectIdentifier: (token: RegistryTable.BaseToken, snapshot: SyncSnapshot, lastWindow: UInt64)] = [:]
    private let baseCapacity = 8
    private var window: UInt64 = 0
    private let capacity = 48
    private var builtCount = 0

    var built: Int { lock.locked { builtCount } }

    func snapshot(_ fingerprint: TableFingerprint, table: RegistryTable) -> SyncSnapshot {
        lock.locked {
            if let s = snapshots[fingerprint] {
                snapshots[fingerprint]!.lastWindow = window
                return s.snapshot
            }
            builtCount += 1
            // The shared part once, then this table's own changes over it: O(changes).
            let layers = table.layers
            let key = ObjectIdentifier(layers.token)
            let base: SyncSnapshot
            if let known = bases[key] {
                base = known.snapshot
                bases[key]!.lastWindow = window
            } else {
                base = SyncSnapshot(records: layers.base)
                bases[key] = (layers.token, base, window)
            }
            let s = SyncSnapshot(overlaying: base, removing: layers.removed,
                                 adding: layers.added.lazy.map { SyncItem(id: $0.syncID, encoded: $0.encoded) })
            snapshots[fingerprint] = (s, window)
            return s
        }
    }

    /// Called between windows: keeps the `capacity` most recently used snapshots.
    func endWindow() {
        lock.locked {
            window += 1
            if bases.count > baseCapacity {
                let evict = bases.sorted { $0.value.lastWindow < $1.value.lastWindow }.prefix(bases.count - baseCapacity)
                for (key, _) in evict { bases[key] = nil }
            }
            guard snapshots.count > capacity else { return }
            let evict = snapshots.sorted { a, b in
                a.value.lastWindow != b.value.lastWindow ? a.value.lastWindow < b.value.lastWindow : a.key < b.key
            }.prefix(snapshots.count - capacity)
            for (key, _) in evict { snapshots[key] = nil }
        }
    }
}
