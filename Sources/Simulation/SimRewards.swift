import Identity
import QoS
import Registry
import Rewards

/// The rewards of one simulated epoch (Specs/simulation.md "Rewards"): synthetic demand around
/// population centres, served by the simulated peers nearest them, and the ledger the
/// production `Rewards` core computes from it. Pure and seeded: equal arguments, equal ledgers.
public enum SimRewards {
    /// One simulated node's evidence apart from demand.
    public struct Peer: Sendable {
        public var id: PeerID
        public var position: GeoPoint
        /// V in the epoch (nil: unmeasured).
        public var quality: Double?
        /// u and l of A, in seconds.
        public var uptimeSeconds: Double
        public var lifetimeSeconds: Double
        /// Epochs the node lived before this one (its history s scales with them).
        public var priorEpochs: Double

        public init(id: PeerID, position: GeoPoint, quality: Double?, uptimeSeconds: Double, lifetimeSeconds: Double, priorEpochs: Double) {
            self.id = id
            self.position = position
            self.quality = quality
            self.uptimeSeconds = uptimeSeconds
            self.lifetimeSeconds = lifetimeSeconds
            self.priorEpochs = priorEpochs
        }
    }

    /// Where participants come from: large metropolitan areas, weighted by population
    /// (millions, rounded; UN World Urbanization Prospects orders of magnitude).
    public static let cities: [(name: String, latitude: Double, longitude: Double, weight: Double)] = [
        ("Tokyo", 35.68, 139.69, 37), ("Delhi", 28.61, 77.21, 32), ("Shanghai", 31.23, 121.47, 29),
        ("Dhaka", 23.81, 90.41, 23), ("São Paulo", -23.55, -46.63, 22), ("Cairo", 30.04, 31.24, 22),
        ("Mexico City", 19.43, -99.13, 22), ("Beijing", 39.90, 116.41, 21), ("Mumbai", 19.08, 72.88, 21),
        ("Osaka", 34.69, 135.50, 19), ("New York", 40.71, -74.01, 19), ("Karachi", 24.86, 67.01, 17),
        ("Istanbul", 41.01, 28.98, 16), ("Kinshasa", -4.44, 15.27, 16), ("Lagos", 6.52, 3.38, 15),
        ("Buenos Aires", -34.60, -58.38, 15), ("Kolkata", 22.57, 88.36, 15), ("Manila", 14.60, 120.98, 14),
        ("Guangzhou", 23.13, 113.26, 14), ("Rio de Janeiro", -22.91, -43.17, 14), ("Moscow", 55.76, 37.62, 13),
        ("Los Angeles", 34.05, -118.24, 12), ("Jakarta", -6.21, 106.85, 11), ("Paris", 48.86, 2.35, 11),
        ("Bogotá", 4.71, -74.07, 11), ("Lima", -12.05, -77.04, 11), ("Bangkok", 13.76, 100.50, 11),
        ("Seoul", 37.57, 126.98, 10), ("London", 51.51, -0.13, 9), ("Tehran", 35.69, 51.39, 9),
        ("Chicago", 41.88, -87.63, 9), ("Johannesburg", -26.20, 28.05, 6), ("Sydney", -33.87, 151.21, 5),
        ("Berlin", 52.52, 13.40, 4), ("Nairobi", -1.29, 36.82, 5), ("Toronto", 43.65, -79.38, 6),
    ]

    /// Each session is served by one of the nodes nearest its city (an orchestrator allocates
    /// near the participants and spreads load): at least this many, and one per
    /// `sessionsPerServingNode` sessions the city expects, so a big city spreads over more.
    public static let servingChoices = 8
    public static let sessionsPerServingNode = 10.0

