import Foundation
import Gossipsub
import Identity
import Registry
import RegistryGossip
import Testing
@testable import QoS

@Suite struct BundleTests {
    let challenger = Net.key(10), prover = Net.key(11)

    func bundle(epoch: UInt64 = 50, reports: [QoSReport]? = nil) -> QoSBundle {
        QoSBundle(epoch: epoch, challenger: NodeKey(challenger), schedule: Net.schedule,
                  nextTicket: Ticket.prove(epoch: epoch + 1, key: challenger),
                  reports: reports ?? [Net.report(prover, Net.counts(b: 0.8, l: 0.9, f: 1))])
    }

    /// Rebuilds a signed bundle around a tampered body, signed by `key`.
    func resigned(_ w: Drtc_Qos_V1_QosBundle, key: Ed25519KeyPair) -> [UInt8] {
        let body: [UInt8] = try! w.serializedBytes()
        return SignedQoSBundle.encode(body: body, signature: key.sign(SignedQoSBundle.signingPrefix + body))
    }

    @Test func signVerifyRoundTrip() throws {
        let signed = bundle().signed(with: challenger)
        let back = try SignedQoSBundle.verify(encoded: signed.encoded)
        #expect(back.bundle == signed.bundle)
        #expect(back.syncID == signed.syncID)
        #expect(back.nextBeta == Ticket.verify(proof: signed.bundle.nextTicket, node: NodeKey(challenger), epoch: 51))
        #expect(signed.encoded.count < 400, "one report and a ticket: \(signed.encoded.count) bytes")
    }

    @Test func forgedAndTamperedBundlesAreRejected() {
        let signed = bundle().signed(with: challenger)
        var bytes = signed.encoded
        bytes[bytes.count - 1] ^= 1
        #expect(throws: QoSRejection.badSignature) { try SignedQoSBundle.verify(encoded: bytes) }
        // Signed by someone else in the challenger's name.
        #expect(throws: QoSRejection.badSignature) { try SignedQoSBundle.verify(encoded: resigned(bundle().wire, key: Net.key(12))) }
        // A changed score under the original signature.
        var w = bundle().wire
        w.reports[0].lossGood = 3
        let body: [UInt8] = try! w.serializedBytes()
        #expect(throws: QoSRejection.badSignature) { try SignedQoSBundle.verify(encoded: SignedQoSBundle.encode(body: body, signature: signed.signature)) }
        #expect(throws: QoSRejection.self) { try SignedQoSBundle.verify(encoded: [1, 2, 3]) }
        #expect(throws: QoSRejection.tooLarge) { try SignedQoSBundle.verify(encoded: [UInt8](repeating: 0, count: 20_000)) }
    }

    /// A ticket must be the challenger's ECVRF proof for the next epoch; one that is not
    /// reveals nothing (the bundle is still a valid, signed set item, Specs/qos.md).
    @Test func ticketsMustBeTheChallengersProofForTheNextEpoch() throws {
        var w = bundle().wire
        w.nextTicket = Data(Ticket.prove(epoch: 50, key: challenger))  // this epoch's, not the next
        #expect(try SignedQoSBundle.verify(encoded: resigned(w, key: challenger)).nextBeta == nil)
        w.nextTicket = Data(Ticket.prove(epoch: 51, key: prover))  // someone else's
        #expect(try SignedQoSBundle.verify(encoded: resigned(w, key: challenger)).nextBeta == nil)
        w.nextTicket = Data([1, 2, 3])
        #expect(throws: QoSRejection.self) { try SignedQoSBundle.verify(encoded: resigned(w, key: challenger)) }
        w.nextTicket = Data(Ticket.prove(epoch: 51, key: challenger))
        #expect(try SignedQoSBundle.verify(encoded: resigned(w, key: challenger)).nextBeta != nil)
    }

    @Test func inconsistentReportsAreRejected() {
        func rejects(_ edit: (inout Drtc_Qos_V1_QosReport) -> Void) -> Bool {
            var w = bundle().wire
            edit(&w.reports[0])
            do { _ = try SignedQoSBundle.verify(encoded: resigned(w, key: challenger)); return false } catch { return true }
        }
        #expect(rejects { $0.intervals = 14 }, "intervals must match the schedule (30 s / 2 s)")
        #expect(rejects { $0.samples = 16 })
        #expect(rejects { $0.lossGood = 15; $0.samples = 14 })
        #expect(rejects { $0.bitrateGood = 15 }, "the first sample is never good")
        #expect(rejects { $0.outcome = .noAnswer }, "no answer with samples")
        #expect(rejects { $0.outcome = .stopped }, "stopped with every interval")
        #expect(rejects { $0.outcome = .unspecified })
        #expect(rejects { $0.samplesHash = Data([1, 2]) })
        #expect(rejects { $0.prover = Data(self.challenger.publicKeyBytes) })
        #expect(!rejects { _ in })
        var twice = bundle().wire
        twice.reports.append(twice.reports[0])
        #expect(throws: QoSRejection.malformed("reports not strictly ascending by prover")) { try SignedQoSBundle.verify(encoded: resigned(twice, key: challenger)) }
        var many = bundle().wire
        many.reports = (0..<65).map { i in Net.report(Net.key(100 + i), Net.counts(b: 1, l: 1, f: 1)).wire }.sorted { $0.prover.lexicographicallyPrecedes($1.prover) }
        #expect(throws: QoSRejection.self) { try SignedQoSBundle.verify(encoded: resigned(many, key: challenger)) }
        var schedule = bundle().wire
        schedule.testSeconds = 39
        #expect(throws: QoSRejection.self) { try SignedQoSBundle.verify(encoded: resigned(schedule, key: challenger)) }
    }

