import Gossipsub
import Identity
import Registry

/// The registry's use of Gossipsub: topic, router and score parameters, and the
/// `drtc/registry/1` validation pipeline (Specs/gossip.md). Pure, so that the production shell
/// (`Node/MeshGossip`) and the simulator (`Simulation`) run exactly the same policy.
public enum RegistryGossip {
    public static let topic = "drtc/registry/1"

    /// The spec's parameters, plus a forward hold that follows each link
    /// (Specs/gossip.md "Duplicates"): `forwardHoldRTTFactor` × the peer's round-trip time, at
    /// least 5 ms. On loopback the 5 ms cut duplicates per delivery from ~4.6 to ~1.5 for
    /// ~5 ms more p99 latency; on 50 ± 10 ms links the hold grows to about one one-way latency,
    /// the least that lets IDONTWANT overtake the crossing copies. Registry updates are not
    /// latency-critical.
    public static func defaultParameters() -> GossipParameters {
        var p = GossipParameters()
        p.forwardDelayMs = 5
        p.forwardDelayRTTFactor = forwardHoldRTTFactor
        p.maxForwardDelayMs = 250
        return p
    }

    /// The hold as a share of a link's round-trip time (Specs/gossip.md "Duplicates").
    public static let forwardHoldRTTFactor = 0.8

    /// Scoring for the mesh's topics (the registry's and QoS's); the reasoning is in
    /// Specs/gossip.md.
    public static func scoreParameters() -> ScoreParameters {
        var score = ScoreParameters()
        score.topics[topic] = TopicScoreParameters()
        score.topics[QoSGossip.topic] = QoSGossip.scoreParameters()
        score.topics[ReceiptGossip.topic] = ReceiptGossip.scoreParameters()
        return score
    }

    /// The `drtc/registry/1` validation pipeline after the router's StrictSign check: record
    /// signature and fields, then HLC bounds, then the LWW comparison with the table.
    ///
    /// - Parameters:
    ///   - verify: decodes and verifies the record (production: `SignedRecord.verify`; the
    ///     simulator may memoise it, see Specs/simulation.md).
    ///   - outcome: what merging the record into the local table would do.
    ///   - clockSettled: whether this node's clock agrees with a majority of its peers'
    ///     (`ClockOffsetEstimator.Estimate.isSettled`). While it does not, a record that fails
    ///     the time checks (`future_timestamp`, `replayed`) may be this node's own fault: the
    ///     message is ignored instead of rejected, so the forwarder is not penalised
    ///     (Specs/registry.md "Clocks").
    /// - Returns: the verdict, and the verified record when it is accepted.
    public static func validate(
        _ message: GossipMessage, nowMs now: UInt64, clockSettled: Bool = true,
        verify: ([UInt8], UInt64) throws(RecordRejection) -> SignedRecord = { bytes, now throws(RecordRejection) in
            try SignedRecord.verify(encoded: bytes, nowMs: now)
        },
        outcome: (SignedRecord) -> MergeOutcome
    ) -> (ValidationResult, SignedRecord?) {
        let record: SignedRecord
        do { record = try verify(message.data, now) } catch {
            if error == .futureTimestamp && !clockSettled { return (.ignore("record_" + error.reason), nil) }
            return (.reject("record_" + error.reason), nil)
        }
        // A record already past its owner's TTL is a replay: honest peers gossip fresh
        // updates only (old ones travel by sync, which is not subject to this).
        if record.expiresAtMs <= now { return (clockSettled ? .reject("record_replayed") : .ignore("record_replayed"), nil) }
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
