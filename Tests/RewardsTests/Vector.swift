import Foundation
import Identity
import Registry
import Rewards

/// Fixtures/rewards/ledger-vector.json (written by Fixtures/rewards/make-ledger-vector.py).
struct RewardsVector: Decodable {
    struct Weights: Decodable { var availability, history, location, coverage: Double }
    struct Parameters: Decodable {
        var weights: Weights
        var k, rAsym, hMin, locationRadiusKm, coverageRadiusKm, streamBitrateKbps, unmeasuredQuality: Double
    }
    struct Node: Decodable {
        var publicKeyHex: String
        var nodeId: String
        var latitude: Double?
        var longitude: Double?
        var uptimeSeconds, lifetimeSeconds: Double
        var quality: Double?
        var dataSuppliedMB, lifetimeDataSuppliedMB: Double
        var sessions: Int
    }
    struct Demand: Decodable { var latitude, longitude, participants: Double }

    var parameters: Parameters
    var epoch: UInt64
    var nodes: [Node]
    var demand: [Demand]
    var csv: String
    var digest: String

    static func load() throws -> (inputs: RewardInputs, parameters: RewardParameters, csv: String, digest: String) {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/rewards/ledger-vector.json")
        let v = try JSONDecoder().decode(RewardsVector.self, from: Data(contentsOf: url))
        let p = v.parameters
        let parameters = RewardParameters(
            weights: .init(availability: p.weights.availability, history: p.weights.history, location: p.weights.location, coverage: p.weights.coverage),
            k: p.k, rAsym: p.rAsym, hMin: p.hMin, locationRadiusKm: p.locationRadiusKm, coverageRadiusKm: p.coverageRadiusKm,
            streamBitrateKbps: p.streamBitrateKbps, unmeasuredQuality: p.unmeasuredQuality)
        let nodes = try v.nodes.map { n -> RewardNodeInput in
            let id = PeerID(publicKey: LibP2PPublicKey(type: .ed25519, data: Hex.decode(n.publicKeyHex)!))
            guard id.description == n.nodeId else { throw VectorError("PeerID of \(n.publicKeyHex) is \(id), the vector says \(n.nodeId)") }
            let position = n.latitude.flatMap { lat in n.longitude.map { GeoPoint(latitude: lat, longitude: $0) } }
            return RewardNodeInput(node: id, position: position, uptimeSeconds: n.uptimeSeconds, lifetimeSeconds: n.lifetimeSeconds,
                                   quality: n.quality, dataSuppliedMB: n.dataSuppliedMB, lifetimeDataSuppliedMB: n.lifetimeDataSuppliedMB,
                                   sessions: n.sessions)
        }
        let demand = v.demand.map { DemandPoint(position: GeoPoint(latitude: $0.latitude, longitude: $0.longitude), participants: $0.participants) }
        return (RewardInputs(epoch: v.epoch, nodes: nodes, demand: demand), parameters, v.csv, v.digest)
    }
}

struct VectorError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
