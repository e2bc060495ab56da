import Identity

/// What a merge did.
public enum MergeOutcome: Hashable, Sendable {
    /// The record won and replaced (or created) the node's entry.
    case accepted
    /// The table already holds this exact record.
    case duplicate
    /// The table holds a newer record for this node (LWW lost).
    case stale
    /// Older than the garbage-collection horizon: accepting it would resurrect a collected entry.
    case expired

    public var label: String {
        switch self {
        case .accepted: return "accepted"
        case .duplicate: return "duplicate"
        case .stale: return "stale"
        case .expired: return "expired"
        }
    }
}

/// The CRDT: one last-writer-wins register per node, ordered by (HLC, signature).
///
/// Pure state machine: callers pass verified records and the current time; the table never
/// reads a clock or touches storage. Merge is commutative, associative and idempotent, so any
/// two replicas that have seen the same set of records hold byte-identical tables.
public struct RegistryTable: Sendable {
    /// The entries as of the last compaction. Copies of a table share it (copy-on-write)
    /// and never write to it, so N replicas that start from one table and each merge a few
    /// records hold one big dictionary plus N small ones — the simulator's 10,000 peers
    /// (Specs/simulation.md "Memory") — instead of N full copies.
    private var base: [PeerID: SignedRecord] = [:]
    /// Changes since the last compaction: a record, or nil for an entry removed from `base`.
    private var changes: [PeerID: SignedRecord?] = [:]
    /// Names `base`: copies share it until one of them compacts (`Layers`).
    private var baseToken = BaseToken()
    public private(set) var count = 0
    /// Records older than this (by their own timestamp) are collected and no longer accepted.
    public var garbageCollectionMs: UInt64
    /// Bumped on every change; lets derived indexes know when to refresh.
    public private(set) var generation: UInt64 = 0

    public static let defaultGarbageCollectionMs: UInt64 = 24 * 3600 * 1000

    public init(garbageCollectionMs: UInt64 = defaultGarbageCollectionMs) {
        self.garbageCollectionMs = garbageCollectionMs
    }

    public subscript(id: PeerID) -> SignedRecord? {
        if let change = changes[id] { return change }
        return base[id]
    }

    /// Every record, in no particular order.
    public var records: Records { Records(base: base, changes: changes, count: count) }

    public struct Records: Sequence, Sendable {
        let base: [PeerID: SignedRecord]
        let changes: [PeerID: SignedRecord?]
        let count: Int

        public var underestimatedCount: Int { count }

        public func makeIterator() -> Iterator {
            Iterator(base: base.makeIterator(), changes: changes, pending: changes.makeIterator())
        }

        public struct Iterator: IteratorProtocol {
            var base: Dictionary<PeerID, SignedRecord>.Iterator
            let changes: [PeerID: SignedRecord?]
            var pending: Dictionary<PeerID, SignedRecord?>.Iterator

            public mutating func next() -> SignedRecord? {
                while let (id, record) = base.next() {
                    if changes.isEmpty || changes[id] == nil { return record }
                }
                while let (_, change) = pending.next() {
                    if let record = change { return record }
                }
                return nil
            }
        }
    }

    private mutating func set(_ id: PeerID, _ record: SignedRecord?) {
        let had = self[id] != nil
        if record == nil && base[id] == nil {
            changes[id] = nil
        } else {
            changes[id] = .some(record)
        }
        count += (record != nil ? 1 : 0) - (had ? 1 : 0)
        // Lookups stay two hash probes; folding costs O(count) once per count changes.
        if changes.count > max(64, base.count) { compact() }
    }

    /// Folds the changes into the shared entries. Call before handing copies of a freshly
    /// built table to many owners, so that they share all of it.
    public mutating func compact() {
        guard !changes.isEmpty else { return }
        var folded = base
        for (id, change) in changes { folded[id] = change }
        base = folded
        changes = [:]
        baseToken = BaseToken()
    }

    public final class BaseToken: Sendable {}

