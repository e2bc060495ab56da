import Identity
import Registry
import Testing
@testable import Rewards

#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation

private let nodeKey = try! Ed25519KeyPair(seed: Array(0..<32))
private let orchestratorKey = try! Ed25519KeyPair(seed: Array(32..<64))
private let otherKey = try! Ed25519KeyPair(seed: Array(repeating: 9, count: 32))
private let E: UInt64 = 30_000
private let epoch: UInt64 = 58_831_234
private let epochStart = epoch * E

private func receipt(start: UInt64 = epochStart + 1_000, end: UInt64 = epochStart + 25_000, np: UInt32 = 100, nc: UInt32 = 300) -> SessionReceipt {
    SessionReceipt(node: nodeKey.publicKeyBytes, orchestrator: orchestratorKey.publicKeyBytes, room: "r1", epochSeconds: 30,
                   epoch: start / E, startMs: start, endMs: end, role: .origin, publishersCenti: np, viewersCenti: nc,
                   tokenDigest: SessionReceipt.tokenDigest(tokenHashes: [SHA256.hash(Array("t".utf8))]), bytesForwarded: 1_000)
}

struct ReceiptTests {
    /// Fixtures/rewards/session-receipt.json, written by an independent Python implementation
    /// (Fixtures/rewards/make-receipt-vector.py): the same fields and keys give the same bytes.
    @Test func signedAndCountersignedVector() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/rewards/session-receipt.json")
        let v = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let f = v["fields"] as! [String: Any]
        func u64(_ k: String) -> UInt64 { (f[k] as! NSNumber).uint64Value }
        let node = try Ed25519KeyPair(seed: Hex.decode(v["nodeSeed"] as! String)!)
        let orchestrator = try Ed25519KeyPair(seed: Hex.decode(v["orchestratorSeed"] as! String)!)
        let tokens = (v["tokens"] as! [String]).map { SHA256.hash(Array($0.utf8)) }
        let r = SessionReceipt(
            node: node.publicKeyBytes, orchestrator: orchestrator.publicKeyBytes, room: f["room"] as! String,
            epochSeconds: UInt32(u64("epochSeconds")), epoch: u64("epoch"), startMs: u64("startMs"), endMs: u64("endMs"), role: .origin,
            publishersCenti: UInt32(u64("publishersCenti")), viewersCenti: UInt32(u64("viewersCenti")),
            tokenDigest: SessionReceipt.tokenDigest(tokenHashes: tokens.reversed()), bytesForwarded: u64("bytesForwarded"))
        #expect(Hex.encode(r.tokenDigest) == v["tokenDigest"] as! String)
        #expect(Hex.encode(r.body) == v["body"] as! String)
        let signed = SignedSessionReceipt.sign(r, key: node)
        #expect(Hex.encode(signed.nodeSignature) == v["nodeSignature"] as! String)
        #expect(Hex.encode(signed.encoded) == v["nodeSigned"] as! String)
        let counter = signed.countersigned(by: orchestrator)
        #expect(Hex.encode(counter.orchestratorSignature) == v["orchestratorSignature"] as! String)
        #expect(Hex.encode(counter.encoded) == v["encoded"] as! String)
        #expect(Hex.encode(counter.syncID.bytes) == v["syncId"] as! String)
        let decoded = try SignedSessionReceipt.verify(encoded: Hex.decode(v["encoded"] as! String)!)
        #expect(decoded.receipt == r)
        #expect(decoded.receipt.nodeID.description == v["node"] as! String)
        #expect(decoded.receipt.orchestratorID.description == v["orchestrator"] as! String)
        #expect(abs(decoded.receipt.dataSuppliedMB(streamBitrateKbps: 700) - (v["dataSuppliedMB"] as! NSNumber).doubleValue) < 1e-9)
    }

    @Test func verificationDependsOnEveryByte() throws {
        let good = SignedSessionReceipt.sign(receipt(), key: nodeKey).countersigned(by: orchestratorKey)
        _ = try SignedSessionReceipt.verify(encoded: good.encoded)
        // Any change of the body, or of either signature, is refused.
        let bytes = good.encoded
        for i in bytes.indices {
            var t = bytes
            t[i] ^= 0x01
            #expect(throws: ReceiptRejection.self, "byte \(i)") { try SignedSessionReceipt.verify(encoded: t) }
        }
        // Countersigned by anyone else: refused.
        let forged = SignedSessionReceipt(receipt: good.receipt, body: good.body, nodeSignature: good.nodeSignature,
                                          orchestratorSignature: otherKey.sign(SignedSessionReceipt.countersignPrefix + good.body + good.nodeSignature))
        #expect(throws: ReceiptRejection.badOrchestratorSignature) { try SignedSessionReceipt.verify(encoded: forged.encoded) }
        // A countersignature is over the node's signature too: a re-signed body cannot reuse it.
        let nodeOnly = SignedSessionReceipt.sign(receipt(), key: nodeKey)
        #expect(throws: ReceiptRejection.notCountersigned) { try SignedSessionReceipt.verify(encoded: nodeOnly.encoded) }
        #expect(try SignedSessionReceipt.verify(encoded: nodeOnly.encoded, countersigned: false).isCountersigned == false)
    }

    /// Untrusted bytes (gossip, sync, RPC bodies, clamped proposals): truncations and random
    /// changes of a valid receipt never trap, and whatever decodes can be decided on and counted.
    @Test func mutatedBytesNeverTrap() {
        var rng = SplitMix64(seed: 17)
        let good = SignedSessionReceipt.sign(receipt(), key: nodeKey).countersigned(by: orchestratorKey)
        for round in 0..<3_000 {
            var bytes = round % 2 == 0 ? good.encoded : good.body
            switch rng.next() % 3 {
            case 0: bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
            case 1: for _ in 0..<(1 + rng.next() % 4) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            default: bytes += (0..<(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            _ = try? SignedSessionReceipt.verify(encoded: bytes, countersigned: false)
            if let r = try? SessionReceipt(body: bytes) {
                _ = r.dataSuppliedMB(streamBitrateKbps: 700)
                _ = CountersignPolicy.decide(r, me: orchestratorKey.publicKeyBytes, epochSeconds: 30, evidence: ReceiptEvidence(
                    publishTokens: .max, viewTokens: .max, role: .member, sightings: [RoomSighting(atMs: r.startMs, publishers: 1e12, viewers: .infinity)]),
                    nowMs: r.endMs)
                _ = CountersignPolicy.isNarrowing(r, of: good.receipt)
            }
        }
    }

    @Test func fieldRangesAndSelfDealing() throws {
        func refused(_ r: SessionReceipt, key: Ed25519KeyPair = nodeKey) -> Bool {
            let body = r.body
            let bytes = SignedSessionReceipt.encode(body: body, nodeSignature: key.sign(SignedSessionReceipt.nodePrefix + body), orchestratorSignature: [])
            do { _ = try SignedSessionReceipt.verify(encoded: bytes, countersigned: false); return false } catch { return true }
        }
        #expect(!refused(receipt()))
        var selfSigned = receipt()
        selfSigned.orchestrator = nodeKey.publicKeyBytes
        #expect(selfSigned.problem != nil && refused(selfSigned))
        #expect(receipt(start: epochStart + 10_000, end: epochStart + 31_000).problem == "the part must lie inside its epoch")
        #expect(receipt(start: epochStart + 10_000, end: epochStart + 10_000).problem != nil)
        #expect(receipt(np: SessionReceipt.maxPublishersCenti + 1).problem != nil)
        var room = receipt()
        room.room = "no spaces"
        #expect(room.problem != nil)
        var wrongEpoch = receipt()
        wrongEpoch.epoch += 1
        #expect(wrongEpoch.problem != nil)
    }

    @Test func dataSuppliedFollowsTheWhitepaper() {
        // b = b_av · n_p · ((n_p − 1) + n_c) · m: 1 publisher, 3 viewers, 24 s at 700 kbit/s.
        let r = receipt(np: 100, nc: 300)
        #expect(abs(r.dataSuppliedMB(streamBitrateKbps: 700) - 700.0 * 60 * 3 * 0.4 / 8 / 1000) < 1e-12)
        // Half a publisher on average and nobody watching: nothing supplied, never negative.
        #expect(receipt(np: 50, nc: 0).dataSuppliedMB(streamBitrateKbps: 700) == 0)
    }
}

struct ReceiptAccumulatorTests {
    let orchestrator = orchestratorKey.publicKeyBytes

    func sample(_ p: Double, _ v: Double, room: String = "r1", bytes: UInt64 = 0, orchestrator: [UInt8]? = nil) -> RoomSample {
        RoomSample(room: room, orchestrator: orchestrator ?? self.orchestrator, role: .origin, publishers: p, viewers: v,
                   tokenHashes: [SHA256.hash(Array(room.utf8))], bytesForwarded: bytes)
    }

    @Test func splitsAtEpochBoundariesAndWeighsByTime() {
        var acc = ReceiptAccumulator(node: nodeKey.publicKeyBytes, epochSeconds: 30)
        var out: [SessionReceipt] = []
        // 1 publisher from 20 s into the epoch; 2 viewers for its first 5 s, 4 after; ends 50 s in.
        var t = epochStart + 20_000
        while t <= epochStart + 50_000 {
            let viewers: Double = t < epochStart + 25_000 ? 2 : 4
            out += acc.observe(t == epochStart + 50_000 ? [] : [sample(1, viewers, bytes: t - epochStart)], atMs: t)
            t += 1_000
        }
        #expect(out.count == 2)
        #expect(out[0].startMs == epochStart + 20_000 && out[0].endMs == epochStart + 30_000 && out[0].epoch == epoch)
        #expect(out[0].publishersCenti == 100 && out[0].viewersCenti == 300)  // (5·2 + 5·4) / 10
        #expect(out[1].startMs == epochStart + 30_000 && out[1].endMs == epochStart + 50_000 && out[1].epoch == epoch + 1)
        #expect(out[1].publishersCenti == 100 && out[1].viewersCenti == 400)
        #expect(out[0].bytesForwarded + out[1].bytesForwarded == 49_000 - 20_000)
        #expect(out.allSatisfy { $0.problem == nil })
        #expect(acc.openRooms.isEmpty)
    }

    @Test func sparseSamplesCrossingSeveralEpochs() {
        // A node that sampled rarely (busy) still yields one receipt per epoch it spanned.
        var acc = ReceiptAccumulator(node: nodeKey.publicKeyBytes, epochSeconds: 30)
        #expect(acc.observe([sample(2, 1)], atMs: epochStart + 29_000).isEmpty)
        let out = acc.observe([sample(2, 1)], atMs: epochStart + 95_000)
        #expect(out.map(\.epoch) == [epoch, epoch + 1, epoch + 2])
        #expect(out.map { $0.endMs - $0.startMs } == [1_000, 30_000, 30_000])
        #expect(out.allSatisfy { $0.publishersCenti == 200 && $0.viewersCenti == 100 })
        #expect(acc.openRooms == ["r1"])
    }

    @Test func orchestratorChangeEmptyRoomsAndSelf() {
        var acc = ReceiptAccumulator(node: nodeKey.publicKeyBytes, epochSeconds: 30)
        _ = acc.observe([sample(1, 1), sample(1, 0, room: "solo"), sample(0, 0, room: "empty")], atMs: epochStart)
        #expect(acc.openRooms == ["r1", "solo"])
        // The room is now admitted by another orchestrator's tokens: the first part closes.
        let out = acc.observe([sample(1, 1, orchestrator: otherKey.publicKeyBytes), sample(1, 0, room: "solo")], atMs: epochStart + 5_000)
        #expect(out.count == 1 && out[0].room == "r1" && out[0].orchestrator == orchestrator)
        let later = acc.observe([sample(1, 1, orchestrator: otherKey.publicKeyBytes)], atMs: epochStart + 6_000)
        #expect(later.map(\.room) == ["solo"])
        // A room whose tokens the node issued itself gets no receipt (it would count 0).
        var own = ReceiptAccumulator(node: nodeKey.publicKeyBytes, epochSeconds: 30)
        _ = own.observe([sample(1, 3, orchestrator: nodeKey.publicKeyBytes)], atMs: epochStart)
        #expect(own.openRooms.isEmpty)
    }

    @Test func deterministic() {
        var rng = SplitMix64(seed: 42)
        var samples: [(UInt64, [RoomSample])] = []
        var t = epochStart
        for _ in 0..<300 {
            t += 200 + rng.next() % 2_000
            let rooms = (0..<3).compactMap { i -> RoomSample? in
                rng.next() % 10 == 0 ? nil : sample(Double(rng.next() % 3), Double(rng.next() % 5), room: "room\(i)", bytes: t)
            }
            samples.append((t, rooms))
        }
        func run() -> [SessionReceipt] {
            var acc = ReceiptAccumulator(node: nodeKey.publicKeyBytes, epochSeconds: 30)
            return samples.flatMap { acc.observe($0.1, atMs: $0.0) } + acc.closeAll(atMs: t + 1)
        }
        let a = run(), b = run()
        #expect(a == b && !a.isEmpty)
        #expect(a.allSatisfy { $0.problem == nil })
        // Parts of one room never overlap.
        for room in Set(a.map(\.room)) {
            let parts = a.filter { $0.room == room }.sorted { $0.startMs < $1.startMs }
            #expect(zip(parts, parts.dropFirst()).allSatisfy { $0.endMs <= $1.startMs })
        }
    }
}

struct CountersignPolicyTests {
    let me = orchestratorKey.publicKeyBytes

    func sightings(from: UInt64, to: UInt64, publishers: Double = 1, viewers: Double = 3) -> [RoomSighting] {
        stride(from: from, through: to, by: 1_000).map { RoomSighting(atMs: $0, publishers: publishers, viewers: viewers) }
    }

    func evidence(_ s: [RoomSighting], publish: Int = 1, view: Int = 3, until: UInt64 = 0) -> ReceiptEvidence {
        ReceiptEvidence(publishTokens: publish, viewTokens: view, role: .origin, sightings: s, countersignedUntilMs: until)
    }

    @Test func backedReceiptIsCountersigned() {
        let d = CountersignPolicy.decide(receipt(), me: me, epochSeconds: 30,
                                         evidence: evidence(sightings(from: epochStart + 1_500, to: epochStart + 24_500)), nowMs: epochStart + 26_000)
        #expect(d == .countersign)
    }

    @Test func inflatedNumbersAreClamped() {
        let r = receipt(np: 300, nc: 900)
        // Probes saw 1 publisher and 3 viewers, and only from 10 s on.
        let d = CountersignPolicy.decide(r, me: me, epochSeconds: 30, evidence: evidence(sightings(from: epochStart + 10_000, to: epochStart + 30_000)),
                                         nowMs: epochStart + 26_000)
        guard case .clamp(let backed, _) = d else { Issue.record("expected a clamp, got \(d)"); return }
        #expect(backed.publishersCenti == 100 && backed.viewersCenti == 300)
        #expect(backed.startMs == epochStart + 8_000 && backed.endMs == r.endMs)
        #expect(CountersignPolicy.isNarrowing(backed, of: r))
        #expect(!CountersignPolicy.isNarrowing(r, of: backed))
        // More viewers seen than view tokens issued: the tokens bound it.
        let tokens = CountersignPolicy.decide(receipt(), me: me, epochSeconds: 30,
                                              evidence: evidence(sightings(from: epochStart, to: epochStart + 25_000), view: 2), nowMs: epochStart + 26_000)
        guard case .clamp(let byTokens, _) = tokens else { Issue.record("expected a clamp"); return }
        #expect(byTokens.viewersCenti == 200)
        // Already countersigned up to 20 s: only the rest is backed (no double counting).
        let overlap = CountersignPolicy.decide(receipt(), me: me, epochSeconds: 30,
                                               evidence: evidence(sightings(from: epochStart, to: epochStart + 25_000), until: epochStart + 20_000), nowMs: epochStart + 26_000)
        guard case .clamp(let rest, _) = overlap else { Issue.record("expected a clamp"); return }
        #expect(rest.startMs == epochStart + 20_000)
    }

    @Test func unbackedReceiptsAreRefused() {
        func code(_ d: CountersignDecision) -> String? { if case .refuse(let c, _) = d { c } else { nil } }
        let s = sightings(from: epochStart, to: epochStart + 25_000)
        #expect(code(CountersignPolicy.decide(receipt(), me: otherKey.publicKeyBytes, epochSeconds: 30, evidence: evidence(s), nowMs: epochStart + 26_000)) == "wrong_orchestrator")
        #expect(code(CountersignPolicy.decide(receipt(), me: me, epochSeconds: 60, evidence: evidence(s), nowMs: epochStart + 26_000)) == "bad_schedule")
        #expect(code(CountersignPolicy.decide(receipt(), me: me, epochSeconds: 30, evidence: evidence(s, publish: 0, view: 0), nowMs: epochStart + 26_000)) == "no_tokens")
        #expect(code(CountersignPolicy.decide(receipt(), me: me, epochSeconds: 30, evidence: evidence([]), nowMs: epochStart + 26_000)) == "not_observed")
        #expect(code(CountersignPolicy.decide(receipt(), me: me, epochSeconds: 30, evidence: evidence(s), nowMs: epochStart - 60_000)) == "future_receipt")
        #expect(code(CountersignPolicy.decide(receipt(), me: me, epochSeconds: 30, evidence: evidence(s, until: epochStart + 25_000), nowMs: epochStart + 26_000)) == "not_observed")
    }
}

struct ReceiptSetTests {
    func signed(_ r: SessionReceipt) -> SignedSessionReceipt { SignedSessionReceipt.sign(r, key: nodeKey).countersigned(by: orchestratorKey) }

    @Test func totalsGiveBHistoryAndDemand() {
        var set = ReceiptSet()
        let a = signed(receipt(start: epochStart - E + 1_000, end: epochStart - 1_000, np: 100, nc: 100))  // previous epoch
        let b = signed(receipt(start: epochStart + 1_000, end: epochStart + 25_000, np: 100, nc: 300))
        var c0 = receipt(start: epochStart + 2_000, end: epochStart + 8_000, np: 200, nc: 0)
        c0.room = "r2"
        let c = signed(c0)
        #expect(set.insert(a) && set.insert(b) && set.insert(c) && !set.insert(c))
        let t = set.totals(epoch: epoch, epochSeconds: 30, streamBitrateKbps: 700)
        let id = nodeKey.peerID
        let bB = b.receipt.dataSuppliedMB(streamBitrateKbps: 700), bC = c.receipt.dataSuppliedMB(streamBitrateKbps: 700)
        #expect(abs(t.epochMB[id]! - (bB + bC)) < 1e-12)
        #expect(abs(t.lifetimeMB[id]! - (bB + bC + a.receipt.dataSuppliedMB(streamBitrateKbps: 700))) < 1e-12)
        #expect(t.sessions[id] == 2 && t.participants[id] == 4 + 2)
        // Another network's epoch length counts for nothing.
        #expect(set.totals(epoch: epoch, epochSeconds: 60, streamBitrateKbps: 700).epochMB.isEmpty)
        // Into the ledger: b, s, sessions and demand at the node's position.
        let pos = GeoPoint(latitude: 59.4, longitude: 24.7)
        let inputs = t.apply(to: RewardInputs(epoch: epoch, nodes: [RewardNodeInput(node: id, position: pos, uptimeSeconds: 1, lifetimeSeconds: 1, quality: 0.9)], demand: []))
        #expect(inputs.demand == [DemandPoint(position: pos, participants: 6)])
        let row = RewardLedger(inputs, parameters: .standard).row(for: id.description)!
        #expect(row.dataSuppliedMB > 0 && row.reward > 0 && row.sessions == 2 && row.location == 1)
    }

    @Test func digestIsOrderIndependentAndGCDropsOldEpochs() {
        let items = (0..<20).map { i in signed(receipt(start: epochStart + UInt64(i) * E + 100, end: epochStart + UInt64(i) * E + 900)) }
        var x = ReceiptSet(), y = ReceiptSet()
        for r in items { x.insert(r) }
        for r in items.reversed() { y.insert(r) }
        #expect(x.digest == y.digest && x.count == 20)
        #expect(x.collectGarbage(oldestKept: epoch + 5).count == 5)
        #expect(x.count == 15 && x.epochs.first == epoch + 5 && x.digest != y.digest)
        #expect(x.receipts(epoch: epoch + 7, node: nodeKey.peerID).count == 1)
        #expect(x.receipts(epoch: epoch + 7, node: otherKey.peerID).isEmpty)
    }
}