    /// The epoch's inputs: `sessions` synthetic sessions, each in a city drawn by weight, with
    /// 1–4 publishers (40/35/15/10 %), up to 50 viewers for one publisher or 10 for more, and
    /// 5–60 minutes; served by one of the peers nearest the city (`servingChoices` or one per
    /// `sessionsPerServingNode` sessions the city expects, whichever is more), which
    /// supplies b = b_av·n_p·((n_p − 1) + n_c)·m and places n_p + n_c participants at its
    /// position (ρ_I, as a countersigned receipt does). History s = b × (1 + prior epochs).
    public static func inputs(epoch: UInt64, peers: [Peer], sessions: Int, seed: UInt64, parameters: RewardParameters) -> RewardInputs {
        var rng = SplitMix64(seed: seed ^ 0x5245_5741_5244_5321)
        let totalWeight = cities.reduce(0) { $0 + $1.weight }
        let nearest = cities.map { city in
            let expected = Double(max(0, sessions)) * city.weight / totalWeight
            let k = min(peers.count, max(servingChoices, Int(expected / sessionsPerServingNode)))
            return Self.nearest(k, to: GeoPoint(latitude: city.latitude, longitude: city.longitude), among: peers)
        }
        var supplied = [Double](repeating: 0, count: peers.count)
        var count = [Int](repeating: 0, count: peers.count)
        var participants = [Double](repeating: 0, count: peers.count)
        for _ in 0..<max(0, sessions) {
            var pick = unit(&rng) * totalWeight
            var c = 0
            while c < cities.count - 1, pick >= cities[c].weight {
                pick -= cities[c].weight
                c += 1
            }
            guard !nearest[c].isEmpty else { continue }
            let node = nearest[c][Int(rng.next() % UInt64(nearest[c].count))]
            let draw = unit(&rng)
            let np = draw < 0.4 ? 1 : draw < 0.75 ? 2 : draw < 0.9 ? 3 : 4
            let nc = Int(rng.next() % UInt64(np == 1 ? 51 : 11))
            let minutes = 5 + unit(&rng) * 55
            supplied[node] += RewardFunction.dataSuppliedMB(publishers: np, viewers: nc, minutes: minutes, streamBitrateKbps: parameters.streamBitrateKbps)
            count[node] += 1
            participants[node] += Double(np + nc)
        }
        var nodes: [RewardNodeInput] = []
        var demand: [DemandPoint] = []
        for (i, p) in peers.enumerated() {
            nodes.append(RewardNodeInput(node: p.id, position: p.position, uptimeSeconds: p.uptimeSeconds, lifetimeSeconds: p.lifetimeSeconds,
                                         quality: p.quality, dataSuppliedMB: supplied[i], lifetimeDataSuppliedMB: supplied[i] * (1 + p.priorEpochs),
                                         sessions: count[i]))
            if participants[i] > 0 { demand.append(DemandPoint(position: p.position, participants: participants[i])) }
        }
        return RewardInputs(epoch: epoch, nodes: nodes, demand: demand)
    }

    /// Indices of the `k` peers nearest `point` (ties by index).
    static func nearest(_ k: Int, to point: GeoPoint, among peers: [Peer]) -> [Int] {
        let q = SpherePosition(point)
        var best: [(d: Double, i: Int)] = []
        for (i, p) in peers.enumerated() {
            let d = SpherePosition(p.position).chordSquared(to: q)
            if best.count == k, let last = best.last, (d, i) >= (last.d, last.i) { continue }
            // Binary search for the insertion point (k reaches a few hundred at 10,000 peers).
            var lo = 0, hi = best.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if (best[mid].d, best[mid].i) < (d, i) { lo = mid + 1 } else { hi = mid }
            }
            let at = lo
            best.insert((d, i), at: at)
            if best.count > k { best.removeLast() }
        }
        return best.map(\.i)
    }

    /// A seeded population of `count` peers with the given positions and IDs: V from a
    /// mixture (80 % healthy in [0.7, 1], 12 % degraded in [0, 0.5], 8 % unmeasured), and an
    /// uptime history of 1–72 epochs with availability near 1 for most (75 %), 0.5–0.9 for
    /// some (20 %) and below 0.5 for a few (5 %). Used when a run has no QoS model of its own.
    public static func population(ids: [PeerID], positions: [GeoPoint], epochSeconds: Double, seed: UInt64) -> [Peer] {
        var rng = SplitMix64(seed: seed ^ 0x504F_5055_4C41_5449)
        return zip(ids, positions).map { id, position in
            let q = unit(&rng)
            let v = unit(&rng)
            let quality: Double? = q < 0.8 ? 1 - 0.3 * v * v : q < 0.92 ? 0.5 * v : nil
            let epochs = 1 + Double(rng.next() % 72)
            let a = unit(&rng)
            let share = a < 0.75 ? 0.95 + 0.05 * unit(&rng) : a < 0.95 ? 0.5 + 0.4 * unit(&rng) : 0.5 * unit(&rng)
            return Peer(id: id, position: position, quality: quality, uptimeSeconds: share * epochs * epochSeconds,
                        lifetimeSeconds: epochs * epochSeconds, priorEpochs: epochs - 1)
        }
    }

    static func unit(_ rng: inout SplitMix64) -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
}

