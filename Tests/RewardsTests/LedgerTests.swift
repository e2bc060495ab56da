import Identity
import Registry
import Testing
@testable import Rewards

func peer(_ i: Int) -> PeerID {
    var key = [UInt8](repeating: 0, count: 32)
    withUnsafeBytes(of: UInt64(i).bigEndian) { key.replaceSubrange(24..<32, with: $0) }
    key[0] = 0xD7
    return PeerID(publicKey: LibP2PPublicKey(type: .ed25519, data: key))
}

/// A network of `n` nodes clustered around a few cities, with random evidence.
func randomInputs(_ rng: inout SplitMix64, nodes n: Int, epoch: UInt64 = 7) -> RewardInputs {
    let cities = [GeoPoint(latitude: 52.52, longitude: 13.40), GeoPoint(latitude: 40.71, longitude: -74.0),
                  GeoPoint(latitude: 35.68, longitude: 139.69), GeoPoint(latitude: -33.87, longitude: 151.21),
                  GeoPoint(latitude: 64.15, longitude: -21.94), GeoPoint(latitude: 0.1, longitude: 179.9)]
    var nodes: [RewardNodeInput] = []
    var demand: [DemandPoint] = []
    for i in 0..<n {
        let city = cities[Int.random(in: 0..<cities.count, using: &rng)]
        let position: GeoPoint? = Int.random(in: 0..<10, using: &rng) == 0 ? nil : GeoPoint(
            latitude: min(90, max(-90, city.latitude + Double.random(in: -4...4, using: &rng))),
            longitude: ((city.longitude + Double.random(in: -6...6, using: &rng) + 540).truncatingRemainder(dividingBy: 360)) - 180)
        let lifetime = Double(Int.random(in: 0...100_000, using: &rng))
        let supplied = Double(Int.random(in: 0...5, using: &rng)) * 52.5
        nodes.append(RewardNodeInput(
            node: peer(i), position: position, uptimeSeconds: Double.random(in: 0...lifetime, using: &rng), lifetimeSeconds: lifetime,
            quality: Bool.random(using: &rng) ? Double.random(in: 0...1, using: &rng) : nil,
            dataSuppliedMB: supplied, lifetimeDataSuppliedMB: supplied * Double(Int.random(in: 1...9, using: &rng)),
            sessions: supplied > 0 ? Int.random(in: 1...3, using: &rng) : 0))
        if let position, Bool.random(using: &rng) {
            demand.append(DemandPoint(position: position, participants: Double(Int.random(in: 1...50, using: &rng))))
        }
    }
    return RewardInputs(epoch: epoch, nodes: nodes, demand: demand)
}

struct LedgerTests {
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func twoPeersWithTheSameEvidencePublishByteIdenticalLedgers(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let inputs = randomInputs(&rng, nodes: 400)
        // The second peer learnt the same evidence in another order.
        var shuffled = inputs
        shuffled.nodes.shuffle(using: &rng)
        shuffled.demand.shuffle(using: &rng)
        let a = RewardLedger(inputs, parameters: .standard)
        let b = RewardLedger(shuffled, parameters: .standard)
        #expect(a.csv == b.csv)
        #expect(a.digest == b.digest)
        #expect(a.rows.count == 400)
        // And any difference in evidence shows in the digest.
        var changed = inputs
        changed.nodes[17].uptimeSeconds = max(0, changed.nodes[17].uptimeSeconds - 100)
        #expect(RewardLedger(changed, parameters: .standard).digest != a.digest)
    }

    @Test func rowsAreSortedByNodeIDAndEveryScoreIsInRange() {
        var rng = SplitMix64(seed: 9)
        let ledger = RewardLedger(randomInputs(&rng, nodes: 300), parameters: .standard)
        let ids = ledger.rows.map(\.node)
        #expect(ids == ids.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        for r in ledger.rows {
            for s in [r.availability, r.history, r.location, r.coverage, r.unitReward] { #expect((0...1).contains(s)) }
            #expect(r.history >= RewardParameters.standard.hMin)
            #expect(r.reward == RewardLedger.ratio(r.unitReward * r.dataSuppliedMB))
            #expect(ledger.row(for: r.node) == r)
        }
        #expect(ledger.row(for: "12D3KooWnothere") == nil)
    }

