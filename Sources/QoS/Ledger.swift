import Identity
import Registry

/// The replicated set of QoS bundles (Specs/qos.md "Replication"): what a node stores, syncs
/// and aggregates. Pure; its content, and so `digest` and every score derived from it, depends
/// only on which bundles were inserted, never on their order.
///
/// At most two bundles are kept per (epoch, challenger): a second, different one is the
/// evidence of equivocation, and beyond two only the two with the smallest item IDs are kept
/// ("keep the two smallest" is a join-semilattice, so replicas converge whatever order they
/// learn of a flood of equivocations in, and a liar cannot grow the set without bound).
public struct QoSLedger: Sendable {
    public struct Key: Hashable, Sendable, Comparable {
        public var epoch: UInt64
        public var challenger: NodeKey

        public init(epoch: UInt64, challenger: NodeKey) {
            self.epoch = epoch
            self.challenger = challenger
        }

        public static func < (a: Key, b: Key) -> Bool { a.epoch != b.epoch ? a.epoch < b.epoch : a.challenger < b.challenger }
    }

    public enum InsertOutcome: Hashable, Sendable {
        /// New; `evicted` is a bundle it displaced (the third of an equivocation).
        case added(evicted: SyncID?)
        /// Already held.
        case duplicate
        /// A second (or better) bundle for a (epoch, challenger) already held: kept as evidence.
        case equivocation(evicted: SyncID?)
        /// Beyond the two equivocation bundles kept: dropped.
        case discarded
    }

    public private(set) var bundles: [SyncID: SignedQoSBundle] = [:]
    public private(set) var byKey: [Key: [SyncID]] = [:]
    public private(set) var byEpoch: [UInt64: Set<Key>] = [:]
    /// Bumped by every change; caches key their results on it.
    public private(set) var generation: UInt64 = 0

    public init() {}

    public var count: Int { bundles.count }
    public subscript(id: SyncID) -> SignedQoSBundle? { bundles[id] }
    public var epochs: [UInt64] { byEpoch.keys.sorted() }

    public func bundles(epoch: UInt64) -> [SignedQoSBundle] {
        (byEpoch[epoch] ?? []).sorted().flatMap { byKey[$0, default: []].compactMap { bundles[$0] } }
    }

    public func bundles(epoch: UInt64, challenger: NodeKey) -> [SignedQoSBundle] {
        byKey[Key(epoch: epoch, challenger: challenger), default: []].compactMap { bundles[$0] }
    }

    /// What inserting `b` would do, without doing it (gossip validation).
    public func outcome(of b: SignedQoSBundle) -> InsertOutcome {
        Self.outcome(of: b.syncID, held: held(Key(epoch: b.epoch, challenger: b.challenger)))
    }

    /// The item IDs held for one (epoch, challenger).
    public func held(_ key: Key) -> [SyncID] { byKey[key] ?? [] }

    /// The retention rule on its own: what adding `id` to the IDs `held` for its (epoch,
    /// challenger) does. Shared by the set and by writers that decide a batch before
    /// committing it (`Node/QoSService`).
    public static func outcome(of id: SyncID, held: [SyncID]) -> InsertOutcome {
        if held.contains(id) { return .duplicate }
        if held.isEmpty { return .added(evicted: nil) }
        if held.count < 2 { return .equivocation(evicted: nil) }
        let largest = held.max()!
        return id < largest ? .equivocation(evicted: largest) : .discarded
    }

    @discardableResult
    public mutating func insert(_ b: SignedQoSBundle) -> InsertOutcome {
        let result = outcome(of: b)
        let key = Key(epoch: b.epoch, challenger: b.challenger)
        switch result {
        case .duplicate, .discarded:
            return result
        case .added(let evicted), .equivocation(let evicted):
            if let evicted { remove(evicted) }
            bundles[b.syncID] = b
            byKey[key, default: []].append(b.syncID)
            byKey[key]!.sort()
            byEpoch[b.epoch, default: []].insert(key)
            generation &+= 1
            return result
        }
    }

    private mutating func remove(_ id: SyncID) {
        guard let b = bundles.removeValue(forKey: id) else { return }
        let key = Key(epoch: b.epoch, challenger: b.challenger)
        byKey[key]?.removeAll { $0 == id }
        if byKey[key]?.isEmpty == true {
            byKey[key] = nil
            byEpoch[b.epoch]?.remove(key)
            if byEpoch[b.epoch]?.isEmpty == true { byEpoch[b.epoch] = nil }
        }
        generation &+= 1
    }

    /// Drops every epoch before `oldestKept`; returns the bundles dropped.
    @discardableResult
    public mutating func collectGarbage(oldestKept: UInt64) -> [SignedQoSBundle] {
        let old = byEpoch.keys.filter { $0 < oldestKept }
        var dropped: [SignedQoSBundle] = []
        for epoch in old {
            for key in byEpoch[epoch] ?? [] {
                for id in byKey[key] ?? [] { if let b = bundles[id] { dropped.append(b) } }
            }
        }
        for b in dropped { remove(b.syncID) }
        return dropped
    }

    /// `/health.qosDigest`: SHA-256 over the sorted item IDs (16 bytes each). Equal digests,
    /// equal sets.
    public var digest: [UInt8] {
        var h = SHA256.Hasher()
        for id in bundles.keys.sorted() { h.update(id.bytes) }
        return h.finalize()
    }

    /// The items for set reconciliation (`/drtc/qos-sync/1.0.0`).
    public var syncItems: [SyncItem] { bundles.values.map { SyncItem(id: $0.syncID, encoded: $0.encoded) } }
}