    /// Fixtures/qos/signed-bundle.json: a bundle signed by a fixed key, byte for byte.
    @Test func signedBundleVector() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/qos/signed-bundle.json")
        let key = Net.key(1), p1 = Net.key(2), p2 = Net.key(3)
        let samples = SampleSeries(intervalMs: 2000, samples: (0..<15).map { i in
            QoSSample(bitrateBps: 1_000_000 + UInt64(i) * 1000, lossPpm: i == 7 ? 80_000 : 0, rttUs: 1_500 + UInt32(i), jitterUs: 300)
        })
        var report = Net.report(p1, ScoreCounts.compute(samples.samples))
        report.samplesHash = samples.hash
        report.minRttUs = 1_500
        let bundle = QoSBundle(epoch: 43_264_000, challenger: NodeKey(key), schedule: Net.schedule,
                               nextTicket: Ticket.prove(epoch: 43_264_001, key: key),
                               reports: [report, QoSReport.failed(NodeKey(p2), .noAnswer, intervals: 15)])
        let signed = bundle.signed(with: key)
        let vector: [String: Any] = [
            "description": "SignedQosBundle (Specs/qos.proto) by the key with the given seed; samples is the QosSamples the first report's samples_hash commits to",
            "seed": Hex.encode(key.seed), "challenger": key.peerID.description, "encoded": Hex.encode(signed.encoded),
            "syncId": Hex.encode(signed.syncID.bytes), "samples": Hex.encode(samples.encoded), "samplesHash": Hex.encode(samples.hash),
        ]
        if ProcessInfo.processInfo.environment["DRTC_WRITE_FIXTURES"] == "1" {
            try JSONSerialization.data(withJSONObject: vector, options: [.prettyPrinted, .sortedKeys]).write(to: url)
        }
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: String]
        #expect(stored["encoded"] == Hex.encode(signed.encoded))
        #expect(stored["samples"] == Hex.encode(samples.encoded))
        let decoded = try SignedQoSBundle.verify(encoded: Hex.decode(stored["encoded"]!)!)
        #expect(Set(decoded.bundle.reports.map(\.outcome)) == [.completed, .noAnswer])
        #expect(Hex.encode(decoded.syncID.bytes) == stored["syncId"])
        #expect(decoded.bundle.reports.contains { $0.samplesHash == Hex.decode(stored["samplesHash"]!)! })
    }

    @Test func signallingBindsOfferAndAnswerToBothKeys() throws {
        let request = TestSignalling.Request(epoch: 9, challenger: NodeKey(challenger), prover: NodeKey(prover), offer: "v=0 offer")
        let signedRequest = TestSignalling.sign(request, key: challenger)
        let received = try TestSignalling.verifyRequest(signedRequest)
        #expect(received.offer == "v=0 offer" && received.hash.count == 32)
        #expect(throws: TestSignalling.Failure.self) { try TestSignalling.verifyRequest(TestSignalling.sign(request, key: prover)) }
        let response = TestSignalling.Response(to: received, status: .accepted, answer: "v=0 answer")
        let back = try TestSignalling.verifyResponse(TestSignalling.sign(response, key: prover), to: received)
        #expect(back.answer == "v=0 answer" && back.status == .accepted)
        // Signed by the challenger itself, or answering another request: refused.
        #expect(throws: TestSignalling.Failure.self) { try TestSignalling.verifyResponse(TestSignalling.sign(response, key: challenger), to: received) }
        var other = received
        other.hash = SHA256.hash([1])
        #expect(throws: TestSignalling.Failure.self) { try TestSignalling.verifyResponse(TestSignalling.sign(response, key: prover), to: other) }
    }
}

