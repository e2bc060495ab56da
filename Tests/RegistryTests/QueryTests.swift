import Identity
import Testing
@testable import Registry

@Suite struct QueryTests {
    /// The k-d tree answers exactly what a brute-force scan answers, including after updates
    /// that land in the pending set and after rebuilds.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func geoQueriesMatchBruteForce(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let keys = (0..<300).map { _ in Ed25519KeyPair.generate() }
        var replica = RegistryReplica()
        func randomGeo() -> GeoPoint {
            GeoPoint(latitude: Double.random(in: -90...90, using: &rng), longitude: Double.random(in: -180...180, using: &rng))
        }
        let regions = ["EU", "NAM", "ASI"]
        for (i, k) in keys.enumerated() {
            replica.merge(makeRecord(k, wall: baseMs, region: regions[i % 3], geo: randomGeo(),
                                     sessions: UInt32.random(in: 0...10, using: &rng), maxSessions: 10), nowMs: baseMs)
        }
        for round in 0..<6 {
            if round > 0 {
                // Move some nodes, retire some, so the index has pending changes.
                for k in keys.shuffled(using: &rng).prefix(40 * round) {
                    let status: NodeStatus = Int.random(in: 0..<6, using: &rng) == 0 ? .leaving : .active
                    replica.merge(makeRecord(k, wall: baseMs + UInt64(round), region: regions.randomElement(using: &rng)!, geo: randomGeo(),
                                             sessions: UInt32.random(in: 0...10, using: &rng), maxSessions: 10, status: status), nowMs: baseMs)
                }
            }
            for _ in 0..<30 {
                let q = NodeQuery(region: Bool.random(using: &rng) ? regions.randomElement(using: &rng) : nil,
                                  near: randomGeo(), limit: Int.random(in: 1...25, using: &rng))
                let got = replica.getMediaNodes(q, nowMs: baseMs + 10).map(\.record.nodeID)
                let expected = bruteForce(q, replica.table, nowMs: baseMs + 10)
                #expect(got == expected)
            }
        }
    }

    func bruteForce(_ q: NodeQuery, _ t: RegistryTable, nowMs: UInt64) -> [PeerID] {
        let candidates = t.records.filter { $0.isLive(nowMs: nowMs) && (q.region == nil || $0.record.region == q.region) }
        let ranked = candidates.map { r -> (Double, Double, Double, PeerID) in
            let km = greatCircleKm(q.near!, r.record.geo!)
            return ((km / distanceBandKm).rounded(.down), r.record.loadHeadroom, km, r.nodeID)
        }.sorted {
            if $0.0 != $1.0 { return $0.0 < $1.0 }
            if $0.1 != $1.1 { return $0.1 > $1.1 }
            if $0.2 != $1.2 { return $0.2 < $1.2 }
            return $0.3 < $1.3
        }
        return ranked.prefix(q.limit).map(\.3)
    }

    @Test func nearestFirstThenHeadroomWithinABand() {
        let berlin = GeoPoint(latitude: 52.52, longitude: 13.405)
        let potsdam = GeoPoint(latitude: 52.39, longitude: 13.06)  // ~27 km: same 50-km band
        let paris = GeoPoint(latitude: 48.85, longitude: 2.35)
        let busyBerlin = Ed25519KeyPair.generate(), idlePotsdam = Ed25519KeyPair.generate(), idleParis = Ed25519KeyPair.generate()
        var r = RegistryReplica()
        r.merge(makeRecord(busyBerlin, geo: berlin, sessions: 9, maxSessions: 10), nowMs: baseMs)
        r.merge(makeRecord(idlePotsdam, geo: potsdam, sessions: 1, maxSessions: 10), nowMs: baseMs)
        r.merge(makeRecord(idleParis, geo: paris, sessions: 0, maxSessions: 10), nowMs: baseMs)
        let result = r.getMediaNodes(NodeQuery(near: GeoPoint(latitude: 52.52, longitude: 13.40), limit: 3), nowMs: baseMs)
        #expect(result.map(\.record.nodeID) == [idlePotsdam.peerID, busyBerlin.peerID, idleParis.peerID])
        #expect(abs(result[2].distanceKm! - 878) < 5)
        // Without a position: by headroom.
        #expect(r.getMediaNodes(NodeQuery(limit: 3), nowMs: baseMs).map(\.record.nodeID) == [idleParis.peerID, idlePotsdam.peerID, busyBerlin.peerID])
        // minScore above 0: no node is measured here (no quality function), so none matches.
        #expect(r.getMediaNodes(NodeQuery(limit: 3, minScore: 0.5), nowMs: baseMs).isEmpty)
    }

    @Test func listingPagesCoverEveryLiveRecordOnce() {
        var r = RegistryReplica()
        var live = Set<String>()
        for i in 0..<250 {
            let k = Ed25519KeyPair.generate()
            let status: NodeStatus = i % 10 == 0 ? .leaving : .active
            r.merge(makeRecord(k, status: status), nowMs: baseMs)
            if status == .active { live.insert(k.peerID.description) }
        }
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = r.listMediaNodes(after: cursor, limit: 40, nowMs: baseMs)
            seen += page.page.map(\.nodeID.description)
            cursor = page.next
        } while cursor != nil
        #expect(seen.count == live.count)
        #expect(Set(seen) == live)
        #expect(seen == seen.sorted())
    }

    @Test func geohashKnownValues() {
        // Reference values from the geohash definition (Niemeyer): "u33dc0" covers central Berlin.
        #expect(Geohash.encode(GeoPoint(latitude: 52.52, longitude: 13.405), precision: 6) == "u33dc0")
        #expect(Geohash.encode(GeoPoint(latitude: 57.64911, longitude: 10.40744), precision: 11) == "u4pruydqqvj")
    }
}
