import Foundation
import HTTPAPI
import Identity
import Logging
@testable import Node
import QoS
import Registry
import Testing

@Suite struct QoSServiceTests {
    let schedule = QoSSchedule(epochSeconds: 40, testSeconds: 30, sampleIntervalMs: 2000)

    func bundle(_ key: Ed25519KeyPair, epoch: UInt64, prover: Ed25519KeyPair, good: Int) -> SignedQoSBundle {
        let counts = ScoreCounts(intervals: 15, samples: 15, bitrateGood: min(14, good), lossGood: good, latencyGood: min(14, good))
        return QoSBundle(epoch: epoch, challenger: NodeKey(key), schedule: schedule, nextTicket: Ticket.prove(epoch: epoch + 1, key: key),
                         reports: [QoSReport(prover: NodeKey(prover), outcome: .completed, counts: counts, samplesHash: [UInt8](repeating: 1, count: 16))])
            .signed(with: key)
    }

    /// Concurrent merges are group-committed; equivocations are kept (two per challenger and
    /// epoch); a reopened store holds exactly what was acknowledged, with the same digest, and
    /// garbage collection drops epochs past the horizon from memory and disk.
    @Test func mergesSurviveReopenAndOldEpochsAreCollected() async throws {
        let dir = tempDir("qos")
        let keys = (0..<20).map { _ in Ed25519KeyPair.generate() }
        let nowEpoch: UInt64 = 1_000_000
        let clock: @Sendable () -> UInt64 = { nowEpoch * 40_000 + 1000 }
        var digest = ""
        do {
            let service = try QoSService(directory: dir, schedule: schedule, metrics: DrtcMetrics(), logger: Logger(label: "test"), clock: clock)
            let outcomes = try await withThrowingTaskGroup(of: [QoSLedger.InsertOutcome].self) { group in
                for (i, key) in keys.enumerated() {
                    group.addTask {
                        let old = try await service.merge([bundle(key, epoch: nowEpoch - 100, prover: keys[(i + 1) % 20], good: 15)])
                        let new = try await service.merge([bundle(key, epoch: nowEpoch - 1, prover: keys[(i + 1) % 20], good: 15)])
                        let again = try await service.merge([bundle(key, epoch: nowEpoch - 1, prover: keys[(i + 1) % 20], good: 15)])
                        let lie = try await service.merge([bundle(key, epoch: nowEpoch - 1, prover: keys[(i + 1) % 20], good: 3)])
                        return old + new + again + lie
                    }
                }
                var all: [QoSLedger.InsertOutcome] = []
                for try await o in group { all += o }
                return all
            }
            #expect(outcomes.filter { $0 == .added(evicted: nil) }.count == 40)
            #expect(outcomes.filter { $0 == .duplicate }.count == 20)
            #expect(outcomes.filter { $0 == .equivocation(evicted: nil) }.count == 20)
            #expect(service.withLedger { $0.count } == 60)
            #expect(service.aggregate().equivocators.count == 20)
            digest = service.digest()
            service.close()
        }
        let reopened = try QoSService(directory: dir, schedule: schedule, metrics: DrtcMetrics(), logger: Logger(label: "test"), clock: clock)
        #expect(reopened.digest() == digest)
        #expect(reopened.withLedger { $0.count } == 60)
        reopened.collectGarbage()
        #expect(reopened.withLedger { $0.epochs } == [nowEpoch - 1])
        reopened.close()
        let again = try QoSService(directory: dir, schedule: schedule, metrics: DrtcMetrics(), logger: Logger(label: "test"), clock: clock)
        #expect(again.withLedger { $0.count } == 40)
        again.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Samples of the node's own reports are kept and served by hash.
    @Test func ownSamplesAreKeptByHash() throws {
        let dir = tempDir("qos-samples")
        let service = try QoSService(directory: dir, schedule: schedule, metrics: DrtcMetrics(), logger: Logger(label: "test"))
        let series = SampleSeries(intervalMs: 2000, samples: (0..<15).map { QoSSample(bitrateBps: 1_000_000 + UInt64($0), lossPpm: 0, rttUs: 900, jitterUs: 10) })
        service.saveSamples(series, epoch: 5)
        #expect(service.samples(hash: series.hash) == series)
        #expect(service.samples(hash: [UInt8](repeating: 0, count: 16)) == nil)
        service.close()
        try? FileManager.default.removeItem(atPath: dir)
    }
}
