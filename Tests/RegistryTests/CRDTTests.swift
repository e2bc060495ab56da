import Identity
import Testing
@testable import Registry

@Suite struct CRDTPropertyTests {
    /// Random updates (several versions per node, including equal HLCs and tombstones)
    /// applied in random orders and groupings always give byte-identical tables.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func mergeIsCommutativeAssociativeIdempotent(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let keys = (0..<12).map { _ in Ed25519KeyPair.generate() }
        var updates: [SignedRecord] = []
        for _ in 0..<80 {
            let key = keys[Int.random(in: 0..<keys.count, using: &rng)]
            // Narrow clock range: many ties on HLC, decided by signature bytes.
            let wall = baseMs + UInt64.random(in: 0..<4, using: &rng)
            let logical = UInt32.random(in: 0..<2, using: &rng)
            let status: NodeStatus = Int.random(in: 0..<5, using: &rng) == 0 ? .leaving : .active
            updates.append(makeRecord(key, wall: wall, logical: logical, sessions: UInt32.random(in: 0..<100, using: &rng), status: status))
        }
        let now = baseMs + 1000
        var reference = RegistryTable()
        for u in updates { reference.merge(u, nowMs: now) }
        let expected = reference.canonicalBytes()

        for _ in 0..<20 {
            // Commutativity + idempotence: shuffled order with duplicates.
            var table = RegistryTable()
            var order = updates + updates.prefix(Int.random(in: 0..<updates.count, using: &rng))
            order.shuffle(using: &rng)
            for u in order { table.merge(u, nowMs: now) }
            #expect(table.canonicalBytes() == expected)

            // Associativity: merge disjoint partial tables into each other in random groupings.
            var parts = Array(repeating: RegistryTable(), count: 4)
            for u in updates.shuffled(using: &rng) { parts[Int.random(in: 0..<4, using: &rng)].merge(u, nowMs: now) }
            var merged = RegistryTable()
            for p in parts.shuffled(using: &rng) {
                for r in p.records.shuffled(using: &rng) { merged.merge(r, nowMs: now) }
            }
            // A replica that took only the partial winners converges to the same table.
            #expect(merged.canonicalBytes() == expected)
            #expect(merged.liveDigest(nowMs: now) == reference.liveDigest(nowMs: now))
        }
    }

    @Test func newerHLCWinsAndTiesGoToLargerSignature() {
        let key = Ed25519KeyPair.generate()
        let a = makeRecord(key, wall: baseMs, sessions: 1)
        let b = makeRecord(key, wall: baseMs, sessions: 2)
        let newer = makeRecord(key, wall: baseMs, logical: 1)
        var t = RegistryTable()
        #expect(t.merge(a, nowMs: baseMs) == .accepted)
        #expect(t.merge(a, nowMs: baseMs) == .duplicate)
        let tieWinner = a.signature.lexicographicallyPrecedes(b.signature) ? b : a
        _ = t.merge(b, nowMs: baseMs)
        #expect(t[key.peerID] == tieWinner)
        #expect(t.merge(newer, nowMs: baseMs) == .accepted)
        #expect(t.merge(a, nowMs: baseMs) == .stale)
    }

    /// Copies share the compacted entries; each copy's merges and collections stay its own,
    /// before and after it compacts (the simulator holds 10,000 copies of one table).
    @Test func copiesShareEntriesAndKeepTheirOwnChanges() {
        let keys = (0..<200).map { _ in Ed25519KeyPair.generate() }
        var shared = RegistryTable(garbageCollectionMs: 3_600_000)
        for (i, key) in keys.enumerated() { shared.merge(makeRecord(key, wall: baseMs + UInt64(i)), nowMs: baseMs) }
        shared.compact()
        let original = shared.canonicalBytes()
        var copy = shared
        // Newer versions of 150 records (more than the base count triggers a compaction
        // on the way), and one garbage collection.
        for (i, key) in keys.prefix(150).enumerated() {
            #expect(copy.merge(makeRecord(key, wall: baseMs + 10_000 + UInt64(i)), nowMs: baseMs) == .accepted)
        }
        #expect(copy.count == 200)
        #expect(shared.canonicalBytes() == original, "a copy's merges leaked into the shared table")
        let dropped = copy.collectGarbage(nowMs: baseMs + 3_600_000 + 10_000)
        #expect(dropped.count == 50)
        #expect(copy.count == 150 && copy.records.reduce(0) { n, _ in n + 1 } == 150)
        #expect(copy[keys[199].peerID] == nil && copy[keys[0].peerID]?.hlc.wallMs == baseMs + 10_000)
        #expect(shared.count == 200 && shared[keys[199].peerID] != nil)
        // The same records merged into a fresh table give the same bytes.
        var fresh = RegistryTable(garbageCollectionMs: 3_600_000)
        for record in copy.records { fresh.merge(record, nowMs: baseMs) }
        #expect(fresh.canonicalBytes() == copy.canonicalBytes())
    }

    /// A record whose owner promised a TTL beyond the GC horizon (a large mesh's liveness rule
    /// reaches 18 h; replicas accept up to 7 days) stays while it is live, then goes.
    @Test func garbageCollectionNeverDropsALiveRecord() {
        let hour: UInt64 = 3_600_000
        let long = makeRecord(Ed25519KeyPair.generate(), wall: baseMs, ttl: 30 * 3_600)
        let short = makeRecord(Ed25519KeyPair.generate(), wall: baseMs)
        var table = RegistryTable(garbageCollectionMs: 24 * hour)
        table.merge(long, nowMs: baseMs)
        table.merge(short, nowMs: baseMs)
        let dropped = table.collectGarbage(nowMs: baseMs + 25 * hour)
        #expect(dropped == [short])
        #expect(table[long.nodeID] == long && long.isLive(nowMs: baseMs + 25 * hour))
        // A replica that never saw it still takes it while it is live...
        var late = RegistryTable(garbageCollectionMs: 24 * hour)
        #expect(late.merge(long, nowMs: baseMs + 25 * hour) == .accepted)
        #expect(late.merge(short, nowMs: baseMs + 25 * hour) == .expired)
        // ...and both collect it once its TTL has passed.
        #expect(table.collectGarbage(nowMs: baseMs + 31 * hour) == [long])
        #expect(late.merge(long, nowMs: baseMs + 31 * hour) == .expired)
        #expect(late.collectGarbage(nowMs: baseMs + 31 * hour) == [long])
    }

    @Test func tombstoneHidesNodeButIsKept() {
        let key = Ed25519KeyPair.generate()
        var t = RegistryTable()
        t.merge(makeRecord(key, wall: baseMs), nowMs: baseMs)
        #expect(t.liveCount(nowMs: baseMs) == 1)
        t.merge(makeRecord(key, wall: baseMs + 1, status: .leaving), nowMs: baseMs)
        #expect(t.liveCount(nowMs: baseMs + 2) == 0)
        #expect(t.count == 1)
        // An older active record cannot resurrect it.
        #expect(t.merge(makeRecord(key, wall: baseMs), nowMs: baseMs) == .stale)
    }

    @Test func ttlExpiryThenGarbageCollection() {
        let key = Ed25519KeyPair.generate()
        var t = RegistryTable(garbageCollectionMs: 3_600_000)
        t.merge(makeRecord(key, wall: baseMs, ttl: 90), nowMs: baseMs)
        #expect(t.liveCount(nowMs: baseMs + 89_999) == 1)
        #expect(t.liveCount(nowMs: baseMs + 90_000) == 0)
        #expect(t.count == 1, "expired records stay for anti-entropy")
        #expect(t.collectGarbage(nowMs: baseMs + 3_600_001).count == 1)
        #expect(t.count == 0)
        // Once collected, the old record is refused instead of resurrected.
        #expect(t.merge(makeRecord(key, wall: baseMs), nowMs: baseMs + 3_600_001) == .expired)
    }

    @Test func digestDependsOnLiveEntriesOnly() {
        let k1 = Ed25519KeyPair.generate(), k2 = Ed25519KeyPair.generate()
        var a = RegistryTable(), b = RegistryTable()
        a.merge(makeRecord(k1), nowMs: baseMs)
        a.merge(makeRecord(k2, wall: baseMs - 200_000, ttl: 90), nowMs: baseMs)  // already expired
        b.merge(makeRecord(k1), nowMs: baseMs)
        #expect(a.liveDigest(nowMs: baseMs) == b.liveDigest(nowMs: baseMs))
        b.merge(makeRecord(k1, wall: baseMs + 1), nowMs: baseMs)
        #expect(a.liveDigest(nowMs: baseMs) != b.liveDigest(nowMs: baseMs))
    }

    @Test func hybridLogicalClockIsMonotonic() {
        var c = HybridLogicalClock()
        let t1 = c.tick(physicalMs: 100)
        let t2 = c.tick(physicalMs: 100)
        let t3 = c.tick(physicalMs: 90)  // wall clock stepped back
        #expect(t1 < t2 && t2 < t3)
        c.observe(HLC(wallMs: 500, logical: 7), physicalMs: 120)
        let t4 = c.tick(physicalMs: 130)
        #expect(t4 > HLC(wallMs: 500, logical: 7))
    }
}

