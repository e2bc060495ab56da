import Identity
import Registry

/// The replicated set of countersigned session receipts (Specs/rewards.md "Data supplied"):
/// content-addressed, so replicas holding the same receipts are equal whatever the order they
/// learned them in. Pure; the node keeps it in LMDB (`Node/ReceiptService`).
public struct ReceiptSet: Sendable {
    private var receipts: [SyncID: SignedSessionReceipt] = [:]
    private var byEpoch: [UInt64: Set<SyncID>] = [:]
    /// Bumped by every change (caches key on it).
    public private(set) var generation: UInt64 = 0

    public init() {}

    public var count: Int { receipts.count }
    public var epochs: [UInt64] { byEpoch.keys.sorted() }
    public func contains(_ id: SyncID) -> Bool { receipts[id] != nil }

    /// Adds a verified, countersigned receipt; false when held already.
    @discardableResult
    public mutating func insert(_ r: SignedSessionReceipt) -> Bool {
        precondition(r.isCountersigned, "only countersigned receipts are replicated")
        guard receipts[r.syncID] == nil else { return false }
        receipts[r.syncID] = r
        byEpoch[r.epoch, default: []].insert(r.syncID)
        generation &+= 1
        return true
    }

    /// The receipts of `epoch` (all epochs when nil), of `node` when given, in a fixed order
    /// (start, then node key, then item ID).
    public func receipts(epoch: UInt64? = nil, node: PeerID? = nil) -> [SignedSessionReceipt] {
        let ids: [SyncID] = epoch.map { Array(byEpoch[$0] ?? []) } ?? Array(receipts.keys)
        let key = node.flatMap { $0.inlinedPublicKey?.data }
        return ids.compactMap { receipts[$0] }.filter { key == nil || $0.receipt.node == key! }.sorted { a, b in
            if a.receipt.startMs != b.receipt.startMs { return a.receipt.startMs < b.receipt.startMs }
            if a.receipt.node != b.receipt.node { return a.receipt.node.lexicographicallyPrecedes(b.receipt.node) }
            return a.syncID < b.syncID
        }
    }

    /// Drops every epoch before `oldestKept`; returns the receipts dropped.
    @discardableResult
    public mutating func collectGarbage(oldestKept: UInt64) -> [SignedSessionReceipt] {
        var dropped: [SignedSessionReceipt] = []
        for epoch in byEpoch.keys where epoch < oldestKept {
            for id in byEpoch[epoch] ?? [] { if let r = receipts.removeValue(forKey: id) { dropped.append(r) } }
            byEpoch[epoch] = nil
        }
        if !dropped.isEmpty { generation &+= 1 }
        return dropped
    }

    /// `/health.receiptsDigest`: SHA-256 over the sorted item IDs. Equal digests, equal sets.
    public var digest: [UInt8] {
        var h = SHA256.Hasher()
        for id in receipts.keys.sorted() { h.update(id.bytes) }
        return h.finalize()
    }

    /// The items for set reconciliation (`/drtc/receipts-sync/1.0.0`).
    public var syncItems: [SyncItem] { receipts.values.map { SyncItem(id: $0.syncID, encoded: $0.encoded) } }

    /// The ledger's inputs from the receipts of the network's epoch length (Specs/rewards.md):
    /// per node, b of `epoch`, s (b summed over every epoch up to and including `epoch`) and
    /// the number of receipts of `epoch`; and the demand points of `epoch` (each receipt places
    /// n_p + n_c participants at its node). Receipts of another epoch length count for nothing.
    public func totals(epoch: UInt64, epochSeconds: UInt32, streamBitrateKbps: Double) -> ReceiptTotals {
        var out = ReceiptTotals()
        for e in byEpoch.keys.sorted() where e <= epoch {
            for r in receipts(epoch: e) where r.receipt.epochSeconds == epochSeconds {
                let id = r.receipt.nodeID
                let b = r.receipt.dataSuppliedMB(streamBitrateKbps: streamBitrateKbps)
                out.lifetimeMB[id, default: 0] += b
                guard e == epoch else { continue }
                out.epochMB[id, default: 0] += b
                out.sessions[id, default: 0] += 1
                out.participants[id, default: 0] += r.receipt.participants
            }
        }
        return out
    }
}

/// What the receipts give the ledger of one epoch.
public struct ReceiptTotals: Sendable, Equatable {
    /// b, s (lifetime up to the epoch) and receipts, per media node.
    public var epochMB: [PeerID: Double] = [:]
    public var lifetimeMB: [PeerID: Double] = [:]
    public var sessions: [PeerID: Int] = [:]
    /// n_p + n_c summed over the node's receipts of the epoch (demand at its position).
    public var participants: [PeerID: Double] = [:]
    public init() {}

    /// `inputs` with b, s and sessions filled in, and demand made of the receipts: each node's
    /// participants at its position (nodes without a position place none).
    public func apply(to inputs: RewardInputs) -> RewardInputs {
        var out = inputs
        for i in out.nodes.indices {
            let id = out.nodes[i].node
            out.nodes[i].dataSuppliedMB = epochMB[id] ?? 0
            out.nodes[i].lifetimeDataSuppliedMB = lifetimeMB[id] ?? 0
            out.nodes[i].sessions = sessions[id] ?? 0
        }
        out.demand = out.nodes.compactMap { n in
            guard let p = n.position, let count = participants[n.node], count > 0 else { return nil }
            return DemandPoint(position: p, participants: count)
        }
        return out
    }
}
