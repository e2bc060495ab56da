/// One of the orchestrator's status probes of a room on a node (Specs/rpc.md `GET
/// /rpc/v1/status`), as counts of the receipt's kind (`RoomSample`).
public struct RoomSighting: Hashable, Sendable {
    public var atMs: UInt64
    public var publishers: Double
    public var viewers: Double
    /// The pipes among them (incoming ones count as publishers, outgoing ones as viewers).
    public var pipesIn: Double
    public var pipesOut: Double

    public init(atMs: UInt64, publishers: Double, viewers: Double, pipesIn: Double = 0, pipesOut: Double = 0) {
        self.atMs = atMs
        self.publishers = publishers
        self.viewers = viewers
        self.pipesIn = pipesIn
        self.pipesOut = pipesOut
    }
}

/// What an orchestrator's own records say about a node's room (Specs/rewards.md "Data
/// supplied"): the tokens it issued, its probes' sightings, the node's place in the placement
/// and how far it has already countersigned.
public struct ReceiptEvidence: Sendable {
    /// Media tokens this orchestrator issued for the node and room, per role.
    public var publishTokens: Int
    public var viewTokens: Int
    /// The node's role in the room's placement; nil: the node is not in a placement here.
    public var role: SessionReceipt.Role?
    /// Probes that saw the room on the node, in time order.
    public var sightings: [RoomSighting]
    /// The end of the last part countersigned for this node and room (parts never overlap).
    public var countersignedUntilMs: UInt64

    public init(publishTokens: Int, viewTokens: Int, role: SessionReceipt.Role?, sightings: [RoomSighting], countersignedUntilMs: UInt64 = 0) {
        self.publishTokens = publishTokens
        self.viewTokens = viewTokens
        self.role = role
        self.sightings = sightings
        self.countersignedUntilMs = countersignedUntilMs
    }
}

/// The orchestrator's decision on a node's receipt (pure): countersign it as it is, propose a
/// clamped receipt (the node signs that one instead), or refuse.
public enum CountersignDecision: Equatable, Sendable {
    case countersign
    case clamp(SessionReceipt, why: String)
    case refuse(code: String, message: String)
}

public enum CountersignPolicy {
    /// A probe stands for the time around it: probes run once a second, so the room was on the
    /// node up to this long before the first sighting and after the last.
    public static let sightingSlackMs: UInt64 = 2_000
    /// Receipts stamped further ahead of the orchestrator's clock are refused.
    public static let futureSlackMs: UInt64 = 30_000

    /// Decides on `receipt` (its signature already verified; the caller is its node) from what
    /// orchestrator `me` recorded. Every number it countersigns is backed: the part's time by
    /// sightings, n_p by publish tokens (plus incoming pipes) and by the most publishers any
    /// probe saw in the part, n_c likewise with view tokens, outgoing pipes and viewers.
    public static func decide(_ receipt: SessionReceipt, me: [UInt8], epochSeconds: UInt32, evidence e: ReceiptEvidence,
                              nowMs now: UInt64) -> CountersignDecision {
        if receipt.orchestrator != me {
            return .refuse(code: "wrong_orchestrator", message: "the receipt names orchestrator \(receipt.orchestratorID), not this peer")
        }
        if receipt.epochSeconds != epochSeconds {
            return .refuse(code: "bad_schedule", message: "the network's epochs are \(epochSeconds) s, the receipt's \(receipt.epochSeconds) s")
        }
        if receipt.endMs > now + futureSlackMs {
            return .refuse(code: "future_receipt", message: "the part ends at \(receipt.endMs), after this peer's clock (\(now))")
        }
        if e.publishTokens <= 0 && e.viewTokens <= 0 {
            return .refuse(code: "no_tokens", message: "this peer issued no media tokens for \(receipt.nodeID) in room \(receipt.room)")
        }
        let lower = receipt.startMs > sightingSlackMs ? receipt.startMs - sightingSlackMs : 0
        let within = e.sightings.filter { $0.atMs >= lower && $0.atMs <= receipt.endMs + sightingSlackMs }
        guard let first = within.first, let last = within.last else {
            return .refuse(code: "not_observed", message: "this peer's probes did not see room \(receipt.room) on the node between \(receipt.startMs) and \(receipt.endMs)")
        }
        var backed = receipt
        var why: [String] = []
        let start = max(receipt.startMs, first.atMs > sightingSlackMs ? first.atMs - sightingSlackMs : 0, e.countersignedUntilMs)
        let end = min(receipt.endMs, last.atMs + sightingSlackMs)
        guard end > start else {
            return .refuse(code: "not_observed", message: "what this peer's probes saw of room \(receipt.room) is already countersigned up to \(e.countersignedUntilMs)")
        }
        if start != receipt.startMs || end != receipt.endMs {
            backed.startMs = start
            backed.endMs = end
            why.append("time \(start)–\(end) as probes saw it")
        }
        let maxPublishers = min(within.map(\.publishers).max() ?? 0, Double(e.publishTokens) + (within.map(\.pipesIn).max() ?? 0))
        let maxViewers = min(within.map(\.viewers).max() ?? 0, Double(e.viewTokens) + (within.map(\.pipesOut).max() ?? 0))
        // Sightings come from another node's status answer: bounded before the conversion.
        func centi(_ x: Double) -> UInt32 { UInt32(min(Double(UInt32.max), max(0, x) * 100)) }
        let np = min(receipt.publishersCenti, centi(maxPublishers))
        let nc = min(receipt.viewersCenti, centi(maxViewers))
        if np != receipt.publishersCenti { backed.publishersCenti = np; why.append("publishers \(Double(np) / 100)") }
        if nc != receipt.viewersCenti { backed.viewersCenti = nc; why.append("viewers \(Double(nc) / 100)") }
        if let role = e.role, role != receipt.role { backed.role = role; why.append("role \(role.rawValue)") }
        if np == 0 && nc == 0 {
            return .refuse(code: "not_observed", message: "this peer's records back no publisher or viewer of room \(receipt.room) on the node")
        }
        return why.isEmpty ? .countersign : .clamp(backed, why: why.joined(separator: ", "))
    }

    /// Whether `proposed` only lowers what `original` claimed (same node, orchestrator, room
    /// and epoch, a sub-interval, no larger counts): a node signs a clamped proposal only then.
    public static func isNarrowing(_ proposed: SessionReceipt, of original: SessionReceipt) -> Bool {
        proposed.node == original.node && proposed.orchestrator == original.orchestrator && proposed.room == original.room
            && proposed.epochSeconds == original.epochSeconds && proposed.epoch == original.epoch
            && proposed.startMs >= original.startMs && proposed.endMs <= original.endMs
            && proposed.publishersCenti <= original.publishersCenti && proposed.viewersCenti <= original.viewersCenti
            && proposed.tokenDigest == original.tokenDigest && proposed.bytesForwarded == original.bytesForwarded
            && proposed.problem == nil
    }
}
