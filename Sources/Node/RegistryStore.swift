import Identity
import Registry
import Store

/// The registry's durable form: one LMDB environment holding
/// - `records`:    PeerID multihash → SignedMediaNodeRecord bytes
/// - `by_region`:  region ‖ 0x00 ‖ PeerID → empty
/// - `by_geohash`: geohash(6) ‖ PeerID → empty
/// Records and index entries change in the same transaction, so they never disagree.
final class RegistryStore: Sendable {
    let env: LMDBEnvironment
    let records: LMDBDatabase
    let byRegion: LMDBDatabase
    let byGeohash: LMDBDatabase

    static let geohashPrecision = 6

    init(directory: String, initialMapSize: Int = 64 << 20) throws {
        env = try LMDBEnvironment(path: directory, mapSize: initialMapSize)
        records = try env.database("records")
        byRegion = try env.database("by_region")
        byGeohash = try env.database("by_geohash")
    }

    static func regionKey(_ r: SignedRecord) -> [UInt8] {
        Array(r.record.region.utf8) + [0] + r.nodeID.bytes
    }

    static func geohashKey(_ r: SignedRecord) -> [UInt8]? {
        r.record.geo.map { Array(Geohash.encode($0, precision: geohashPrecision).utf8) + r.nodeID.bytes }
    }

    /// Every stored record; entries that no longer verify are returned separately (and not
    /// loaded) so that a damaged file cannot inject records.
    func loadAll() throws -> (records: [SignedRecord], invalid: [[UInt8]]) {
        try env.read { txn in
            var good: [SignedRecord] = []
            var bad: [[UInt8]] = []
            try txn.forEach(records) { key, value in
                if let r = try? SignedRecord.reload(encoded: value), r.nodeID.bytes == key {
                    good.append(r)
                } else {
                    bad.append(key)
                }
                return true
            }
            return (good, bad)
        }
    }

    /// Commits new winners (replacing `previous` entries) and deletions in one durable
    /// transaction.
    func commit(winners: [(new: SignedRecord, previous: SignedRecord?)], deletions: [SignedRecord] = []) throws {
        guard !winners.isEmpty || !deletions.isEmpty else { return }
        try env.write { txn in
            for old in deletions + winners.compactMap(\.previous) {
                try txn.delete(byRegion, Self.regionKey(old))
                if let g = Self.geohashKey(old) { try txn.delete(byGeohash, g) }
            }
            for r in deletions { try txn.delete(records, r.nodeID.bytes) }
            for (r, _) in winners {
                try txn.put(records, r.nodeID.bytes, r.encoded)
                try txn.put(byRegion, Self.regionKey(r), [])
                if let g = Self.geohashKey(r) { try txn.put(byGeohash, g, []) }
            }
        }
    }

    /// PeerIDs in a region, from the region index.
    func nodeIDs(inRegion region: String) throws -> [PeerID] {
        let prefix = Array(region.utf8) + [0]
        return try env.read { txn in
            var out: [PeerID] = []
            try txn.forEach(byRegion, from: prefix) { key, _ in
                guard key.starts(with: prefix) else { return false }
                if let id = try? PeerID(multihash: Array(key[prefix.count...])) { out.append(id) }
                return true
            }
            return out
        }
    }

    /// PeerIDs whose geohash starts with `prefix`, from the spatial index.
    func nodeIDs(geohashPrefix prefix: String) throws -> [PeerID] {
        let p = Array(prefix.utf8)
        return try env.read { txn in
            var out: [PeerID] = []
            try txn.forEach(byGeohash, from: p) { key, _ in
                guard key.starts(with: p) else { return false }
                if key.count > Self.geohashPrecision, let id = try? PeerID(multihash: Array(key[Self.geohashPrecision...])) {
                    out.append(id)
                }
                return true
            }
            return out
        }
    }

    func close() { env.close() }
}
