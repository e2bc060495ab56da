import Dispatch
import Identity
import Registry
import Rewards
import Simulation

/// `rewards-ledger`: one epoch's reward ledger over 10,000 nodes (scores, neighbourhoods within
/// 500 km, history ranks, the CSV and its digest). A node computes one per closed epoch and one
/// provisional ledger per registry sample while someone watches `/rewards` or the dashboard.
///
/// `sim-rewards-10k`: the simulator's rewards (Specs/simulation.md "Rewards") over 10,000
/// simulated peers: 30,000 synthetic sessions around population centres, then the ledger; the
/// ledger's time is reported beside `rewards-ledger`'s uniform inputs, measured in the same run.
enum RewardsBench {
    static func run() {
        let inputs = uniformInputs()
        let (ms, digest, runs) = time(inputs)
        Bench.emit(["benchmark": "rewards-ledger", "nodes": 10_000, "demandPoints": inputs.demand.count, "runs": runs,
                    "millisecondsPerLedger": Bench.round3(ms), "digest": String(digest.prefix(16)),
                    "target": 250, "pass": ms <= 250])
    }

    static func simulated() {
        let n = 10_000
        let ids = (0..<n).map(peerID)
        let population = SimRewards.population(ids: ids, positions: (0..<n).map { Simulator.position(of: Int32($0)) }, epochSeconds: 1320, seed: 17)
        let parameters = RewardParameters.standard
        _ = SimRewards.inputs(epoch: 1_000, peers: population, sessions: 3 * n, seed: 17, parameters: parameters)  // warm up
        let runs = 5
        let start = DispatchTime.now().uptimeNanoseconds
        var inputs = RewardInputs(epoch: 0, nodes: [], demand: [])
        for _ in 0..<runs { inputs = SimRewards.inputs(epoch: 1_000, peers: population, sessions: 3 * n, seed: 17, parameters: parameters) }
        let demandMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 / Double(runs)
        let (ledgerMs, digest, ledgerRuns) = time(inputs)
        let (referenceMs, _, _) = time(uniformInputs())
        let ledger = RewardLedger(inputs, parameters: parameters)
        Bench.emit(["benchmark": "sim-rewards-10k", "nodes": n, "sessions": 3 * n, "demandPoints": inputs.demand.count,
                    "nodesPaid": ledger.rows.filter { $0.reward > 0 }.count, "runs": ledgerRuns,
                    "millisecondsDemand": Bench.round3(demandMs), "millisecondsPerLedger": Bench.round3(ledgerMs),
                    "referenceRewardsLedgerMs": Bench.round3(referenceMs), "ratioToReference": Bench.round3(ledgerMs / referenceMs),
                    "digest": String(digest.prefix(16)), "target": 250, "pass": demandMs + ledgerMs <= 250])
    }

    /// Milliseconds per ledger of `inputs` (mean of 10 after one warm-up), its digest.
    static func time(_ inputs: RewardInputs) -> (ms: Double, digest: String, runs: Int) {
        _ = RewardLedger(inputs, parameters: .standard).digest  // warm up
        let runs = 10
        var digest = ""
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<runs { digest = RewardLedger(inputs, parameters: .standard).digest }
        return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 / Double(runs), digest, runs)
    }

    static func peerID(_ i: Int) -> PeerID {
        var key = [UInt8](repeating: 0, count: 32)
        withUnsafeBytes(of: UInt64(i).bigEndian) { key.replaceSubrange(24..<32, with: $0) }
        return PeerID(publicKey: LibP2PPublicKey(type: .ed25519, data: key))
    }

    /// 10,000 nodes around 60 random cities, with random scores, lifetimes and data.
    static func uniformInputs() -> RewardInputs {
        var rng = SplitMix64(seed: 17)
        let cities = (0..<60).map { _ in GeoPoint(latitude: Double.random(in: -45...65, using: &rng), longitude: Double.random(in: -180...180, using: &rng)) }
        var nodes: [RewardNodeInput] = []
        var demand: [DemandPoint] = []
        for i in 0..<10_000 {
            let c = cities[Int.random(in: 0..<cities.count, using: &rng)]
            let geo = GeoPoint(latitude: min(90, max(-90, c.latitude + Double.random(in: -3...3, using: &rng))),
                               longitude: max(-180, min(180, c.longitude + Double.random(in: -4...4, using: &rng))))
            let lifetime = Double.random(in: 1_000...1_000_000, using: &rng)
            let supplied = Double(Int.random(in: 0...40, using: &rng)) * 5.25
            nodes.append(RewardNodeInput(
                node: peerID(i), position: geo,
                uptimeSeconds: Double.random(in: 0...lifetime, using: &rng), lifetimeSeconds: lifetime,
                quality: Bool.random(using: &rng) ? Double.random(in: 0...1, using: &rng) : nil,
                dataSuppliedMB: supplied, lifetimeDataSuppliedMB: supplied * 20, sessions: supplied > 0 ? 1 : 0))
            demand.append(DemandPoint(position: geo, participants: Double(Int.random(in: 0...30, using: &rng))))
        }
        return RewardInputs(epoch: 1_000, nodes: nodes, demand: demand)
    }
}
