import Foundation
import HTTPAPI
import Identity
import Logging
@testable import Node
import Registry
import Rewards
import Testing

@Suite struct ReceiptServiceTests {
    static let epochSeconds: UInt32 = 30

    func receipt(node: Ed25519KeyPair, orchestrator: Ed25519KeyPair, epoch: UInt64, room: String) -> SignedSessionReceipt {
        let start = epoch * UInt64(Self.epochSeconds) * 1000
        let r = SessionReceipt(node: node.publicKeyBytes, orchestrator: orchestrator.publicKeyBytes, room: room, epochSeconds: Self.epochSeconds,
                               epoch: epoch, startMs: start + 1_000, endMs: start + 20_000, role: .origin, publishersCenti: 100, viewersCenti: 200,
                               tokenDigest: SessionReceipt.tokenDigest(tokenHashes: [SHA256.hash(Array(room.utf8))]), bytesForwarded: 0)
        return SignedSessionReceipt.sign(r, key: node).countersigned(by: orchestrator)
    }

    /// Concurrent merges are group-committed and deduplicated; a reopened store holds exactly
    /// what was acknowledged, with the same digest; garbage collection drops epochs past the
    /// horizon from memory and disk.
    @Test func mergesSurviveReopenAndOldEpochsAreCollected() async throws {
        let dir = tempDir("receipts")
        let orchestrator = Ed25519KeyPair.generate()
        let nodes = (0..<16).map { _ in Ed25519KeyPair.generate() }
        let nowEpoch: UInt64 = 2_000_000
        let clock: @Sendable () -> UInt64 = { nowEpoch * UInt64(Self.epochSeconds) * 1000 + 5_000 }
        func open() throws -> ReceiptService {
            try ReceiptService(directory: dir, epochSeconds: Self.epochSeconds, horizonEpochs: 72, metrics: DrtcMetrics(),
                               logger: Logger(label: "test"), clock: clock)
        }
        var digest = ""
        do {
            let service = try open()
            let added = try await withThrowingTaskGroup(of: [Bool].self) { group in
                for (i, key) in nodes.enumerated() {
                    group.addTask {
                        let old = receipt(node: key, orchestrator: orchestrator, epoch: nowEpoch - 100, room: "r\(i)")
                        let new = receipt(node: key, orchestrator: orchestrator, epoch: nowEpoch - 1, room: "r\(i)")
                        return try await service.merge([old]) + service.merge([new, new]) + service.merge([old])
                    }
                }
                var all: [Bool] = []
                for try await a in group { all += a }
                return all
            }
            #expect(added.filter { $0 }.count == 32)
            #expect(service.withSet { $0.count } == 32)
            #expect(service.withSet { $0.receipts(epoch: nowEpoch - 1, node: nodes[3].peerID).count } == 1)
            digest = service.digest()
            service.close()
        }
        let reopened = try open()
        #expect(reopened.digest() == digest)
        #expect(reopened.withSet { $0.count } == 32)
        reopened.collectGarbage()
        #expect(reopened.withSet { $0.epochs } == [nowEpoch - 1])
        reopened.close()
        let again = try open()
        #expect(again.withSet { $0.count } == 16)
        // The ledger's inputs: each node's b of the epoch, from its one receipt.
        let totals = again.withSet { $0.totals(epoch: nowEpoch - 1, epochSeconds: Self.epochSeconds, streamBitrateKbps: 700) }
        #expect(totals.epochMB.count == 16 && totals.epochMB.values.allSatisfy { abs($0 - 700.0 * 60 * 2 * (19.0 / 60) / 8 / 1000) < 1e-9 })
        again.close()
    }
}
