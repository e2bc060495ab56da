import Gossipsub
import QoS

/// The scenarios `drtc sim` knows (Specs/simulation.md "Scenarios").
public enum ScenarioName: String, CaseIterable, Sendable {
    case steady
    case joinStorm = "join-storm"
    case churn
    case partitionHeal = "partition-heal"
    case floodAttack = "flood-attack"
    case eclipseAttempt = "eclipse-attempt"
    /// steady, plus QoS tests every epoch (Specs/simulation.md "QoS").
    case qos
    /// qos, with `--attackers` of the peers colluding (inflating each other, sinking and
    /// withholding on the others).
    case qosCollusion = "qos-collusion"
}

/// QoS in the simulator (Specs/simulation.md "QoS"): the production schedule, tickets,
/// sortition, bundles, gossip validation and aggregation; media measurement modelled from the
/// links.
public struct QoSSimSettings: Sendable, Equatable {
    /// The network's schedule; shorter than production so that a run covers several epochs.
    public var schedule = QoSSchedule(epochSeconds: 120, testSeconds: 60, sampleIntervalMs: 5000)
    /// The production epoch the gossip load is normalised to (bytes per epoch / this).
    public var productionEpochSeconds = 1320.0
    /// Share of honest peers whose media path is degraded (ground truth: V = 0).
    public var degradedShare = 0.1
    /// Extra packet loss on a degraded peer's media.
    public var degradedLoss = 0.1
    /// Test stream rate (packets of 1,100 bytes).
    public var bitrateKbps = 1000.0
    /// Media packet loss on every path (besides degradation).
    public var mediaLoss = 0.005
    public var parameters = QoSParameters()

    public init() {}
}

/// The simulated network between peers (Specs/simulation.md "Links"). Links carry libp2p
/// streams, i.e. TCP: a lost segment is retransmitted after an RTO, delaying the frame and
/// every later frame on the connection (head-of-line blocking); nothing is lost for good.
public struct LinkModel: Sendable, Equatable {
    /// One-way latency in ms (mean), and the half-width of its uniform jitter.
    public var latencyMs: Double = 50
    public var jitterMs: Double = 10
    /// Probability that a frame's segment is lost and has to be retransmitted.
    public var loss: Double = 0
    /// Per-node uplink in bytes per second (0: unlimited).
    public var uplinkBytesPerSecond: Double = 12_500_000
    /// One-way latency by region pair (`regionLatencyMs[a][b]`, ms), replacing `latencyMs` when
    /// present. Peers get regions round-robin.
    public var regionLatencyMs: [[Double]]? = nil
    /// Bytes that Noise (2-byte length + 16-byte tag) and Yamux (12-byte header) add to each
    /// frame in production; counted in the traffic figures, not simulated byte by byte.
    public var framingOverheadBytes = 30

    public init() {}

    /// A built-in matrix of one-way latencies between the six drtc regions
    /// (EU, NAM, ASI, SAM, AFR, OCE), roughly half the public inter-continent RTTs.
    public static let worldRegionLatencyMs: [[Double]] = [
        [10, 45, 110, 100, 70, 140],
        [45, 15, 90, 65, 110, 95],
        [110, 90, 20, 160, 130, 60],
        [100, 65, 160, 20, 170, 160],
        [70, 110, 130, 170, 25, 190],
        [140, 95, 60, 160, 190, 15],
    ]
}

/// Everything that determines a run. Identical configurations give identical reports.
public struct SimConfig: Sendable {
    public var peers = 100
    /// Virtual seconds measured (after the warm-up of scenarios that start from a steady state).
    public var durationSeconds = 60.0
    public var seed: UInt64 = 1
    public var scenario: ScenarioName = .steady
    public var link = LinkModel()
    /// Connection bounds (production `--min-peers`, `--max-peers`).
    public var minPeers = 8
    public var maxPeers = 12
    /// Production `--refresh-interval`, `--ttl`, `--sync-interval`, `--gossip-heartbeat-ms`.
    public var refreshIntervalSeconds: UInt32 = 30
    public var ttlSeconds: UInt32 = 90
    public var syncIntervalSeconds: UInt64 = 30
    public var heartbeatMs: UInt64 = 1_000
    /// Router parameters; `RegistryGossip.defaultParameters()` unless a researcher changes them.
    public var gossip: GossipParameters
    /// Virtual seconds run before measuring, for scenarios that start from a steady state
    /// (mesh formation); not part of `durationSeconds`.
    public var warmupSeconds = 5.0
    /// churn: share of peers that leave or crash per minute (half each) and are replaced.
    public var churnPerMinute = 0.05
    /// flood-attack / eclipse-attempt: share of peers that are attackers.
    public var attackerShare = 0.1
    /// partition-heal: number of sides, and when the split and the heal happen (share of the duration).
    public var partitionSides = 2
    public var partitionAt = 0.2
    public var healAt = 0.5
    /// Interval between samples of table agreement, ms of virtual time.
    public var sampleIntervalMs: UInt64 = 1_000
    /// QoS settings (the `qos` and `qos-collusion` scenarios).
    public var qosSettings = QoSSimSettings()
    /// How long after a crash its peers notice (TCP/Yamux keep-alive), ms.
    public var crashDetectionMs: UInt64 = 10_000
    /// Dial timeout towards an unreachable address (partitioned side), ms.
    public var dialTimeoutMs: UInt64 = 5_000

    public init(gossip: GossipParameters) { self.gossip = gossip }
}
