import Gossipsub
import Identity
import Registry

/// The registry's use of Gossipsub: topic, router and score parameters, and the
/// `drtc/registry/1` validation pipeline (Specs/gossip.md). Pure, so that the production shell
/// (`Node/MeshGossip`) and the simulator (`Simulation`) run exactly the same policy.
public enum RegistryGossip {
    public static let topic = "drtc/registry/1"

    /// The spec's parameters, plus a 5 ms forward delay: with it, IDONTWANT cuts duplicates
    /// per delivery from ~4.6 to ~1.5 on a 50-node loopback mesh for ~5 ms more p99 latency
    /// (Specs/gossip.md "Duplicates"). Registry updates are not latency-critical.
    public static func defaultParameters() -> GossipParameters {
        var p = GossipParameters()
        p.forwardDelayMs = 5
        return p
    }

    /// Scoring for the mesh's topics (the registry's and QoS's); the reasoning is in
    /// Specs/gossip.md.
    public static func scoreParameters() -> ScoreParameters {
        var score = ScoreParameters()
        score.topics[topic] = TopicScoreParameters()
        score.topics[QoSGossip.topic] = QoSGossip.scoreParameters()
        return score
    }

    /// The `drtc/registry/1` validation pipeline after the router's StrictSign check: record
    /// signature and fields, then HLC bounds, then the LWW comparison with the table.
    ///
    /// - Parameters:
    ///   - verify: decodes and verifies the record (production: `SignedRecord.verify`; the
    ///     simulator may memoise it, see Specs/simulation.md).
    ///   - outcome: what merging the record into the local table would do.
    /// - Returns: the verdict, and the verified record when it is accepted.
    public static func validate(
        _ message: GossipMessage, nowMs now: UInt64,
        verify: ([UInt8], UInt64) throws(RecordRejection) -> SignedRecord = { bytes, now throws(RecordRejection) in
            try SignedRecord.verify(encoded: bytes, nowMs: now)
        },
        outcome: (SignedRecord) -> MergeOutcome
    ) -> (ValidationResult, SignedRecord?) {
        let record: SignedRecord
        do { record = try verify(message.data, now) } catch {
            return (.reject("record_" + error.reason), nil)
        }
        // A record already past its owner's TTL is a replay: honest peers gossip fresh
        // updates only (old ones travel by sync, which is not subject to this).
        if record.expiresAtMs <= now { return (.reject("record_replayed"), nil) }
        switch outcome(record) {
        case .accepted: return (.accept, record)
        // Already held, typically learned by sync while this message travelled: still a
        // valid, fresh message, so it is delivered (the merge is a no-op) and forwarded.
        // Ignoring it would cut the gossip flood wherever sync got there first
        // (`drtc sim --scenario join-storm`, Specs/simulation.md).
        case .duplicate: return (.accept, record)
        case .stale: return (.ignore("record_stale"), nil)
        case .expired: return (.reject("record_replayed"), nil)
        }
    }
}
