import Identity
import Registry
import Rewards
import Testing
@testable import QoS

/// Availability from QoS tests answered, and the rest of a reward ledger's QoS evidence
/// (Specs/rewards.md "Availability: QoS tests answered").
@Suite struct RewardEvidenceTests {
    static let dead = ScoreCounts(intervals: 15, samples: 0, bitrateGood: 0, lossGood: 0, latencyGood: 0)

    func availability(_ sim: Simulation, _ node: Int) -> TestAvailability? {
        sim.aggregate.testAvailability(upTo: sim.epoch)[NodeKey(sim.nodes[node])]
    }

    @Test func nodesThatAnswerEveryTestHaveAOfOneAndOneThatNeverAnswersZero() {
        var sim = Simulation(6)
        for _ in 0..<4 { sim.run { _, p in p == 5 ? Self.dead : Net.counts(b: 0.9, l: 0.9, f: 1) } }
        for i in 0..<5 {
            let a = availability(sim, i)!
            // Six nodes: everyone is active every epoch (p = 1), tested in each of 101…104.
            #expect(a.firstTicketEpoch == 101 && a.expected == 4 && a.answered == 4 && a.value == 1)
        }
        let never = availability(sim, 5)!
        #expect(never.expected == 4 && never.answered == 0 && never.value == 0)
    }

    @Test func aNodeThatAnswersHalfItsEpochsHasAvailabilityOneHalf() {
        var sim = Simulation(6)
        for k in 0..<6 { sim.run { _, p in p == 2 && k % 2 == 1 ? Self.dead : Net.counts(b: 0.9, l: 0.9, f: 1) } }
        #expect(availability(sim, 2)!.value == 0.5)
        // A test that streamed two thirds of its intervals counts two thirds.
        var partial = Simulation(6)
        for _ in 0..<3 {
            partial.run { _, p in p == 3 ? ScoreCounts(intervals: 15, samples: 10, bitrateGood: 9, lossGood: 10, latencyGood: 9) : Net.counts(b: 0.9, l: 0.9, f: 1) }
        }
        #expect(abs(availability(partial, 3)!.value - 2.0 / 3) < 1e-12)
    }

    @Test func absenceAccruesLifetime() {
        var sim = Simulation(6)
        sim.run()
        sim.run()
        // Node 4 goes down after 102: its ticket for 103 was revealed, so it is tested and
        // does not answer; from 104 on it reveals nothing, and its lifetime keeps growing.
        sim.run(silent: [4]) { _, p in p == 4 ? Self.dead : Net.counts(b: 0.9, l: 0.9, f: 1) }
        #expect(availability(sim, 4)!.value == 2.0 / 3)
        for _ in 0..<3 { sim.run(silent: [4]) }
        let a = availability(sim, 4)!
        #expect(a.expected == 6 && a.answered == 2 && a.value == 1.0 / 3)
        // The ledgers: in 103 it had a ticket (a row, A = 2/3); in 106 it showed no life (no row).
        let agg = sim.aggregate
        let key = NodeKey(sim.nodes[4]).peerID.description
        let l103 = RewardLedger(QoSRewardEvidence.inputs(epoch: 103, aggregate: agg, epochSeconds: 40, position: { _ in nil }), parameters: .standard)
        #expect(l103.row(for: key)?.availability == 0.666667)
        #expect(l103.row(for: key)?.lifetimeSeconds == 120)
        let l106 = RewardLedger(QoSRewardEvidence.inputs(epoch: 106, aggregate: agg, epochSeconds: 40, position: { _ in nil }), parameters: .standard)
        #expect(l106.rows.count == 5 && l106.row(for: key) == nil)
    }

    /// Two replicas holding the same bundles, received in different orders, compute
    /// byte-identical ledgers, with V of the epoch, A from tests answered, and positions the
    /// tests found implausible dropped (L = C = 0, not counted in the others' ρ_M).
    @Test func replicasWithEqualQoSDigestsComputeByteIdenticalLedgers() {
        var sim = Simulation(7)
        for k in 0..<5 {
            sim.run(implausible: [6]) { c, p in
                if p == 1 && k % 2 == 0 { return Self.dead }
                return Net.counts(b: Double((c + p) % 5) / 5, l: 0.8, f: p == 2 ? 0.5 : 1)
            }
        }
        let all = Array(sim.ledger.bundles.values)
        var a = QoSLedger(), b = QoSLedger()
        for x in all.shuffled() { a.insert(x) }
        for x in all.reversed() { b.insert(x) }
        #expect(a.digest == b.digest)
        // All seven declare positions within 100 km of Berlin; demand there.
        let berlin = GeoPoint(latitude: 52.52, longitude: 13.40)
        let positions = Dictionary(uniqueKeysWithValues: sim.nodes.enumerated().map {
            (NodeKey($1).peerID, GeoPoint(latitude: berlin.latitude + Double($0) * 0.05, longitude: berlin.longitude))
        })
        let demand = [DemandPoint(position: berlin, participants: 12)]
        func ledger(_ set: QoSLedger) -> RewardLedger {
            let agg = QoSAggregate.compute(set, schedule: Net.schedule)
            return RewardLedger(QoSRewardEvidence.inputs(epoch: sim.epoch, aggregate: agg, epochSeconds: 40, position: { positions[$0] }, demand: demand),
                                parameters: .standard)
        }
        let la = ledger(a), lb = ledger(b)
        #expect(la.csv == lb.csv && la.digest == lb.digest)
        #expect(la.rows.count == 7)
        func row(_ i: Int) -> RewardRow { la.row(for: NodeKey(sim.nodes[i]).peerID.description)! }
        // Node 1 answered in 2 of 5 epochs (k = 1, 3).
        #expect(row(1).availability == 0.4)
        #expect(row(0).availability == 1 && row(0).quality != nil)
        // V is the epoch's measurement, not the smoothed score.
        let measured = QoSAggregate.compute(a, schedule: Net.schedule).epochs[sim.epoch]!.measurements[NodeKey(sim.nodes[2])]!.score
        #expect(row(2).quality == (measured * 1e6).rounded() / 1e6)
        // Node 6's position is implausible: no L or C, and the six others share their radius.
        #expect(row(6).location == 0 && row(6).coverage == 0 && row(6).nodesNearby == 0)
        #expect(row(0).nodesNearby == 6 && row(0).location > 0)
    }
}