    /// The table as its shared entries and this copy's changes since: derived indexes (the
    /// simulator's sync snapshots) are built once for the shared part and patched per copy.
    public struct Layers {
        /// The same object for every copy that shares `base`.
        public let token: BaseToken
        public let base: Records
        /// Sync IDs of shared records this copy replaced or removed.
        public let removed: [SyncID]
        /// Records this copy holds that are not shared.
        public let added: [SignedRecord]
    }

    public var layers: Layers {
        var removed: [SyncID] = [], added: [SignedRecord] = []
        for (id, change) in changes {
            let old = base[id]
            if let old, let change, old === change { continue }
            if let old { removed.append(old.syncID) }
            if let change { added.append(change) }
        }
        return Layers(token: baseToken, base: Records(base: base, changes: [:], count: base.count), removed: removed, added: added)
    }

    /// What merging `record` would do, without doing it.
    public func outcome(of record: SignedRecord, nowMs: UInt64) -> MergeOutcome {
        Self.outcome(of: record, against: self[record.nodeID], nowMs: nowMs, garbageCollectionMs: garbageCollectionMs)
    }

    /// The LWW decision for `record` against the entry `current` (nil: none).
    public static func outcome(of record: SignedRecord, against current: SignedRecord?, nowMs: UInt64, garbageCollectionMs: UInt64) -> MergeOutcome {
        if record.isGarbage(nowMs: nowMs, horizonMs: garbageCollectionMs) { return .expired }
        guard let current else { return .accepted }
        if current == record { return .duplicate }
        return record.supersedes(current) ? .accepted : .stale
    }

    @discardableResult
    public mutating func merge(_ record: SignedRecord, nowMs: UInt64) -> MergeOutcome {
        let result = outcome(of: record, nowMs: nowMs)
        if result == .accepted {
            set(record.nodeID, record)
            generation &+= 1
        }
        return result
    }

    /// Drops entries past the GC horizon (`SignedRecord.isGarbage`); returns what was dropped.
    public mutating func collectGarbage(nowMs: UInt64) -> [SignedRecord] {
        let dropped = records.filter { $0.isGarbage(nowMs: nowMs, horizonMs: garbageCollectionMs) }
        for record in dropped { set(record.nodeID, nil) }
        if !dropped.isEmpty { generation &+= 1 }
        return dropped
    }

    public func liveRecords(nowMs: UInt64) -> [SignedRecord] {
        records.filter { $0.isLive(nowMs: nowMs) }
    }

    public func liveCount(nowMs: UInt64) -> Int {
        records.reduce(0) { $0 + ($1.isLive(nowMs: nowMs) ? 1 : 0) }
    }

    /// SHA-256 over the live entries' (nodeId, HLC) pairs, sorted by nodeId. Equal digests
    /// mean equal live tables (for correct owners, who never sign two bodies with one HLC).
    ///
    /// Each pair is encoded as: u8 length ‖ PeerID multihash ‖ u64 BE wall ms ‖ u32 BE logical.
    public func liveDigest(nowMs: UInt64) -> [UInt8] {
        var hasher = SHA256.Hasher()
        for record in liveRecords(nowMs: nowMs).sorted(by: { $0.nodeID < $1.nodeID }) {
            var piece: [UInt8] = [UInt8(truncatingIfNeeded: record.nodeID.bytes.count)]
            piece += record.nodeID.bytes
            withUnsafeBytes(of: record.hlc.wallMs.bigEndian) { piece += $0 }
            withUnsafeBytes(of: record.hlc.logical.bigEndian) { piece += $0 }
            hasher.update(piece)
        }
        return hasher.finalize()
    }

    /// The whole table (live or not), sorted by nodeId, as concatenated length-prefixed
    /// `SignedMediaNodeRecord`s. Replicas that saw the same records produce equal bytes.
    public func canonicalBytes() -> [UInt8] {
        var out: [UInt8] = []
        for record in records.sorted(by: { $0.nodeID < $1.nodeID }) {
            let encoded = record.encoded
            ProtoVarint.append(UInt64(encoded.count), to: &out)
            out += encoded
        }
        return out
    }
}
