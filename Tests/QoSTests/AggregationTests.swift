import Identity
import Testing
@testable import QoS

/// Runs a small network through epochs: every node publishes its bundle each epoch, with
/// reports on the provers its duties name (computed from the set as it stands).
struct Simulation {
    var nodes: [Ed25519KeyPair]
    var ledger = QoSLedger()
    var epoch: UInt64 = 100

    init(_ n: Int) {
        nodes = (0..<n).map(Net.key)
        // Epoch 100: tickets for 101 only.
        for b in Net.epochBundles(nodes, epoch: epoch, aggregate: nil) { ledger.insert(b) }
    }

    var aggregate: QoSAggregate { QoSAggregate.compute(ledger, schedule: Net.schedule) }

    /// `silent` nodes publish nothing this epoch (they are down); reports on `implausible`
    /// provers say their RTT was faster than fibre allows.
    mutating func run(silent: Set<Int> = [], implausible: Set<Int> = [],
                      _ score: @escaping (_ challenger: Int, _ prover: Int) -> ScoreCounts? = { _, _ in Net.counts(b: 0.9, l: 0.9, f: 1) }) {
        epoch += 1
        let agg = aggregate
        let quiet = Set(silent.map { NodeKey(nodes[$0]) })
        for b in Net.epochBundles(nodes, epoch: epoch, aggregate: agg, score: score, implausible: { _, p in implausible.contains(p) }) where !quiet.contains(b.challenger) {
            ledger.insert(b)
        }
    }
}

@Suite struct AggregationTests {
    @Test func everyNodeTestsEveryOtherInASmallNetwork() {
        var sim = Simulation(5)
        sim.run()
        let agg = sim.aggregate
        let r = agg.epochs[101]!
        #expect(r.genesis && r.active.count == 5 && r.plan.tau == 1)
        for k in sim.nodes {
            #expect(agg.duties(of: NodeKey(k), epoch: 101).provers.count == 4)
            let q = agg.qos(of: NodeKey(k))
            #expect(q.measured && q.reports == 4 && q.epoch == 101)
            #expect(abs(q.score! - 14.0 / 15) < 1e-9)
        }
        #expect(agg.reportStatus.values.allSatisfy { $0.isCounted })
    }

