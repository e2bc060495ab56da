import Gossipsub
import RegistryGossip
import Identity
import QoS
import Registry
import Rewards
import Testing

@testable import Simulation

/// Scenario runs at 50–200 peers with assertions on their outcome (Specs/simulation.md).
/// Small and short enough for debug builds; the 10,000-peer figures come from drtc-bench.
@Suite struct SimulationTests {
    static func config(_ scenario: ScenarioName, peers: Int = 100, duration: Double = 30, seed: UInt64 = 7) -> SimConfig {
        var c = SimConfig(gossip: RegistryGossip.defaultParameters())
        c.scenario = scenario
        c.peers = peers
        c.durationSeconds = duration
        c.seed = seed
        c.link.loss = 0.01
        return c
    }

    static func run(_ c: SimConfig) -> SimReport { Simulator(config: c).run() }

    @Test func identicalConfigurationsGiveIdenticalReports() {
        let c = Self.config(.steady, peers: 60, duration: 15)
        let a = Self.run(c).json()
        let b = Self.run(c).json()
        #expect(a == b)
        var other = c
        other.seed = 8
        #expect(Self.run(other).json() != a)
    }

    /// Partitions run a window on separate threads; the report must not depend on how many
    /// there are, nor on the threads' interleaving. The join storm and churn exercise dials
    /// (handshakes cross partitions) and scenario actions between windows.
    @Test(arguments: [ScenarioName.steady, .joinStorm, .churn])
    func reportsDoNotDependOnPartitionsOrThreads(_ scenario: ScenarioName) {
        var c = Self.config(scenario, peers: 80, duration: 12)
        c.churnPerMinute = 0.3
        let one = Simulator(config: c).run().json()
        let three = Simulator(config: c, partitions: 3).run().json()
        let threaded = Simulator(config: c, partitions: 2).run(executor: PartitionExecutors.threaded(2)).json()
        // More partitions than threads, as `partitionCount` gives for large runs: each thread
        // takes the next partition left, so which thread runs which varies from window to window.
        let many = Simulator(config: c, partitions: 11).run(executor: PartitionExecutors.threaded(2)).json()
        #expect(one == three)
        #expect(one == threaded)
        #expect(one == many)
    }

    @Test func windowsStayBelowTheSmallestLinkDelay() {
        var link = LinkModel()
        link.latencyMs = 50
        link.jitterMs = 10
        #expect(Simulator.minimumLinkDelay(link) == 40_000)
        link.regionLatencyMs = LinkModel.worldRegionLatencyMs
        link.jitterMs = 2
        #expect(Simulator.minimumLinkDelay(link) == 8_000)
        link.jitterMs = 30
        #expect(Simulator.minimumLinkDelay(link) == 50)
    }

    @Test func steadyUpdatesReachEveryPeerWithinASecond() {
        let r = Self.run(Self.config(.steady, peers: 150, duration: 20))
        #expect(r.updates > 20)
        #expect(r.deliveryRatio == 1)
        #expect(r.convergence.p9999 > 0 && r.convergence.p9999 < 1)
        #expect(r.duplicates.mean < 2.5)  // the forward hold follows the links (4.3 with a fixed 5 ms)
        #expect(r.bytesPerPeerPerSecond.mean > 1_000 && r.bytesPerPeerPerSecond.mean < 40_000)
        #expect(r.finalAgreement == 1)
    }

    @Test func joinStormPeersCatchUpWithinFiveSeconds() {
        var c = Self.config(.joinStorm, peers: 120, duration: 20)
        c.sampleIntervalMs = 250
        let r = Self.run(c)
        #expect(r.outcome("joined") == 117)
        #expect(r.outcome("joinersNotCaughtUp") == 0)
        #expect((r.outcome("joinCatchUpMaxSeconds") ?? 99) <= 5)
        #expect(r.outcome("fullTableShareAtEnd") == 1)
        #expect((r.outcome("fullTableSeconds") ?? -1) >= 0)
    }

