/// Milliseconds on whatever clock the caller drives the router with (wall clock in
/// production, virtual clock in the simulator).
public typealias Millis = UInt64

/// The protocol a peer negotiated on its gossip stream.
public enum GossipProtocol: String, Sendable, CaseIterable, Comparable {
    case v10 = "/meshsub/1.0.0"
    case v11 = "/meshsub/1.1.0"
    case v12 = "/meshsub/1.2.0"

    /// Best first, as offered in multistream-select.
    public static let preference: [GossipProtocol] = [.v12, .v11, .v10]

    var rank: Int { self == .v10 ? 0 : self == .v11 ? 1 : 2 }
    public static func < (a: GossipProtocol, b: GossipProtocol) -> Bool { a.rank < b.rank }

    public var supportsPeerExchange: Bool { self >= .v11 }
    public var supportsIDontWant: Bool { self >= .v12 }
}

/// Router parameters (gossipsub-v1.0.md "Parameters", v1.1 additions, v1.2 IDONTWANT).
/// Defaults are the spec's; Specs/gossip.md explains the few that drtc changes.
public struct GossipParameters: Sendable {
    public var d = 6
    public var dLow = 4
    public var dHigh = 12
    public var dLazy = 6
    /// Peers kept by score when the mesh is pruned down to D.
    public var dScore = 4
    /// Outbound connections the mesh must keep (v1.1 §"Outbound Mesh Quotas"); < dLow, ≤ D/2.
    public var dOut = 2
    public var heartbeatIntervalMs: Millis = 1_000
    public var fanoutTTLMs: Millis = 60_000
    /// Message cache windows, and how many of them are gossiped.
    public var historyLength = 5
    public var historyGossip = 3
    public var seenTTLMs: Millis = 120_000
    public var pruneBackoffMs: Millis = 60_000
    public var unsubscribeBackoffMs: Millis = 10_000
    /// A GRAFT this soon after a PRUNE is a flood (extra behaviour penalty).
    public var graftFloodThresholdMs: Millis = 10_000
    public var pruneBackoffSlackMs: Millis = 1_000
    /// Peers exchanged in a PRUNE.
    public var prunePeers = 16
    public var gossipFactor = 0.25
    /// IHAVE: at most this many IDs advertised per message, and at most `maxIHaveMessages`
    /// IHAVE messages accepted from a peer per heartbeat.
    public var maxIHaveLength = 5_000
    public var maxIHaveMessages = 10
    /// How long a peer has to answer our IWANT before it counts as a broken promise.
    public var iwantFollowupMs: Millis = 3_000
    /// Times a message is sent to one peer in answer to IWANTs before further requests are ignored.
    public var gossipRetransmission = 3
    public var opportunisticGraftTicks = 60
    public var opportunisticGraftPeers = 2
    /// Publish to every subscribed peer above the publish threshold, not only the mesh (v1.1).
    public var floodPublish = true
    /// Messages whose data is at least this large trigger IDONTWANT to the mesh (v1.2).
    public var idontwantMessageThreshold = 0
    /// IDONTWANT IDs remembered per peer; older ones are dropped first.
    public var maxIDontWantPerPeer = 10_000
    public var idontwantTTLMs: Millis = 3_000
    /// How long a validated message waits before it is forwarded to a mesh peer, while the
    /// IDONTWANT sent on its receipt travels ahead of it. Mesh neighbours that received the
    /// message at about the same time then skip each other instead of crossing copies
    /// (Specs/gossip.md "Duplicates"). With `forwardDelayRTTFactor` > 0 this is the least
    /// hold; otherwise the hold for every peer. 0 (and no factor) forwards at once.
    public var forwardDelayMs: Millis = 0
    /// The hold for a peer follows its link: this factor × the round-trip time the shell
    /// measured to the peer (`GossipRouter.setRoundTripTime`), within [`forwardDelayMs`,
    /// `maxForwardDelayMs`] (`GossipRouter.forwardHold`). 0: a fixed `forwardDelayMs`.
    public var forwardDelayRTTFactor = 0.0
    /// The longest hold, whatever the round-trip time.
    public var maxForwardDelayMs: Millis = 250
    public var limits = RPCLimits()

    public init() {}
}

/// Global score thresholds (gossipsub-v1.1.md "Score Thresholds").
public struct ScoreThresholds: Sendable {
    /// Below: no gossip to or from the peer.
    public var gossip = -10.0
    /// Below: the peer is left out of flood publishing.
    public var publish = -50.0
    /// Below: every RPC from the peer is ignored.
    public var graylist = -80.0
    /// Above: PX from the peer's PRUNE is followed.
    public var acceptPX = 10.0
    /// Median mesh score below which opportunistic grafting kicks in.
    public var opportunisticGraft = 5.0
    public init() {}
}

/// Per-topic score parameters (P1–P4).
public struct TopicScoreParameters: Sendable {
    public var topicWeight = 1.0
    // P1: time in mesh.
    public var timeInMeshWeight = 0.0166
    public var timeInMeshQuantumMs: Millis = 1_000
    public var timeInMeshCap = 600.0
    // P2: first message deliveries.
    public var firstMessageDeliveriesWeight = 1.0
    public var firstMessageDeliveriesDecay = 0.9998
    public var firstMessageDeliveriesCap = 20.0
    // P3: mesh message delivery rate (weight ≤ 0; 0 disables it).
    public var meshMessageDeliveriesWeight = 0.0
    public var meshMessageDeliveriesDecay = 0.97
    public var meshMessageDeliveriesCap = 10.0
    public var meshMessageDeliveriesThreshold = 1.0
    public var meshMessageDeliveriesWindowMs: Millis = 10
    public var meshMessageDeliveriesActivationMs: Millis = 60_000
    // P3b: sticky mesh failure penalty.
    public var meshFailurePenaltyWeight = 0.0
    public var meshFailurePenaltyDecay = 0.97
    // P4: invalid messages (weight < 0).
    public var invalidMessageDeliveriesWeight = -10.0
    public var invalidMessageDeliveriesDecay = 0.997
    public init() {}
}

/// Score parameters (gossipsub-v1.1.md "Peer Scoring").
public struct ScoreParameters: Sendable {
    public var topics: [String: TopicScoreParameters] = [:]
    /// Caps the positive part of the topic component (0 = no cap).
    public var topicScoreCap = 50.0
    // P5: application-specific (unused until QoS scores exist).
    public var appSpecificWeight = 1.0
    // P6: IP colocation.
    public var ipColocationFactorWeight = -5.0
    public var ipColocationFactorThreshold = 3.0
    /// Addresses exempt from P6. Loopback is exempt so that many processes on one machine
    /// (tests, `drtc sim --processes`) are not punished for sharing 127.0.0.1.
    public var ipColocationWhitelist: Set<String> = ["127.0.0.1", "::1"]
    // P7: behaviour penalty.
    public var behaviourPenaltyWeight = -1.0
    public var behaviourPenaltyThreshold = 3.0
    public var behaviourPenaltyDecay = 0.99
    public var decayIntervalMs: Millis = 1_000
    /// Counters below this decay to 0.
    public var decayToZero = 0.01
    /// How long a disconnected peer's score is remembered (so reconnecting does not wash it).
    public var retainScoreMs: Millis = 3_600_000
    public init() {}
}
