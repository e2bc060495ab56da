import Dispatch
import Identity
import Registry
import Rewards

/// `rewards-ledger`: one epoch's reward ledger over 10,000 nodes (scores, neighbourhoods within
/// 500 km, history ranks, the CSV and its digest). A node computes one per closed epoch and one
/// provisional ledger per registry sample while someone watches `/rewards` or the dashboard.
enum RewardsBench {
    static func run() {
        var rng = SplitMix64(seed: 17)
        let cities = (0..<60).map { _ in GeoPoint(latitude: Double.random(in: -45...65, using: &rng), longitude: Double.random(in: -180...180, using: &rng)) }
        var nodes: [RewardNodeInput] = []
        var demand: [DemandPoint] = []
        for i in 0..<10_000 {
            let c = cities[Int.random(in: 0..<cities.count, using: &rng)]
            let geo = GeoPoint(latitude: min(90, max(-90, c.latitude + Double.random(in: -3...3, using: &rng))),
                               longitude: max(-180, min(180, c.longitude + Double.random(in: -4...4, using: &rng))))
            var key = [UInt8](repeating: 0, count: 32)
            withUnsafeBytes(of: UInt64(i).bigEndian) { key.replaceSubrange(24..<32, with: $0) }
            let lifetime = Double.random(in: 1_000...1_000_000, using: &rng)
            let supplied = Double(Int.random(in: 0...40, using: &rng)) * 5.25
            nodes.append(RewardNodeInput(
                node: PeerID(publicKey: LibP2PPublicKey(type: .ed25519, data: key)), position: geo,
                uptimeSeconds: Double.random(in: 0...lifetime, using: &rng), lifetimeSeconds: lifetime,
                quality: Bool.random(using: &rng) ? Double.random(in: 0...1, using: &rng) : nil,
                dataSuppliedMB: supplied, lifetimeDataSuppliedMB: supplied * 20, sessions: supplied > 0 ? 1 : 0))
            demand.append(DemandPoint(position: geo, participants: Double(Int.random(in: 0...30, using: &rng))))
        }
        let inputs = RewardInputs(epoch: 1_000, nodes: nodes, demand: demand)
        _ = RewardLedger(inputs, parameters: .standard).digest  // warm up
        let runs = 10
        var digest = ""
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<runs { digest = RewardLedger(inputs, parameters: .standard).digest }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 / Double(runs)
        Bench.emit(["benchmark": "rewards-ledger", "nodes": 10_000, "demandPoints": demand.count, "runs": runs,
                    "millisecondsPerLedger": Bench.round3(ms), "digest": String(digest.prefix(16)),
                    "target": 250, "pass": ms <= 250])
    }
}
