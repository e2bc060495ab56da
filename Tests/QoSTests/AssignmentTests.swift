import Foundation
import Identity
import Testing
@testable import QoS

@Suite struct AssignmentTests {
    @Test func ticketsAreUniqueVerifiableAndEpochBound() {
        let k = Net.key(1), other = Net.key(2)
        let proof = Ticket.prove(epoch: 100, key: k)
        let beta = Ticket.verify(proof: proof, node: NodeKey(k), epoch: 100)
        #expect(beta?.count == 64)
        #expect(Ticket.prove(epoch: 100, key: k) == proof)
        #expect(Ticket.verify(proof: proof, node: NodeKey(k), epoch: 101) == nil)
        #expect(Ticket.verify(proof: proof, node: NodeKey(other), epoch: 100) == nil)
    }

    @Test func networkSizeBucketsAreQuarterOctaves() {
        #expect(Sortition.bucketedSize(1) == 1)
        #expect(Sortition.bucketedSize(5) == 5)
        #expect(Sortition.bucketedSize(16) == 16)
        #expect(Sortition.bucketedSize(17) == 20)
        #expect(Sortition.bucketedSize(10_000) == 11_586)
        // Monotonic, and a count moving within a bucket does not change the plan.
        var last = 0
        for n in 1...5000 {
            let b = Sortition.bucketedSize(n)
            #expect(b >= n && b >= last)
            last = b
        }
    }

    @Test func smallNetworksTestEveryoneAndLargeOnesSample() {
        let p = QoSParameters()
        let five = EpochPlan(epoch: 1, observedNodes: 5, parameters: p)
        #expect(five.tau == 1 && five.activeProbability == 1)
        let hundred = EpochPlan(epoch: 1, observedNodes: 100, parameters: p)
        #expect(hundred.activeProbability == 1)
        #expect(abs(hundred.tau * Double(hundred.expectedActive - 1) - 8) < 1e-9)
        let big = EpochPlan(epoch: 1, observedNodes: 10_000, parameters: p)
        #expect(big.expectedActive == 512)
        #expect(abs(big.activeProbability - 512.0 / 11_586) < 1e-12)
        #expect(big.biasGapEpochs == 46)
    }

    /// Coverage and rotation: over 300 nodes, every prover gets about λ challengers, few get
    /// fewer than 3, nobody tests itself, and challenging is spread over all nodes.
    @Test func sortitionCoverageAndRotation() {
        let n = 300
        let plan = EpochPlan(epoch: 7, observedNodes: n, parameters: QoSParameters())
        let keys = (0..<n).map { NodeKey(Net.key($0)) }
        var challengersOf = [Int](repeating: 0, count: n)
        var provesOf = [Int](repeating: 0, count: n)
        for (pi, p) in keys.enumerated() {
            let beta = SHA512.hash(p.bytes + [7])  // stands in for the VRF output
            for (ci, c) in keys.enumerated() where ci != pi && plan.isAssigned(proverBeta: beta, challenger: c) {
                challengersOf[pi] += 1
                provesOf[ci] += 1
            }
        }
        let mean = Double(challengersOf.reduce(0, +)) / Double(n)
        let expected = plan.tau * Double(n - 1)
        #expect(abs(mean - expected) < 0.6, "mean \(mean), expected \(expected)")
        // Binomial(299, τ ≈ 0.024): P(< 3) ≈ 1.3 %; allow up to 4 % of 300.
        #expect(challengersOf.filter { $0 < 3 }.count <= 12)
        #expect(provesOf.filter { $0 == 0 }.count <= 3, "challenging rotates over all nodes")
    }

    /// Bias: nodes not measured recently are active twice as often.
    @Test func staleNodesAreActiveTwiceAsOften() {
        let plan = EpochPlan(epoch: 3, observedNodes: 4000, parameters: QoSParameters())
        var fresh = 0, stale = 0
        for i in 0..<20_000 {
            let beta = SHA512.hash([UInt8(i & 0xff), UInt8(i >> 8), 1])
            if plan.isActive(beta: beta, stale: false) { fresh += 1 }
            if plan.isActive(beta: beta, stale: true) { stale += 1 }
        }
        let p = plan.activeProbability
        #expect(abs(Double(fresh) / 20_000 - p) < 0.015)
        #expect(abs(Double(stale) / 20_000 - 2 * p) < 0.02)
    }

    /// The byte-exact vectors in Fixtures/qos/assignment-vectors.json: tickets (ECVRF proofs
    /// and outputs) of six deterministic keys for one epoch, the plan, and the pairs.
    @Test func assignmentVectors() throws {
        let made = AssignmentVectors.make()
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/qos/assignment-vectors.json")
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        #expect(NSDictionary(dictionary: made).isEqual(to: expected), "regenerate with DRTC_WRITE_FIXTURES=1 only for an intended change")
    }
}

enum AssignmentVectors {
    static func make() -> [String: Any] {
        let epoch: UInt64 = 1_288_000
        let keys = (0..<6).map(Net.key)
        let plan = EpochPlan(epoch: epoch, observedNodes: keys.count, parameters: QoSParameters())
        var tickets: [[String: Any]] = []
        var betas: [NodeKey: [UInt8]] = [:]
        for k in keys {
            let proof = Ticket.prove(epoch: epoch, key: k)
            let beta = Ticket.verify(proof: proof, node: NodeKey(k), epoch: epoch)!
            betas[NodeKey(k)] = beta
            tickets.append(["seed": Hex.encode(k.seed), "publicKey": Hex.encode(k.publicKeyBytes), "peerId": k.peerID.description,
                            "alpha": Hex.encode(Ticket.alpha(epoch: epoch)), "proof": Hex.encode(proof), "beta": Hex.encode(beta),
                            "activityDraw": String(Sortition.activityDraw(beta))])
        }
        // The pair draws at τ = 1/2, so that the vector shows selected and unselected pairs.
        var pairs: [[String: Any]] = []
        for p in keys.map(NodeKey.init) {
            for c in keys.map(NodeKey.init) where c != p {
                let draw = Sortition.pairDraw(proverBeta: betas[p]!, challenger: c)
                pairs.append(["prover": p.description, "challenger": c.description, "draw": String(draw),
                              "selectedAtHalf": Sortition.selected(draw, probability: 0.5)])
            }
        }
        let out: [String: Any] = [
            "description": "drtc QoS assignment (Specs/qos.md): tickets = ECVRF-EDWARDS25519-SHA512-TAI over 'drtc-qos-ticket/1' || u64be(epoch); activityDraw = beta[0..8] BE; draw = SHA-256('drtc-qos-assign/1' || beta_prover || challenger_key)[0..8] BE",
            "epoch": String(epoch), "observedNodes": keys.count, "networkSize": plan.networkSize, "tau": plan.tau,
            "activeProbability": plan.activeProbability, "tickets": tickets, "pairs": pairs,
        ]
        if ProcessInfo.processInfo.environment["DRTC_WRITE_FIXTURES"] == "1" {
            let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/qos/assignment-vectors.json")
            try! JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]).write(to: url)
        }
        return out
    }
}
