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

    @discardableResult
    public mutating func merge(_ record: SignedRecord, nowMs: UInt64) -> MergeOutcome {
        let outcome = table.merge(record, nowMs: nowMs)
        if outcome == .accepted {
            engine.noteChanged(CollectionOfOne(record.nodeID))
            clock.observe(record.hlc, physicalMs: nowMs)
        }
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

    /// A timestamp for a new version of this node's own record.
    public mutating func nextTimestamp(nowMs: UInt64) -> HLC {
        clock.tick(physicalMs: nowMs)
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