extension Simulator {
    /// The ledger of the run's last epoch over the honest peers (media nodes), with three
    /// synthetic sessions per peer: V and A from the run's QoS aggregate when it has one, else
    /// from `SimRewards.population` plus the run's own uptime (Specs/simulation.md "Rewards").
    func rewardsSection() -> SimReport.RewardsSection {
        let honest = peers.filter { $0.role == .honest }
        let parameters = RewardParameters.standard
        var section = SimReport.RewardsSection()
        let epochSeconds: Double
        var population: [SimRewards.Peer]
        if let settings = qos {
            epochSeconds = Double(qosSchedule.epochSeconds)
            let aggregate = QoSAggregate.compute(qosLedger, schedule: qosSchedule, parameters: settings.parameters)
            let last = aggregate.epochs.filter { !$0.value.measurements.isEmpty }.keys.max()
            let availability = last.map { aggregate.testAvailability(upTo: $0) } ?? [:]
            let measured = last.flatMap { aggregate.epochs[$0]?.measurements } ?? [:]
            population = honest.map { p in
                let key = NodeKey(p.key)
                let a = availability[key]
                return SimRewards.Peer(id: p.id, position: Self.position(of: p.index), quality: measured[key]?.score,
                                       uptimeSeconds: (a?.answered ?? 0) * epochSeconds, lifetimeSeconds: (a?.expected ?? 0) * epochSeconds,
                                       priorEpochs: max(0, (a?.expected ?? 1) - 1))
            }
            section.evidence = "qos"
        } else {
            epochSeconds = config.qosSettings.productionEpochSeconds
            population = SimRewards.population(ids: honest.map(\.id), positions: honest.map { Self.position(of: $0.index) },
                                               epochSeconds: epochSeconds, seed: config.seed)
            // The run itself: up while alive, since it joined.
            for (i, p) in honest.enumerated() {
                let end = endAt
                population[i].lifetimeSeconds += Double(end - min(end, p.joinedAt)) / 1e6
                population[i].uptimeSeconds += Double(min(end, p.diedAt ?? end) - min(end, p.joinedAt)) / 1e6
            }
            section.evidence = "seeded"
        }
        let epoch = (Self.epochMs + endAt / 1000) / UInt64(epochSeconds * 1000)
        let inputs = SimRewards.inputs(epoch: epoch, peers: population, sessions: 3 * honest.count, seed: config.seed, parameters: parameters)
        let ledger = RewardLedger(inputs, parameters: parameters)
        section.epoch = epoch
        section.epochSeconds = Int(epochSeconds)
        section.sessions = inputs.nodes.reduce(0) { $0 + $1.sessions }
        section.participants = inputs.demand.reduce(0) { $0 + $1.participants }
        section.summarise(ledger)
        return section
    }
}

extension SimReport.RewardsSection {
    /// The figures and chart data of one ledger.
    mutating func summarise(_ ledger: RewardLedger) {
        let rows = ledger.rows
        nodes = rows.count
        nodesWithSessions = rows.filter { $0.sessions > 0 }.count
        measuredNodes = rows.filter { $0.quality != nil }.count
        dataSuppliedMB = rows.reduce(0) { $0 + $1.dataSuppliedMB }
        totalReward = ledger.totalReward
        reward = quantiles(rows.map(\.reward))
        unitReward = quantiles(rows.map(\.unitReward))
        availabilityMean = rows.isEmpty ? 0 : rows.reduce(0) { $0 + $1.availability } / Double(rows.count)
        let p = ledger.parameters
        aboveMaximumUnitReward = rows.filter {
            $0.unitReward > RewardFunction.maximumUnitReward(quality: $0.quality ?? p.unmeasuredQuality, parameters: p) + 1e-6
        }.count
        byQuality = (0..<5).map { k in
            let lo = Double(k) / 5, hi = Double(k + 1) / 5
            let inBin = rows.filter { r in r.quality.map { $0 >= lo && ($0 < hi || (k == 4 && $0 <= hi)) } ?? false }
            let n = Double(max(1, inBin.count))
            return QualityBin(lo: lo, hi: hi, nodes: inBin.count, meanReward: inBin.reduce(0) { $0 + $1.reward } / n,
                              meanUnitReward: inBin.reduce(0) { $0 + $1.unitReward } / n)
        }
        let paid = rows.map(\.reward).filter { $0 > 0 }
        zeroRewardNodes = rows.count - paid.count
        let top = paid.max() ?? 0
        histogram = top > 0 ? (0..<20).map { k in
            let lo = top * Double(k) / 20, hi = top * Double(k + 1) / 20
            return Bin(lo: lo, hi: hi, nodes: paid.filter { $0 >= lo && ($0 < hi || k == 19) }.count)
        } : []
        scatter = rows.compactMap { r in r.quality.map { ($0, r.reward) } }
        digest = ledger.digest
    }
}
