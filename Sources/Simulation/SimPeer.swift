import Gossipsub
import Identity
import QoS
import Registry
import RegistryGossip

/// What a simulated peer is.
enum PeerRole: Equatable {
    case honest
    /// flood-attack: publishes invalid records and spams control messages.
    case flooder
    /// eclipse-attempt: connects to the victim, grafts, and forwards nothing.
    case eclipser
}

/// What a validated gossip message carries to its topic's sink.
enum Delivery {
    case record(SignedRecord)
    case bundle(SignedQoSBundle)
}

/// One open connection as seen from one side.
struct SimConnection {
    /// The dialler's index (high 32 bits) and its dial counter.
    var id: UInt64
    var outbound: Bool
    var openedAt: SimTime = 0
    /// Arrival time of the last frame this side sent on it: TCP delivers in order.
    var lastArrival: SimTime = 0
}

/// What waits for a peer's uplink.
enum OutgoingFrame {
    case gossip(to: Int32, GossipRPC)
    case sync(to: Int32, toResponder: Bool, [UInt8])
}

/// A recent merge: the record's timestamp, its item ID and the item it replaced.
struct RecentMerge {
    var wallMs: UInt64
    var added: SyncID
    var removed: SyncID?
}

/// Which side of a registry-sync stream a session is.
struct SyncKey: Hashable {
    var remote: Int32
    var initiator: Bool
}

/// One simulated drtc node: the production router and CRDT replica, plus the little state
/// that `MeshService`/`MeshGossip` keep around them (connections, dial planner, sync sessions).
final class SimPeer {
    // What every frame and timer reads comes first, next to the object's header (which
    // retaining the peer touches anyway): a simulator holds 10,000 peers, and the peer an
    // event belongs to is rarely still in cache.
    var alive = true
    var leaving = false
    let role: PeerRole
    let index: Int32
    /// The partition whose thread runs this peer's events.
    let partition: Partition
    var connections: [Int32: SimConnection] = [:]
    var forwardTimer: SimTime?
    var uplinkFreeAt: SimTime = 0
    var uplinkArmed = false
    var outgoingHead = 0
    var outgoing: [OutgoingFrame] = []
    var bytesOut = 0
    var bytesIn = 0
    /// Sequence numbers of the events this peer schedules (`Simulator.schedule`).
    var eventCounter: UInt64 = 0
    /// This peer's own random numbers: its handlers draw from nothing shared, so a run does not
    /// depend on the order in which partitions run.
    var rng: SplitMix64
    let id: PeerID
    let region: Int
    var router: GossipRouter
    var replica: RegistryReplica
    var fingerprint = TableFingerprint()
    let key: Ed25519KeyPair
    var connectionCounter: UInt32 = 0
    var dialing: Set<Int32> = []
    var planner = DialPlanner()
    var exchanged: [PeerID] = []
    var syncs: [SyncKey: RegistrySyncSession] = [:]
    var syncPolicy = SyncPolicy()
    let joinedAt: SimTime
    var lastExploreMs: UInt64 = 0
    /// Records of nodes that joined before this one, and when it first held all of them.
    var knownEarlier = 0
    var caughtUpAt: SimTime?
    var refreshIntervalMs: UInt64 = 30_000
    var nextRefreshAt: SimTime = 0
    var announce = AnnouncePolicy()
    /// Partition side (partition-heal).
    var side = 0
    var attackCounter: UInt64 = 0
    var diedAt: SimTime?
    /// Merges of the last few seconds, for the settled-table fingerprint.
    var recent: [RecentMerge] = []
    var baselineBytesOut = 0
    var baselineBytesIn = 0
    /// QoS (Specs/simulation.md "QoS"): the bundles this peer holds, by epoch; the provers its
    /// duties name this epoch; its media ground truth and behaviour; its QoS gossip bytes.
    var qosHeld: [UInt64: Set<SyncID>] = [:]
    var qosDuties: [NodeKey] = []
    var qosDegraded = false
    var qosColluder = false
    var qosBytesOut = 0
    var qosBytesIn = 0
    var qosBaselineOut = 0
    var qosBaselineIn = 0

    init(index: Int32, key: Ed25519KeyPair, region: Int, role: PeerRole, router: GossipRouter, replica: RegistryReplica, joinedAt: SimTime,
         partition: Partition, seed: UInt64) {
        self.index = index
        self.partition = partition
        self.rng = SplitMix64(seed: seed)
        self.key = key
        self.id = key.peerID
        self.region = region
        self.role = role
        self.router = router
        self.replica = replica
        self.joinedAt = joinedAt
    }

    var sortedConnections: [Int32] { connections.keys.sorted() }

    func unitRandom() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
}
