import Gossipsub
import Identity
import QoS

/// The QoS topic's policy (Specs/qos.md "Validation"): validation of `drtc/qos/1` messages
/// after the router's StrictSign check, shared by the production shell (`Node`) and the
/// simulator, as `RegistryGossip.validate` is for the registry topic.
public enum QoSGossip {
    public static let topic = "drtc/qos/1"
    /// The QoS set's reconciliation protocol: the registry's sessions over bundles.
    public static let syncProtocolID = "/drtc/qos-sync/1.0.0"

    /// - Parameters:
    ///   - schedule: the network's schedule; bundles of another are refused.
    ///   - verify: decodes and verifies the bundle (the simulator memoises it).
    ///   - outcome: what inserting it into the local set would do.
    ///   - unassigned: true when the local view proves a report's pair is not assigned.
    public static func validate(
        _ message: GossipMessage, nowMs now: UInt64, schedule: QoSSchedule,
        verify: ([UInt8]) throws(QoSRejection) -> SignedQoSBundle = { bytes throws(QoSRejection) in try SignedQoSBundle.verify(encoded: bytes) },
        outcome: (SignedQoSBundle) -> QoSLedger.InsertOutcome,
        unassigned: (SignedQoSBundle, QoSReport) -> Bool = { _, _ in false }
    ) -> (ValidationResult, SignedQoSBundle?) {
        let bundle: SignedQoSBundle
        do { bundle = try verify(message.data) } catch {
            return (.reject("qos_" + error.reason), nil)
        }
        if let problem = check(bundle, nowMs: now, schedule: schedule) { return (.reject("qos_" + problem.reason), nil) }
        if bundle.bundle.reports.contains(where: { unassigned(bundle, $0) }) { return (.reject("qos_" + QoSRejection.unassignedPair.reason), nil) }
        switch outcome(bundle) {
        case .added, .equivocation:
            return (.accept, bundle)
        case .duplicate:
            // Learned by sync meanwhile: still fresh and valid, so it is forwarded.
            return (.accept, bundle)
        case .discarded:
            return (.ignore("qos_equivocation_known"), nil)
        }
    }

    /// The time- and configuration-dependent checks that apply to gossip only: sync carries
    /// old bundles, and the set's validity must not depend on when a bundle arrives.
    public static func check(_ b: SignedQoSBundle, nowMs now: UInt64, schedule: QoSSchedule) -> QoSRejection? {
        if b.bundle.schedule != schedule {
            return .badSchedule("the network runs \(schedule.epochSeconds)/\(schedule.testSeconds) s sampled every \(schedule.sampleIntervalMs) ms")
        }
        guard schedule.gossipWindow(b.epoch).contains(now) else { return .wrongEpoch }
        if !b.bundle.reports.isEmpty && now + schedule.clockSlackMs < schedule.testEndMs(b.epoch) { return .premature }
        return nil
    }

    /// Scoring for the QoS topic: the registry topic's parameters (Specs/gossip.md "Peer
    /// scoring"), so an invalid bundle costs its sender what an invalid record does.
    public static func scoreParameters() -> TopicScoreParameters { TopicScoreParameters() }
}
