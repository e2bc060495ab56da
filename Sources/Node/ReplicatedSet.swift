import Gossipsub
import Logging
import QoS
import Registry
import RegistryGossip
import Rewards
import Store

/// An item of an epoch-partitioned replicated set (QoS bundles, session receipts): signed,
/// content-addressed (`syncID`), belonging to one epoch, shipped as `encoded`.
protocol ReplicatedItem: Sendable {
    var syncID: SyncID { get }
    var epoch: UInt64 { get }
    var encoded: [UInt8] { get }
}

extension SignedQoSBundle: ReplicatedItem {}
extension SignedSessionReceipt: ReplicatedItem {}

/// The durable form of an epoch-partitioned replicated set: one LMDB database mapping
/// u64be(epoch) ‖ item ID (16) → the item's encoding. Keys start with the epoch, so garbage
/// collection is a prefix range delete. Shared by the QoS set (`bundles` in `<data-dir>/qos`)
/// and the receipt set (`receipts` in `<data-dir>/receipts`).
struct EpochItemTable: Sendable {
    let env: LMDBEnvironment
    let db: LMDBDatabase

    init(env: LMDBEnvironment, name: String) throws {
        self.env = env
        db = try env.database(name)
    }

    static func epochPrefix(_ e: UInt64) -> [UInt8] { withUnsafeBytes(of: e.bigEndian) { Array($0) } }
    static func key(_ item: some ReplicatedItem) -> [UInt8] { epochPrefix(item.epoch) + item.syncID.bytes }
    static func readEpoch(_ bytes: [UInt8]) -> UInt64 { bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }

    func loadAll() throws -> [[UInt8]] {
        try env.read { txn in
            var out: [[UInt8]] = []
            try txn.forEach(db) { _, value in
                out.append(value)
                return true
            }
            return out
        }
    }

    /// Every stored item that still verifies (re-verified, so a damaged file cannot inject
    /// items); the ones that do not are logged and left out.
    func loadVerified<Item>(what: String, logger: Logger, _ verify: ([UInt8]) -> Item?) throws -> [Item] {
        var items: [Item] = []
        var invalid = 0
        for bytes in try loadAll() {
            if let item = verify(bytes) { items.append(item) } else { invalid += 1 }
        }
        if invalid > 0 { logger.error("the \(what) store holds items that do not verify; they were not loaded", metadata: ["count": "\(invalid)"]) }
        return items
    }

    /// Adds items and removes evicted ones in one durable transaction.
    func commit(added: [some ReplicatedItem], removed: [some ReplicatedItem]) throws {
        guard !added.isEmpty || !removed.isEmpty else { return }
        try env.write { txn in try write(txn, added: added, removed: removed) }
    }

    func write(_ txn: LMDBTransaction, added: [some ReplicatedItem], removed: [some ReplicatedItem]) throws {
        for item in removed { try txn.delete(db, Self.key(item)) }
        for item in added { try txn.put(db, Self.key(item), item.encoded) }
    }

    /// Deletes the items of epochs before `oldest` inside `txn`; returns how many.
    func deleteEpochs(before oldest: UInt64, in txn: LMDBTransaction) throws -> Int {
        var keys: [[UInt8]] = []
        try txn.forEach(db) { key, _ in
            guard key.count >= 8, Self.readEpoch(key) < oldest else { return false }
            keys.append(key)
            return true
        }
        for k in keys { try txn.delete(db, k) }
        return keys.count
    }
}

/// A replicated set's place in the mesh (Specs/gossip.md, Specs/registry-sync.md): a gossip
/// topic whose accepted messages are merged, and set reconciliation on its own protocol, both
/// over the same merge. The QoS set (`drtc/qos/1`, `/drtc/qos-sync/1.0.0`) and the receipt set
/// (`drtc/receipts/1`, `/drtc/receipts-sync/1.0.0`) are two instances.
struct SetReplication<Item: ReplicatedItem>: Sendable {
    var topic: String
    var protocolID: String
    /// `<prefix>_sessions_total`, … (MeshGossip's sync metrics).
    var metricsPrefix: String
    /// What the items are, for log lines ("QoS bundle", "session receipt").
    var what: String
    /// The topic's validation: the verdict and, when accepted, the item to merge.
    var validate: @Sendable (GossipMessage, _ nowMs: UInt64) -> (ValidationResult, Item?)
    /// Bytes-only verification of a synced item; nil when refused (the closure counts it).
    var verify: @Sendable ([UInt8]) -> Item?
    /// Merges verified items durably; `gossiped` is true for one item delivered by the router.
    var merge: @Sendable (_ items: [Item], _ gossiped: Bool) async throws -> Void
    var syncItems: @Sendable () -> [SyncItem]
    var busySample: @Sendable () -> [[UInt8]]

    func attach(to gossip: MeshGossip, logger: Logger) {
        let replication = self
        gossip.addTopic(topic) { message, now in
            let (result, item) = replication.validate(message, now)
            guard let item else { return (result, nil) }
            return (result, {
                Task {
                    do { try await replication.merge([item], true) } catch {
                        logger.warning("could not store a gossiped \(replication.what)", metadata: ["error": "\(error)"])
                    }
                }
            })
        }
        gossip.addReplicatedSet(MeshGossip.ReplicatedSet(
            protocolID: protocolID, metricsPrefix: metricsPrefix,
            snapshot: { SyncSnapshot(items: replication.syncItems()) },
            merge: { encoded in
                let good = encoded.compactMap(replication.verify)
                try await replication.merge(good, false)
                // These sets do not start waves of news: the registry's wave is what a healed
                // partition sets off (Specs/gossip.md "Partitions").
                return MeshGossip.SetMerge(verified: good.count, news: 0)
            },
            busySample: busySample))
    }
}