    @Test func churnKeepsDeliveringAndNewcomersCatchUp() {
        var c = Self.config(.churn, peers: 100, duration: 60)
        c.churnPerMinute = 0.1
        let r = Self.run(c)
        #expect((r.outcome("left") ?? 0) + (r.outcome("crashed") ?? 0) >= 8)
        #expect(r.outcome("joined") == (r.outcome("left") ?? 0) + (r.outcome("crashed") ?? 0))
        #expect(r.deliveryRatio >= 0.99)
        #expect(r.outcome("joinersNotCaughtUp") == 0)
        #expect((r.outcome("fullTableShareAtEnd") ?? 0) >= 0.95)
    }

    @Test func partitionSplitsTheTablesAndHealReunitesThem() {
        var c = Self.config(.partitionHeal, peers: 80, duration: 120)
        c.partitionAt = 0.2
        c.healAt = 0.4
        let r = Self.run(c)
        #expect((r.outcome("minAgreementDuringPartition") ?? 1) < 0.9)
        // News spreads by sync waves (SyncPolicy): seconds, not anti-entropy ticks.
        let heal = r.outcome("healSeconds") ?? -1
        #expect(heal >= 0 && heal <= 5)
        #expect(r.finalAgreement == 1)
    }

    @Test func floodAttackersAreGraylistedAndHonestDeliveryHolds() {
        var c = Self.config(.floodAttack, peers: 100, duration: 30)
        c.attackerShare = 0.1
        let r = Self.run(c)
        #expect(r.outcome("attackers") == 10)
        #expect(r.deliveryRatio >= 0.99)
        #expect((r.outcome("graylistedShare") ?? 0) >= 0.9)
    }

    @Test func eclipseAttemptLeavesTheVictimConnectedToHonestPeers() {
        let r = Self.run(Self.config(.eclipseAttempt, peers: 100, duration: 30))
        #expect((r.outcome("victimDeliveryRatio") ?? 0) >= 0.99)
        #expect((r.outcome("victimHonestOutboundMeshMin") ?? 0) >= 2)
        #expect((r.outcome("victimAttackerMeshShareMax") ?? 1) < 0.75)
    }

    /// A node announces itself when its mesh forms, and again when it regains a mesh it lost;
    /// a steady-state peer (already announced) must not take its first, empty reading for a
    /// loss: at 10,000 peers that re-announced everyone at once.
    @Test func announcePolicyIgnoresTheEmptyMeshBeforeTheFirstGraft() {
        var settled = AnnouncePolicy(isolated: false)
        let settledAnswers = [0, 3, 0, 2, 2].map { settled.shouldAnnounce(meshPeers: $0) }
        #expect(settledAnswers == [false, false, false, true, false])
        var fresh = AnnouncePolicy()
        let freshAnswers = [0, 1, 1].map { fresh.shouldAnnounce(meshPeers: $0) }
        #expect(freshAnswers == [false, true, false])
    }

    /// Settled connections above the maximum go inbound and non-mesh first; young ones are
    /// spared up to `maxPeers` of them, oldest surplus first; outbound young ones never go.
    @Test func trimSparesYoungConnectionsAndThePeersANodeChose() throws {
        func peer(_ i: Int) throws -> PeerID { try Ed25519KeyPair(seed: [UInt8](repeating: UInt8(i), count: 32)).peerID }
        var connections: [(peer: PeerID, outbound: Bool, ageMs: UInt64)] = []
        for i in 0..<10 { connections.append((try peer(i), true, 60_000)) }         // settled outbound (chosen)
        for i in 10..<15 { connections.append((try peer(i), false, 60_000)) }       // settled inbound, 10..11 in the mesh
        for i in 15..<35 { connections.append((try peer(i), false, UInt64(i) * 10)) } // young inbound, older with i
        connections.append((try peer(35), true, 100))                               // young outbound
        let mesh: Set<PeerID> = [try peer(0), try peer(10), try peer(11)]
        var rng = SplitMix64(seed: 1)
        let close = Set(DialPlanner.connectionsToClose(connections, mesh: mesh, maxPeers: 12, using: &rng))
        // Settled: 15 > 12, so 3 go: the inbound non-mesh ones (12, 13, 14).
        let expectedSettled = Set(try (12..<15).map(peer))
        // Young inbound: 20 > 12, so the 8 oldest go (27..34).
        let expectedYoung = Set(try (27..<35).map(peer))
        #expect(close == expectedSettled.union(expectedYoung))
    }

