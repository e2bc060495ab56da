import QoS
import Registry
import Store

/// The QoS set's durable form (Specs/qos.md "Storage"): one LMDB environment in
/// `<data-dir>/qos` holding
/// - `bundles`: u64be(epoch) ‖ item ID (16) → `SignedQosBundle` bytes;
/// - `samples`: samples hash (16) → u64be(epoch) ‖ `QosSamples` bytes, for this node's own
///   reports (served at `GET /qos/samples`).
/// Keys start with the epoch, so garbage collection is a prefix range delete.
final class QoSStore: Sendable {
    let env: LMDBEnvironment
    let bundles: EpochItemTable
    let samples: LMDBDatabase

    init(directory: String) throws {
        env = try LMDBEnvironment(path: directory, mapSize: 64 << 20)
        bundles = try EpochItemTable(env: env, name: "bundles")
        samples = try env.database("samples")
    }

    static func epochPrefix(_ e: UInt64) -> [UInt8] { EpochItemTable.epochPrefix(e) }

    /// Adds bundles and removes evicted ones in one durable transaction.
    func commit(added: [SignedQoSBundle], removed: [SignedQoSBundle]) throws {
        try bundles.commit(added: added, removed: removed)
    }

    func putSamples(_ series: SampleSeries, epoch: UInt64) throws {
        let bytes = series.encoded
        try env.write { txn in try txn.put(samples, SampleSeries.hash(of: bytes), Self.epochPrefix(epoch) + bytes) }
    }

    func samples(hash: [UInt8]) throws -> [UInt8]? {
        try env.read { txn in try txn.get(samples, hash).map { Array($0.dropFirst(8)) } }
    }

    /// Deletes bundles and samples of epochs before `oldest`.
    func deleteEpochs(before oldest: UInt64) throws -> Int {
        try env.write { txn in
            let dropped = try bundles.deleteEpochs(before: oldest, in: txn)
            var sampleKeys: [[UInt8]] = []
            try txn.forEach(samples) { key, value in
                if value.count >= 8, Self.readEpoch(value) < oldest { sampleKeys.append(key) }
                return true
            }
            for k in sampleKeys { try txn.delete(samples, k) }
            return dropped
        }
    }

    static func readEpoch(_ bytes: [UInt8]) -> UInt64 { EpochItemTable.readEpoch(bytes) }

    func close() { env.close() }
}
