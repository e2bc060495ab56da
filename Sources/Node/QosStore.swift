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
    let bundles: LMDBDatabase
    let samples: LMDBDatabase

    init(directory: String) throws {
        env = try LMDBEnvironment(path: directory, mapSize: 64 << 20)
        bundles = try env.database("bundles")
        samples = try env.database("samples")
    }

    static func key(_ b: SignedQoSBundle) -> [UInt8] { epochPrefix(b.epoch) + b.syncID.bytes }

    static func epochPrefix(_ e: UInt64) -> [UInt8] { withUnsafeBytes(of: e.bigEndian) { Array($0) } }

    func loadAll() throws -> [[UInt8]] {
        try env.read { txn in
            var out: [[UInt8]] = []
            try txn.forEach(bundles) { _, value in
                out.append(value)
                return true
            }
            return out
        }
    }

    /// Adds bundles and removes evicted ones in one durable transaction.
    func commit(added: [SignedQoSBundle], removed: [SignedQoSBundle]) throws {
        guard !added.isEmpty || !removed.isEmpty else { return }
        try env.write { txn in
            for b in removed { try txn.delete(bundles, Self.key(b)) }
            for b in added { try txn.put(bundles, Self.key(b), b.encoded) }
        }
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
            var keys: [[UInt8]] = []
            try txn.forEach(bundles) { key, _ in
                guard key.count >= 8, Self.readEpoch(key) < oldest else { return false }
                keys.append(key)
                return true
            }
            for k in keys { try txn.delete(bundles, k) }
            var sampleKeys: [[UInt8]] = []
            try txn.forEach(samples) { key, value in
                if value.count >= 8, Self.readEpoch(value) < oldest { sampleKeys.append(key) }
                return true
            }
            for k in sampleKeys { try txn.delete(samples, k) }
            return keys.count
        }
    }

    static func readEpoch(_ bytes: [UInt8]) -> UInt64 { bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) } }

    func close() { env.close() }
}