@Suite struct LedgerTests {
    @Test func equivocationKeepsTheTwoSmallestWhateverTheOrder() throws {
        let c = Net.key(20)
        let variants = (0..<6).map { i in
            QoSBundle(epoch: 5, challenger: NodeKey(c), schedule: Net.schedule,
                      reports: [Net.report(Net.key(30 + i), Net.counts(b: 1, l: 1, f: 1))]).signed(with: c)
        }
        let smallest = Set(variants.map(\.syncID).sorted().prefix(2))
        var orders = [variants, variants.reversed(), variants.shuffled(), variants.shuffled()]
        orders.append(Array(variants[2...]) + Array(variants[..<2]))
        var digests = Set<[UInt8]>()
        for order in orders {
            var ledger = QoSLedger()
            var outcomes: [QoSLedger.InsertOutcome] = []
            for b in order { outcomes.append(ledger.insert(b)) }
            #expect(outcomes.first == .added(evicted: nil))
            #expect(outcomes.dropFirst().allSatisfy { if case .added = $0 { false } else { true } })
            #expect(Set(ledger.bundles(epoch: 5).map(\.syncID)) == smallest)
            digests.insert(ledger.digest)
        }
        #expect(digests.count == 1)
        var ledger = QoSLedger()
        #expect(ledger.insert(variants[0]) == .added(evicted: nil))
        #expect(ledger.insert(variants[0]) == .duplicate)
    }

    @Test func garbageCollectionDropsOldEpochs() {
        let k = Net.key(1)
        var ledger = QoSLedger()
        for e in UInt64(1)...10 { ledger.insert(QoSBundle(epoch: e, challenger: NodeKey(k), schedule: Net.schedule).signed(with: k)) }
        #expect(ledger.collectGarbage(oldestKept: 7).count == 6)
        #expect(ledger.epochs == [7, 8, 9, 10])
    }
}

@Suite struct QoSGossipTests {
    let schedule = Net.schedule
    let c = Net.key(40), p = Net.key(41)

    func message(_ b: SignedQoSBundle) -> GossipMessage { GossipMessage(data: b.encoded, topic: QoSGossip.topic) }

    func validate(_ b: SignedQoSBundle, at now: UInt64, ledger: QoSLedger = QoSLedger(), unassigned: Bool = false) -> ValidationResult {
        QoSGossip.validate(message(b), nowMs: now, schedule: schedule, outcome: { ledger.outcome(of: $0) }, unassigned: { _, _ in unassigned }).0
    }

    @Test func epochWindowReplaysAndPrematureReports() {
        let e: UInt64 = 1000
        let b = QoSBundle(epoch: e, challenger: NodeKey(c), schedule: schedule, reports: [Net.report(p, Net.counts(b: 1, l: 1, f: 1))]).signed(with: c)
        #expect(validate(b, at: schedule.testEndMs(e) + 5_000) == .accept)
        // A replay two epochs later, and a bundle from the future.
        #expect(validate(b, at: schedule.startMs(e + 3)) == .reject("qos_wrong_epoch"))
        #expect(validate(b, at: schedule.startMs(e) - 120_000) == .reject("qos_wrong_epoch"))
        // Reports before their test could have ended.
        #expect(validate(b, at: schedule.testStartMs(e)) == .reject("qos_premature"))
        // A ticket-only bundle may come early in its epoch.
        let ticket = QoSBundle(epoch: e, challenger: NodeKey(c), schedule: schedule, nextTicket: Ticket.prove(epoch: e + 1, key: c)).signed(with: c)
        #expect(validate(ticket, at: schedule.startMs(e) + 1000) == .accept)
        // Another network's schedule.
        let foreign = QoSBundle(epoch: e, challenger: NodeKey(c), schedule: .standard).signed(with: c)
        #expect(validate(foreign, at: schedule.startMs(e) + 1000) == .reject("qos_bad_schedule"))
    }

    @Test func unassignedPairsForgeriesAndEquivocation() {
        let e: UInt64 = 1000, now = schedule.testEndMs(e) + 1000
        let b = QoSBundle(epoch: e, challenger: NodeKey(c), schedule: schedule, reports: [Net.report(p, Net.counts(b: 1, l: 1, f: 1))]).signed(with: c)
        #expect(validate(b, at: now, unassigned: true) == .reject("qos_unassigned_pair"))
        var forged = b.encoded
        forged[20] ^= 0x40
        #expect(QoSGossip.validate(GossipMessage(data: forged, topic: QoSGossip.topic), nowMs: now, schedule: schedule, outcome: { _ in .added(evicted: nil) }).0 != .accept)
        var ledger = QoSLedger()
        ledger.insert(b)
        #expect(validate(b, at: now, ledger: ledger) == .accept, "a duplicate learned by sync is still forwarded")
        let second = QoSBundle(epoch: e, challenger: NodeKey(c), schedule: schedule, reports: [Net.report(p, Net.counts(b: 0, l: 0, f: 0))]).signed(with: c)
        #expect(validate(second, at: now, ledger: ledger) == .accept, "equivocation evidence spreads")
        ledger.insert(second)
        let third = QoSBundle(epoch: e, challenger: NodeKey(c), schedule: schedule, reports: [Net.report(p, Net.counts(b: 0.5, l: 0, f: 0))]).signed(with: c)
        let result = validate(third, at: now, ledger: ledger)
        #expect(result == .accept || result == .ignore("qos_equivocation_known"))
    }
}