    @Test func syncPolicyRunsOneInitiatorAndCapsResponders() {
        var policy = SyncPolicy(maxInbound: 2)
        let first = policy.request(), second = policy.request()
        #expect(first && !second)
        policy.initiatorEnded(completed: true)
        let retry = policy.retryDue(), again = policy.retryDue()
        #expect(retry && !again, "the request made while a session ran is served once")
        policy.initiatorEnded(completed: false)
        let retried = policy.retryDue()
        #expect(retried, "a failed session is retried")
        policy.initiatorEnded(completed: true)
        let idle = policy.retryDue()
        #expect(!idle)
        let inbound = (0..<3).map { _ in policy.acceptInbound() }
        #expect(inbound == [true, true, false])
        policy.inboundEnded()
        let freed = policy.acceptInbound()
        #expect(freed)
    }

    @Test func jsonNumbersHaveOneFormat() {
        #expect(JSONWriter.format(0.1234567) == "0.123457")
        #expect(JSONWriter.format(2) == "2")
        #expect(JSONWriter.format(-1.5) == "-1.5")
        #expect(JSONWriter.format(.infinity) == "null")
    }
}

/// QoS in the simulator (Specs/simulation.md "QoS"): small, for debug builds.
@Suite struct QoSSimulationTests {
    static func config(_ scenario: ScenarioName, peers: Int = 30, attackers: Double = 0) -> SimConfig {
        var c = SimulationTests.config(scenario, peers: peers, duration: 125, seed: 11)
        c.qosSettings.schedule = QoSSchedule(epochSeconds: 40, testSeconds: 20, sampleIntervalMs: 5000)
        c.qosSettings.degradedShare = 0.2
        c.attackerShare = attackers
        return c
    }

    /// Every epoch: bundles reach every peer by gossip, nearly every active prover gets ≥ 3
    /// counted reports, degraded nodes score low; and the report is the same on any number of
    /// partitions.
    @Test func bundlesSpreadAndNodesAreMeasured() throws {
        let c = Self.config(.qos)
        let one = Simulator(config: c).run()
        let two = Simulator(config: c, partitions: 2).run(executor: PartitionExecutors.threaded(2))
        #expect(one.json() == two.json())
        let q = try #require(one.qos)
        #expect(q.epochs.count >= 2)
        #expect(q.deliveryRatio == 1)
        #expect(q.measuredShareOfActiveMean >= 0.9)
        #expect(q.measuredAtLeastOnceShare == 1)
        #expect(q.degradedDetectedShare == 1)
        #expect(q.honestMeanAbsError < 0.05)
        #expect(q.bytesPerPeerPerSecond.mean > 0)
        // The rewards take V and A from the run's QoS aggregate: everyone answered its tests
        // (degraded paths lose packets, not intervals).
        let rw = try #require(one.rewards)
        #expect(rw.evidence == "qos" && rw.nodes == 30 && rw.measuredNodes >= 27)
        #expect(rw.availabilityMean > 0.9 && rw.aboveMaximumUnitReward == 0)
    }

    /// Colluders (inflating each other, sinking or withholding on the others): at 10 % the
    /// medians hold for nearly every honest node; at a third, in a network this small (about
    /// six challengers per prover), some honest nodes are sunk, but colluders are still not
    /// inflated (README "Performance" has the 1,000-peer figures).
    @Test(arguments: [(0.1, 0.1), (0.33, 0.4)])
    func colludersAreOutvoted(_ share: Double, _ maxWrong: Double) throws {
        let r = Simulator(config: Self.config(.qosCollusion, attackers: share)).run()
        let q = try #require(r.qos)
        #expect(q.colluders == Int((30 * share).rounded()))
        #expect(q.honestWrongShare <= maxWrong, "\(q.honestWrongShare)")
        #expect(q.colluderInflatedShare <= 0.15, "\(q.colluderInflatedShare)")
    }
}