    @Test func locationAndCoverageMatchABruteForceCountByGreatCircleDistance() {
        var rng = SplitMix64(seed: 11)
        var p = RewardParameters.standard
        p.locationRadiusKm = 300
        p.coverageRadiusKm = 700
        let inputs = randomInputs(&rng, nodes: 500)
        let ledger = RewardLedger(inputs, parameters: p)
        let placed = inputs.nodes.compactMap(\.position)
        var demandNear: [String: Double] = [:]
        for n in inputs.nodes {
            guard let g = n.position else { continue }
            demandNear[n.node.description] = inputs.demand.filter { greatCircleKm($0.position, g) <= p.locationRadiusKm }.reduce(0) { $0 + $1.participants }
        }
        let maxDemand = demandNear.values.max() ?? 0
        for n in inputs.nodes {
            let row = ledger.row(for: n.node.description)!
            guard let g = n.position else {
                #expect(row.location == 0 && row.coverage == 0 && row.nodesNearby == 0)
                continue
            }
            let near = placed.filter { greatCircleKm($0, g) <= p.coverageRadiusKm }.count
            #expect(row.nodesNearby == near)
            #expect(row.coverage == RewardLedger.ratio(1 / Double(near)))
            #expect(abs(row.demandNearby - demandNear[n.node.description]!) < 1e-6)
            #expect(abs(row.location - demandNear[n.node.description]! / maxDemand) < 2e-6)
        }
    }

    @Test func aNodeAloneCoversFullyAndTheBusiestNeighbourhoodLocatesFully() {
        let berlin = GeoPoint(latitude: 52.52, longitude: 13.40), potsdam = GeoPoint(latitude: 52.39, longitude: 13.06)
        let sydney = GeoPoint(latitude: -33.87, longitude: 151.21)
        let inputs = RewardInputs(epoch: 1, nodes: [
            RewardNodeInput(node: peer(1), position: berlin, uptimeSeconds: 50, lifetimeSeconds: 100, quality: 0.9),
            RewardNodeInput(node: peer(2), position: potsdam, uptimeSeconds: 100, lifetimeSeconds: 100, quality: nil),
            RewardNodeInput(node: peer(3), position: sydney, uptimeSeconds: 0, lifetimeSeconds: 0, quality: 0.5),
        ], demand: [DemandPoint(position: berlin, participants: 10), DemandPoint(position: sydney, participants: 5)])
        let ledger = RewardLedger(inputs, parameters: .standard)
        let b = ledger.row(for: peer(1).description)!, p = ledger.row(for: peer(2).description)!, s = ledger.row(for: peer(3).description)!
        #expect(b.coverage == 0.5 && p.coverage == 0.5 && s.coverage == 1)
        #expect(b.location == 1 && p.location == 1 && s.location == 0.5)
        #expect(b.availability == 0.5 && p.availability == 1 && s.availability == 0)
        #expect(p.quality == nil && b.quality == 0.9)
        // Unmeasured: the formula used unmeasuredQuality (0).
        let expected = RewardFunction.unitReward(availability: 1, history: 0.5, location: 1, coverage: 0.5, quality: 0, parameters: .standard)
        #expect(p.unitReward == RewardLedger.ratio(expected))
        #expect(ledger.csv.split(separator: "\n").count == 4)
        #expect(ledger.csv.contains(",\(peer(2)),1.000000,0.500000,1.000000,0.500000,,false,"))
    }

    @Test func duplicateEvidenceForOneNodeResolvesTheSameWayInAnyOrder() {
        let short = RewardNodeInput(node: peer(5), position: nil, uptimeSeconds: 10, lifetimeSeconds: 10, quality: nil)
        let long = RewardNodeInput(node: peer(5), position: nil, uptimeSeconds: 10, lifetimeSeconds: 40, quality: nil)
        let a = RewardLedger(RewardInputs(epoch: 3, nodes: [short, long], demand: []), parameters: .standard)
        let b = RewardLedger(RewardInputs(epoch: 3, nodes: [long, short], demand: []), parameters: .standard)
        #expect(a.rows.count == 1 && a.csv == b.csv)
        #expect(a.rows[0].availability == 0.25)
    }

    @Test func theCommittedVectorIsReproducedByteForByte() throws {
        // Fixtures/rewards/ledger-vector.json: inputs and the CSV an independent Python
        // implementation (Fixtures/rewards/make-ledger-vector.py) computed from them.
        let vector = try RewardsVector.load()
        let ledger = RewardLedger(vector.inputs, parameters: vector.parameters)
        #expect(ledger.csv == vector.csv)
        #expect(ledger.digest == vector.digest)
    }
}
