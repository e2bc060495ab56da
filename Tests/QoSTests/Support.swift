import Foundation
import Identity
@testable import QoS

/// Deterministic keys and a small network's bundles, for the assignment, ledger and
/// aggregation tests.
enum Net {
    static func key(_ i: Int) -> Ed25519KeyPair {
        var seed = [UInt8](repeating: 0, count: 32)
        seed[0] = UInt8(i & 0xff)
        seed[1] = UInt8(i >> 8)
        seed[31] = 0x51
        return try! Ed25519KeyPair(seed: seed)
    }

    static let schedule = QoSSchedule(epochSeconds: 40, testSeconds: 30, sampleIntervalMs: 2000)

    /// Counts for a report whose every interval had media and whose three metrics were good
    /// in the given shares.
    static func counts(b: Double, l: Double, f: Double, intervals: Int = 15) -> ScoreCounts {
        func good(_ x: Double) -> Int { min(intervals - 1, Int((x * Double(intervals)).rounded())) }
        return ScoreCounts(intervals: intervals, samples: intervals, bitrateGood: good(b), lossGood: min(intervals, Int((f * Double(intervals)).rounded())), latencyGood: good(l))
    }

    static func report(_ prover: Ed25519KeyPair, _ c: ScoreCounts) -> QoSReport { report(NodeKey(prover), c) }

    static func report(_ prover: NodeKey, _ c: ScoreCounts, implausible: Bool = false) -> QoSReport {
        QoSReport(prover: prover, outcome: c.samples == 0 ? .noAnswer : .completed, counts: c, locationImplausible: implausible,
                  samplesHash: c.samples == 0 ? [] : [UInt8](repeating: 7, count: 16))
    }

    /// Bundles of `epoch` for every node in `nodes`: a ticket for the next epoch, and a report
    /// on every prover the node is assigned in `aggregate` (scores from `score`).
    static func epochBundles(_ nodes: [Ed25519KeyPair], epoch: UInt64, aggregate: QoSAggregate?,
                             score: (_ challenger: Int, _ prover: Int) -> ScoreCounts? = { _, _ in counts(b: 0.9, l: 0.9, f: 1) },
                             implausible: (_ challenger: Int, _ prover: Int) -> Bool = { _, _ in false }) -> [SignedQoSBundle] {
        let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { (NodeKey($1), $0) })
        return nodes.enumerated().map { i, key in
            var reports: [QoSReport] = []
            if let aggregate {
                for p in aggregate.duties(of: NodeKey(key), epoch: epoch).provers {
                    // A node outside `nodes` (a newcomer) gets a healthy report.
                    guard let j = index[p] else { reports.append(report(p, counts(b: 0.9, l: 0.9, f: 1))); continue }
                    if let c = score(i, j) { reports.append(report(NodeKey(nodes[j]), c, implausible: implausible(i, j))) }
                }
            }
            return QoSBundle(epoch: epoch, challenger: NodeKey(key), schedule: schedule,
                             nextTicket: Ticket.prove(epoch: epoch + 1, key: key), reports: reports).signed(with: key)
        }
    }
}