/// The rewards of a simulated epoch (Specs/simulation.md "Rewards").
@Suite struct SimRewardsTests {
    /// A small run's rewards (Specs/simulation.md "Rewards"): sane values in report.json and
    /// both charts in report.html, one bar per bin and one dot per measured node.
    @Test func aRunsRewardsAreSaneAndCharted() throws {
        let r = SimulationTests.run(SimulationTests.config(.steady, peers: 100, duration: 10))
        let rw = try #require(r.rewards)
        #expect(rw.evidence == "seeded" && rw.nodes == 100 && rw.sessions == 300)
        #expect(rw.nodesWithSessions > 30 && rw.reward.max > 0 && rw.totalReward > 0)
        #expect(rw.aboveMaximumUnitReward == 0)
        #expect(rw.scatter.count == rw.measuredNodes && rw.scatter.allSatisfy { $0.reward >= 0 && (0...1).contains($0.v) })
        #expect(rw.histogram.count == 20 && rw.histogram.reduce(0) { $0 + $1.nodes } == rw.nodes - rw.zeroRewardNodes)
        // Reward rises with V on average: the best-measured fifth earns more than the nodes below 0.4.
        let low = rw.byQuality.prefix(2).filter { $0.nodes > 0 }
        let top = try #require(rw.byQuality.last)
        #expect(!low.isEmpty && top.nodes > 0)
        #expect(low.allSatisfy { top.meanReward > $0.meanReward && top.meanUnitReward > $0.meanUnitReward })
        let json = r.json()
        #expect(json.contains("\"rewards\":{\"epoch\":") && json.contains("\"digest\":\"\(rw.digest)\""))
        let html = ReportHTML.render(r, run: nil)
        #expect(html.contains("id=\"chart-rewards-histogram\"") && html.contains("id=\"chart-rewards-scatter\""))
        #expect(html.components(separatedBy: "<rect class=\"bar\"").count - 1 == 20)
        #expect(html.components(separatedBy: "<circle class=\"dot\"").count - 1 == rw.measuredNodes)
    }

    /// The synthetic rewards over 2,000 peers, row by row: R ≥ 0, r ≤ r_max(V), the mean unit
    /// reward rises with V bin by bin, demand lands near the population centres, and the
    /// ledger is a function of the seed.
    @Test func syntheticRewardsFollowTheWhitepapersBounds() {
        let n = 2_000
        let keys = Simulator(config: SimulationTests.config(.steady, peers: 2, seed: 5))
        let ids = (0..<n).map { keys.makeKey($0).peerID }
        func ledger(seed: UInt64) -> RewardLedger {
            let population = SimRewards.population(ids: ids, positions: (0..<n).map { Simulator.position(of: Int32($0)) }, epochSeconds: 1320, seed: seed)
            return RewardLedger(SimRewards.inputs(epoch: 9, peers: population, sessions: 3 * n, seed: seed, parameters: .standard), parameters: .standard)
        }
        let l = ledger(seed: 5)
        #expect(l.digest == ledger(seed: 5).digest && l.digest != ledger(seed: 6).digest)
        let p = RewardParameters.standard
        for row in l.rows {
            #expect(row.reward >= 0 && row.unitReward >= 0)
            #expect(row.unitReward <= RewardFunction.maximumUnitReward(quality: row.quality ?? p.unmeasuredQuality, parameters: p) + 1e-6)
            #expect(row.sessions == 0 || row.location > 0)
        }
        var section = SimReport.RewardsSection()
        section.summarise(l)
        let bins = section.byQuality.filter { $0.nodes >= 20 }
        #expect(bins.count >= 3)
        for (a, b) in zip(bins, bins.dropFirst()) { #expect(a.meanUnitReward < b.meanUnitReward) }
        // R = r·b also carries the data supplied, which does not depend on V: above V ≈ 0.7
        // r is near its ceiling and b decides, so R rises with V between distant bins.
        let top = section.byQuality[4]
        for low in bins where low.hi <= 0.6 { #expect(top.meanReward > low.meanReward, "\(low.lo)–\(low.hi)") }
    }
}
