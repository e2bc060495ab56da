import Identity
import QoS
import Registry

/// The ledger inputs the replicated QoS set provides (Specs/rewards.md "Inputs"): the epoch's
/// node set, availability from tests answered, V of the epoch, and which positions the tests
/// found plausible. A pure function of the QoS aggregate (itself a pure function of the set),
/// so replicas with equal `qosDigest` get equal inputs.
public enum QoSRewardEvidence {
    /// The inputs of epoch `e`: one node per node seen in the set in `e` (a ticket for `e` or
    /// a bundle of `e`) whose first ticket is for `e` or earlier, with
    /// - u and l of its `TestAvailability` up to `e`, in seconds (epochs × `epochSeconds`);
    /// - V = its measured score in `e` (nil when `e` did not measure it);
    /// - its declared position (`position`), dropped when its tests say the position is
    ///   implausible (Specs/qos.md "Location"): no position means L = C = 0 and no count in
    ///   the others' ρ_M.
    /// `demand` and the data supplied come from elsewhere.
    public static func inputs(epoch e: UInt64, aggregate: QoSAggregate, epochSeconds: Double,
                              position: (PeerID) -> GeoPoint?, demand: [DemandPoint] = []) -> RewardInputs {
        let seen = aggregate.nodesSeen(epoch: e)
        guard !seen.isEmpty else { return RewardInputs(epoch: e, nodes: [], demand: demand) }
        let availability = aggregate.testAvailability(upTo: e)
        let measured = aggregate.epochs[e]?.measurements ?? [:]
        // A node whose first ticket is for a later epoch (its first bundle reveals it) has no
        // lifetime yet: it joins the ledgers from that epoch on.
        let nodes = seen.compactMap { key -> RewardNodeInput? in
            guard let a = availability[key] else { return nil }
            let id = key.peerID
            let plausible = aggregate.nodes[key]?.locationPlausible ?? true
            return RewardNodeInput(node: id, position: plausible ? position(id) : nil,
                                   uptimeSeconds: a.answered * epochSeconds, lifetimeSeconds: a.expected * epochSeconds,
                                   quality: measured[key]?.score)
        }
        return RewardInputs(epoch: e, nodes: nodes, demand: demand)
    }
}
