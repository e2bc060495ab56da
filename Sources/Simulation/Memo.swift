import Gossipsub
import Identity
import Registry

/// Verification memo shared by all simulated peers (Specs/simulation.md "Signatures").
///
/// Ed25519 verification is a pure function of the bytes. In production every node verifies
/// every message it receives once; in the simulator 10,000 peers receive the same bytes, so
/// the first verification's result is remembered and reused for byte-identical input. A
/// message or record that differs in any byte (a forgery reusing a message ID, a tampered
/// record) misses the memo and is verified for real. Everything else the routers do —
/// decoding every frame, the seen cache, validation order, scoring — runs per peer.
final class VerificationMemo {
    private var messages: [MessageID: (GossipMessage, StrictSign.Failure?)] = [:]
    private var records: [[UInt8]: Result<SignedRecord, RecordRejection>] = [:]
    private(set) var signatureChecks = 0
    private(set) var signatureVerifications = 0
    private(set) var recordChecks = 0
    private(set) var recordVerifications = 0

    func checkSignature(_ message: GossipMessage) -> StrictSign.Failure? {
        signatureChecks += 1
        let id = StrictSign.messageID(message)
        if let (known, result) = messages[id], known == message { return result }
        signatureVerifications += 1
        let result = StrictSign.verify(message)
        messages[id] = (message, result)
        return result
    }

    func verifyRecord(_ bytes: [UInt8], nowMs: UInt64) throws(RecordRejection) -> SignedRecord {
        recordChecks += 1
        if let known = records[bytes] {
            switch known {
            case .success(let record):
                // The clock-skew check depends on the time, so it is repeated.
                guard record.hlc.wallMs <= nowMs &+ SignedRecord.maxFutureSkewMs else { throw .futureTimestamp }
                return record
            case .failure(let rejection): throw rejection
            }
        }
        recordVerifications += 1
        do {
            let record = try SignedRecord.verify(encoded: bytes, nowMs: nowMs)
            records[bytes] = .success(record)
            return record
        } catch {
            if error != .futureTimestamp { records[bytes] = .failure(error) }
            throw error
        }
    }

    /// A record signed inside the simulation: later receivers of its bytes share this instance.
    func remember(_ record: SignedRecord) { records[record.encoded] = .success(record) }

    /// Drops memo entries for messages older than the seen cache (they can no longer be
    /// accepted by any router) to bound memory in long runs.
    func trim(keepingMessages limit: Int) {
        if messages.count > limit { messages.removeAll(keepingCapacity: true) }
    }
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
final class SnapshotMemo {
    private var snapshots: [TableFingerprint: SyncSnapshot] = [:]
    private var order: [TableFingerprint] = []
    private let capacity = 48
    private(set) var built = 0

    func snapshot(_ fingerprint: TableFingerprint, table: RegistryTable) -> SyncSnapshot {
        if let s = snapshots[fingerprint] { return s }
        built += 1
        let s = SyncSnapshot(records: table.records)
        snapshots[fingerprint] = s
        order.append(fingerprint)
        if order.count > capacity { snapshots[order.removeFirst()] = nil }
        return s
    }
}
