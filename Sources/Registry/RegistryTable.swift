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
    public private(set) var entries: [PeerID: SignedRecord] = [:]
    /// Records older than this (by their own timestamp) are collected and no longer accepted.
    public var garbageCollectionMs: UInt64
    /// Bumped on every change; lets derived indexes know when to refresh.
    public private(set) var generation: UInt64 = 0

    public static let defaultGarbageCollectionMs: UInt64 = 24 * 3600 * 1000

    public init(garbageCollectionMs: UInt64 = defaultGarbageCollectionMs) {
        self.garbageCollectionMs = garbageCollectionMs
    }

    public var count: Int { entries.count }

    public subscript(id: PeerID) -> SignedRecord? { entries[id] }

    /// What merging `record` would do, without doing it.
    public func outcome(of record: SignedRecord, nowMs: UInt64) -> MergeOutcome {
        Self.outcome(of: record, against: entries[record.nodeID], nowMs: nowMs, garbageCollectionMs: garbageCollectionMs)
    }

    /// The LWW decision for `record` against the entry `current` (nil: none).
    public static func outcome(of record: SignedRecord, against current: SignedRecord?, nowMs: UInt64, garbageCollectionMs: UInt64) -> MergeOutcome {
        if record.hlc.wallMs &+ garbageCollectionMs < nowMs { return .expired }
        guard let current else { return .accepted }
        if current == record { return .duplicate }
        return record.supersedes(current) ? .accepted : .stale
    }

    @discardableResult
    public mutating func merge(_ record: SignedRecord, nowMs: UInt64) -> MergeOutcome {
        let result = outcome(of: record, nowMs: nowMs)
        if result == .accepted {
            entries[record.nodeID] = record
            generation &+= 1
        }
        return result
    }

    /// Drops entries whose timestamp is older than the GC horizon; returns what was dropped.
    public mutating func collectGarbage(nowMs: UInt64) -> [SignedRecord] {
        var dropped: [SignedRecord] = []
        for (id, record) in entries where record.hlc.wallMs &+ garbageCollectionMs < nowMs {
            dropped.append(record)
            entries[id] = nil
        }
        if !dropped.isEmpty { generation &+= 1 }
        return dropped
    }

    public func liveRecords(nowMs: UInt64) -> [SignedRecord] {
        entries.values.filter { $0.isLive(nowMs: nowMs) }
    }

    public func liveCount(nowMs: UInt64) -> Int {
        entries.values.reduce(0) { $0 + ($1.isLive(nowMs: nowMs) ? 1 : 0) }
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
        for record in entries.values.sorted(by: { $0.nodeID < $1.nodeID }) {
            let encoded = record.encoded
            ProtoVarint.append(UInt64(encoded.count), to: &out)
            out += encoded
        }
        return out
    }
}
