import Identity
import Registry
import Testing
@testable import Rewards

struct LivenessObserverTests {
    let epochs = RewardEpochs(epochSeconds: 100)
    let berlin = GeoPoint(latitude: 52.52, longitude: 13.40)

    func sighting(_ i: Int, sessions: Int = 0) -> LivenessObserver.Sighting {
        .init(node: peer(i), position: berlin, activeSessions: sessions)
    }

    @Test func availabilityIsUptimeOverObservedLifetimeAndEpochsCloseAtTheirBoundary() {
        var o = LivenessObserver(epochs: epochs, maxGapMs: 20_000, forgetAfterMs: 10_000_000)
        var closed: [RewardInputs] = []
        // Epoch 10 = [1,000,000, 1,100,000) ms. Node 1 is live at every 10 s sample; node 2 in
        // every other sample; node 3 appears half-way.
        for (k, t) in stride(from: UInt64(1_000_000), through: 1_200_000, by: 10_000).enumerated() {
            var live = [sighting(1, sessions: 4)]
            if k % 2 == 0 { live.append(sighting(2)) }
            if t >= 1_050_000 { live.append(sighting(3)) }
            closed += o.observe(live, atMs: t)
        }
        #expect(closed.map(\.epoch) == [10, 11])
        let e10 = RewardLedger(closed[0], parameters: .standard)
        let n1 = e10.row(for: peer(1).description)!, n2 = e10.row(for: peer(2).description)!, n3 = e10.row(for: peer(3).description)!
        #expect(n1.lifetimeSeconds == 100 && n1.uptimeSeconds == 100 && n1.availability == 1)
        #expect(n2.lifetimeSeconds == 100 && n2.uptimeSeconds == 50 && n2.availability == 0.5)
        #expect(n3.lifetimeSeconds == 50 && n3.availability == 1)
        // Demand: node 1 declared 4 sessions all along (its mean), at its position.
        #expect(closed[0].demand == [DemandPoint(position: berlin, participants: 4)])
        // Lifetime keeps growing across epochs.
        let e11 = RewardLedger(closed[1], parameters: .standard)
        #expect(e11.row(for: peer(1).description)!.lifetimeSeconds == 200)
        #expect(o.provisional()?.epoch == 12)
    }

    @Test func timeThisNodeWasNotWatchingCreditsNobody() {
        var o = LivenessObserver(epochs: epochs, maxGapMs: 20_000, forgetAfterMs: 10_000_000)
        _ = o.observe([sighting(1)], atMs: 1_000_000)
        _ = o.observe([sighting(1)], atMs: 1_010_000)
        // The observing node was down for 60 s.
        _ = o.observe([sighting(1)], atMs: 1_070_000)
        _ = o.observe([sighting(1)], atMs: 1_080_000)
        let closed = o.observe([], atMs: 1_100_000)
        let row = RewardLedger(closed[0], parameters: .standard).row(for: peer(1).description)!
        #expect(row.lifetimeSeconds == 40 && row.uptimeSeconds == 40)
        // Samples from the past (a clock stepped back) are ignored.
        #expect(o.observe([sighting(1)], atMs: 1_050_000).isEmpty)
    }

    @Test func skippedEpochsCloseWithoutNodesAndForgottenNodesStartOver() {
        var o = LivenessObserver(epochs: epochs, maxGapMs: 20_000, forgetAfterMs: 150_000)
        _ = o.observe([sighting(1), sighting(2)], atMs: 1_000_000)
        _ = o.observe([sighting(1)], atMs: 1_010_000)
        // No sample for three epochs.
        let closed = o.observe([sighting(1)], atMs: 1_350_000)
        #expect(closed.map(\.epoch) == [10, 11, 12])
        #expect(closed[0].nodes.count == 2)
        #expect(closed[1].nodes.isEmpty && closed[2].nodes.isEmpty)
        // Node 2 was last seen 350 s ago, beyond forgetAfterMs: forgotten.
        #expect(o.nodeCount == 1)
    }
}
