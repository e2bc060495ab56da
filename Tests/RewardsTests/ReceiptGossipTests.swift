import Gossipsub
import Identity
import RegistryGossip
import Testing
@testable import Rewards

/// `drtc/receipts/1` validation (Specs/rewards.md "Data supplied").
struct ReceiptGossipTests {
    let node = try! Ed25519KeyPair(seed: Array(repeating: 1, count: 32))
    let orchestrator = try! Ed25519KeyPair(seed: Array(repeating: 2, count: 32))
    let epoch: UInt64 = 58_831_234

    func signed(epochSeconds: UInt32 = 30, epoch e: UInt64? = nil, countersign: Bool = true) -> SignedSessionReceipt {
        let e = e ?? epoch
        let start = e * UInt64(epochSeconds) * 1000
        let r = SessionReceipt(node: node.publicKeyBytes, orchestrator: orchestrator.publicKeyBytes, room: "r", epochSeconds: epochSeconds, epoch: e,
                               startMs: start, endMs: start + 10_000, role: .member, publishersCenti: 100, viewersCenti: 100,
                               tokenDigest: SessionReceipt.tokenDigest(tokenHashes: []), bytesForwarded: 0)
        let s = SignedSessionReceipt.sign(r, key: node)
        return countersign ? s.countersigned(by: orchestrator) : s
    }

    func verdict(_ r: SignedSessionReceipt, from author: Ed25519KeyPair? = nil, nowEpoch: UInt64? = nil) -> ValidationResult {
        let now = (nowEpoch ?? epoch + 1) * 30_000 + 500
        let message = GossipMessage(from: (author ?? orchestrator).peerID.bytes, data: r.encoded, topic: ReceiptGossip.topic)
        return ReceiptGossip.validate(message, nowMs: now, epochSeconds: 30).0
    }

    @Test func acceptsACountersignedReceiptFromItsOrchestrator() {
        #expect(verdict(signed()) == .accept)
        #expect(verdict(signed(), nowEpoch: epoch + 2) == .accept)
    }

    @Test func refusesWhatGossipMustNotCarry() {
        #expect(verdict(signed(countersign: false)) == .reject("receipt_not_countersigned"))
        #expect(verdict(signed(), from: node) == .reject("receipt_wrong_publisher"))
        #expect(verdict(signed(), nowEpoch: epoch + 3) == .reject("receipt_wrong_epoch"))
        #expect(verdict(signed(epochSeconds: 60, epoch: epoch / 2)) == .reject("receipt_bad_schedule"))
        var bytes = signed().encoded
        bytes[bytes.count - 1] ^= 1
        let message = GossipMessage(from: orchestrator.peerID.bytes, data: bytes, topic: ReceiptGossip.topic)
        #expect(ReceiptGossip.validate(message, nowMs: (epoch + 1) * 30_000, epochSeconds: 30).0 == .reject("receipt_bad_orchestrator_signature"))
    }
}
