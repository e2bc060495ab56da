import Identity

/// One node's registry: the CRDT table, its query engine and the node's clock, kept in step.
/// Pure; the node's shell persists accepted records before it publishes them here.
public struct RegistryReplica: Sendable {
    public private(set) var table: RegistryTable
    private var engine = RegistryQueryEngine()
    public private(set) var clock = HybridLogicalClock()

    public init(garbageCollectionMs: UInt64 = RegistryTable.defaultGarbageCollectionMs) {
        table = RegistryTable(garbageCollectionMs: garbageCollectionMs)
    }

    /// Other nodes' timestamps are not folded into this node's clock (Specs/registry.md
    /// "Clocks"): only an owner orders its own versions, and a clock far ahead would otherwise
    /// drag every node's stamps — and the lifetime of every record — along with it.
    @discardableResult
    public mutating func merge(_ record: SignedRecord, nowMs: UInt64) -> MergeOutcome {
        let outcome = table.merge(record, nowMs: nowMs)
        if outcome == .accepted { engine.noteChanged(CollectionOfOne(record.nodeID)) }
        return outcome
    }

    /// Folds the table's recent changes into its shared part (`RegistryTable.compact`).
    public mutating func compact() { table.compact() }

    public func outcome(of record: SignedRecord, nowMs: UInt64) -> MergeOutcome {
        table.outcome(of: record, nowMs: nowMs)
    }

    public mutating func collectGarbage(nowMs: UInt64) -> [SignedRecord] {
        let dropped = table.collectGarbage(nowMs: nowMs)
        engine.noteChanged(dropped.map(\.nodeID))
        return dropped
    }

    /// A timestamp for a new version of `owner`'s record: after the version the table holds
    /// (stored before a restart, or learned back from peers), even if the clock stepped back.
    public mutating func nextTimestamp(nowMs: UInt64, owner: PeerID? = nil) -> HLC {
        if let owner, let own = table[owner], own.hlc > clock.last { clock = HybridLogicalClock(last: own.hlc) }
        return clock.tick(physicalMs: nowMs)
    }

    /// `quality`: the node's QoS score (nil: unmeasured), for `minScore` and the ranking.
    public mutating func getMediaNodes(_ q: NodeQuery, nowMs: UInt64, quality: ((PeerID) -> Double?)? = nil) -> [(record: SignedRecord, distanceKm: Double?)] {
        engine.getMediaNodes(q, table: table, nowMs: nowMs, quality: quality)
    }

    /// The `k` nearest live records (orchestrator candidates; see `RegistryQueryEngine.nearest`).
    public mutating func nearest(_ near: GeoPoint, k: Int, region: String? = nil, nowMs: UInt64) -> [SignedRecord] {
        engine.nearest(near, k: k, region: region, table: table, nowMs: nowMs)
    }

    public mutating func listMediaNodes(after cursor: String?, limit: Int, nowMs: UInt64) -> (page: [SignedRecord], next: String?) {
        engine.listMediaNodes(after: cursor, limit: limit, table: table, nowMs: nowMs)
    }
}