    @Test func medianResistsAMinorityAndOutliersLoseWeight() {
        var sim = Simulation(7)
        // Node 0 reports everyone as dead; everyone reports node 6 as lossy.
        let score: (Int, Int) -> ScoreCounts? = { c, p in
            if c == 0 { return Net.counts(b: 0, l: 0, f: 0) }
            if p == 6 { return Net.counts(b: 0.9, l: 0.9, f: 0.2) }
            return Net.counts(b: 0.9, l: 0.9, f: 1)
        }
        for _ in 0..<6 { sim.run(score) }
        let agg = sim.aggregate
        for i in 1...5 { #expect(agg.qos(of: NodeKey(sim.nodes[i])).score! > 0.8) }
        let lossy = agg.qos(of: NodeKey(sim.nodes[6]))
        #expect(lossy.fractionalLossScore! < 0.25 && lossy.score! < 0.2)
        // The liar's weight fell to the floor once its reports kept falling far from the medians.
        let last = agg.epochs[sim.epoch]!
        #expect(last.weights[NodeKey(sim.nodes[0])]! <= 0.05 + 1e-9)
        #expect(last.weights[NodeKey(sim.nodes[1])]! == 1)
    }

    @Test func fewerThanThreeReportsLeaveANodeUnmeasured() {
        var sim = Simulation(5)
        // Only two challengers report on node 4.
        sim.run { c, p in p == 4 && c > 1 ? nil : Net.counts(b: 1, l: 1, f: 1) }
        let agg = sim.aggregate
        #expect(!agg.qos(of: NodeKey(sim.nodes[4])).measured)
        #expect(agg.qos(of: NodeKey(sim.nodes[4])).score == nil)
        #expect(agg.qos(of: NodeKey(sim.nodes[3])).measured)
    }

    @Test func equivocatorsStopCounting() {
        var sim = Simulation(5)
        sim.run()
        let agg = sim.aggregate
        let liar = sim.nodes[2]
        // A second, different bundle for the same epoch from node 2.
        let other = QoSBundle(epoch: 101, challenger: NodeKey(liar), schedule: Net.schedule, nextTicket: Ticket.prove(epoch: 102, key: liar),
                              reports: agg.duties(of: NodeKey(liar), epoch: 101).provers.map { p in QoSReport.failed(p, .noAnswer, intervals: 15) }).signed(with: liar)
        #expect(sim.ledger.insert(other) == .equivocation(evicted: nil))
        let after = sim.aggregate
        #expect(after.equivocators == [NodeKey(liar)])
        let liarReports = after.reportStatus.filter { ref, _ in sim.ledger[ref.bundle]!.challenger == NodeKey(liar) }
        #expect(!liarReports.isEmpty && liarReports.values.allSatisfy { !$0.isCounted })
        for i in [0, 1, 3, 4] { #expect(after.qos(of: NodeKey(sim.nodes[i])).reports == 3) }
    }

    /// After genesis, a key with no measured history may not challenge: a fresh key made
    /// after a prover revealed its ticket cannot be counted against it.
    @Test func freshKeysAreIneligibleAfterGenesis() {
        var sim = Simulation(5)
        sim.run()
        sim.run()
        sim.run()
        let fresh = Net.key(999)
        // The newcomer reveals a ticket for 104, then reports on everyone in 104.
        sim.ledger.insert(QoSBundle(epoch: 103, challenger: NodeKey(fresh), schedule: Net.schedule, nextTicket: Ticket.prove(epoch: 104, key: fresh)).signed(with: fresh))
        sim.run()
        let reports = sim.nodes.map { Net.report($0, Net.counts(b: 0, l: 0, f: 0)) }
        let attack = QoSBundle(epoch: 104, challenger: NodeKey(fresh), schedule: Net.schedule, nextTicket: Ticket.prove(epoch: 105, key: fresh), reports: reports).signed(with: fresh)
        sim.ledger.insert(attack)
        let agg = sim.aggregate
        #expect(!agg.epochs[104]!.genesis)
        #expect(agg.epochs[104]!.active.contains(NodeKey(fresh)))
        #expect(agg.epochs[104]!.weights[NodeKey(fresh)] == 0)
        for r in reports { #expect(agg.reportStatus[ReportRef(bundle: attack.syncID, prover: r.prover)] == .notCounted(reason: "challenger_ineligible")) }
        for k in sim.nodes { #expect(agg.qos(of: NodeKey(k)).score! > 0.8) }
        // Measured itself in 104, it counts with a quarter of the weight in 106.
        sim.run()
        sim.run()
        #expect(abs(sim.aggregate.weight(of: NodeKey(fresh), epoch: 106, genesis: false) - 0.25) < 1e-9)
    }

    @Test func reportsOnProversWithoutTicketsDoNotCount() {
        var sim = Simulation(4)
        sim.run()
        let outsider = Net.key(500), c = sim.nodes[0]
        let b = QoSBundle(epoch: 102, challenger: NodeKey(c), schedule: Net.schedule, nextTicket: Ticket.prove(epoch: 103, key: c),
                          reports: [Net.report(outsider, Net.counts(b: 1, l: 1, f: 1))]).signed(with: c)
        sim.ledger.insert(b)
        let agg = sim.aggregate
        #expect(agg.reportStatus[ReportRef(bundle: b.syncID, prover: NodeKey(outsider))] == .notCounted(reason: "prover_no_ticket"))
        #expect(!agg.qos(of: NodeKey(outsider)).measured)
    }

    /// Equal sets give equal aggregates, whatever order the bundles arrived in.
    @Test func aggregationIsAFunctionOfTheSet() {
        var sim = Simulation(6)
        for _ in 0..<4 { sim.run { c, p in Net.counts(b: Double((c + p) % 5) / 5, l: 0.8, f: p == 2 ? 0.5 : 1) } }
        let all = sim.ledger.bundles.values.map { $0 }
        var a = QoSLedger(), b = QoSLedger()
        for x in all.shuffled() { a.insert(x) }
        for x in all.shuffled() { b.insert(x) }
        #expect(a.digest == b.digest)
        let qa = QoSAggregate.compute(a, schedule: Net.schedule), qb = QoSAggregate.compute(b, schedule: Net.schedule)
        #expect(qa.nodes == qb.nodes)
        #expect(qa.reportStatus == qb.reportStatus)
    }

    @Test func weightedMedian() {
        let k = (0..<5).map { NodeKey(Net.key($0)) }
        #expect(QoSAggregate.weightedMedian([(0.1, 1, k[0]), (0.9, 1, k[1]), (0.5, 1, k[2])]) == 0.5)
        #expect(QoSAggregate.weightedMedian([(0.1, 1, k[0]), (0.9, 1, k[1]), (0.5, 1, k[2]), (0.7, 1, k[3])]) == 0.6)
        #expect(QoSAggregate.weightedMedian([(0.1, 0.05, k[0]), (0.9, 1, k[1]), (0.8, 1, k[2])]) == 0.8)
        #expect(QoSAggregate.weightedMedian([(0.1, 5, k[0]), (0.9, 1, k[1]), (0.8, 1, k[2])]) == 0.1)
    }
}