@Suite struct ValidationTests {
    @Test func rejectsForgedAndBrokenRecords() throws {
        let owner = Ed25519KeyPair.generate(), other = Ed25519KeyPair.generate()
        let good = makeRecord(owner)
        #expect(try SignedRecord.verify(encoded: good.encoded, nowMs: baseMs) == good)

        // Tampered body (still a valid protobuf: one letter of the URL changed).
        var body = good.body
        let url = Array("http://n".utf8)
        let at = (0...(body.count - url.count)).first { Array(body[$0..<$0 + url.count]) == url }!
        body[at + url.count - 1] = UInt8(ascii: "m")
        #expect(throws: RecordRejection.badSignature) { try SignedRecord.verify(body: body, signature: good.signature, nowMs: baseMs) }

        // Signed by the right key, but claiming someone else's node_id.
        var wire = try WireRecord(serializedBytes: good.body)
        wire.nodeID = other.peerID.description
        let forged: [UInt8] = try wire.serializedBytes()
        #expect(throws: RecordRejection.keyMismatch) {
            try SignedRecord.verify(body: forged, signature: owner.sign(SignedRecord.signingPrefix + forged), nowMs: baseMs)
        }

        // Another key re-signing the owner's record body.
        #expect(throws: RecordRejection.badSignature) {
            try SignedRecord.verify(body: good.body, signature: other.sign(SignedRecord.signingPrefix + good.body), nowMs: baseMs)
        }

        // Further in the future than the skew bound (10 min, Specs/registry.md "Clocks").
        let bound = SignedRecord.maxFutureSkewMs
        let future = makeRecord(owner, wall: baseMs + bound + 1)
        #expect(throws: RecordRejection.futureTimestamp) { try SignedRecord.verify(encoded: future.encoded, nowMs: baseMs) }
        #expect(try SignedRecord.verify(encoded: makeRecord(owner, wall: baseMs + bound).encoded, nowMs: baseMs).hlc.wallMs == baseMs + bound)

        #expect(throws: RecordRejection.self) { try SignedRecord.verify(encoded: [0xff, 0x01, 0x02], nowMs: baseMs) }
        #expect(throws: RecordRejection.tooLarge) { try SignedRecord.verify(encoded: Array(repeating: 0, count: 20_000), nowMs: baseMs) }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var rng = SplitMix64(seed: 42)
        let good = makeRecord(Ed25519KeyPair.generate()).encoded
        for _ in 0..<3000 {
            var bytes = good
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            if Bool.random(using: &rng) { bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng))) }
            _ = try? SignedRecord.verify(encoded: bytes, nowMs: baseMs)
        }
    }
}
