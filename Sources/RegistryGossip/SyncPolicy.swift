import Identity

/// Which registry sync sessions a node runs (Specs/gossip.md "Anti-entropy"). Pure: the
/// production shell (`Node/MeshGossip`, `Node/MeshService`) and the simulator drive it.
///
/// - One initiator session at a time. A new outbound connection, or the anti-entropy timer,
///   asks for a session; while one runs, the request is remembered and served on a later
///   maintenance tick with a random connected peer.
/// - At most `maxInbound` responder sessions at a time; beyond that the node answers with
///   `RegistrySyncSession.busyReply`: `busySample` of its live records, whose addresses send
///   the initiator to other peers (Specs/registry-sync.md "Busy responders").
///
/// Without these limits a join storm through three bootstrap peers asks each of them for a
/// full-table sync per joiner per connection: at 1,000 joiners in 10 s and a 1,000-record table
/// that is ~135 MB/s of demand on ~37 MB/s of bootstrap uplink, and the joiners, who know
/// no one else, stall behind the queue (`drtc sim --scenario join-storm --peers 1000`,
/// Specs/simulation.md).
///
/// - News spreads at once. A session that merges records gossip never brought (older than
///   `newsAgeMs`, and winners) is what a healed partition looks like from one node: its
///   neighbours most likely lack them too. The node then reconciles with every other connected
///   peer, one session after another, instead of waiting for their anti-entropy ticks; each of
///   them that learns news does the same (Specs/gossip.md "Partitions").
public struct SyncPolicy: Sendable {
    public static let defaultMaxInbound = 4
    /// Live records a busy responder hands out instead of reconciling.
    public static let busySample = 16

    public let maxInbound: Int
    public private(set) var inbound = 0
    public private(set) var initiating = false
    private var wanted = false
    /// Peers to reconcile with because a session brought news, in order.
    private var spreadQueue: [PeerID] = []
    private var lastSpreadMs: UInt64?
    /// Whether a session has completed: the first one is how a node catches up (joining,
    /// restarting), and what it learns then is not news to its neighbours.
    private var caughtUp = false

    /// A synced record this much older than the receiver's clock was not in gossip flight:
    /// gossip reaches every peer in about a second (`drtc sim`, Specs/simulation.md).
    public static let newsAgeMs: UInt64 = 5_000
    /// At most one wave of news per this interval.
    public static let spreadIntervalMs: UInt64 = 10_000

    public init(maxInbound: Int = defaultMaxInbound) { self.maxInbound = max(1, maxInbound) }

    /// A session is wanted (new outbound connection, anti-entropy). True: start one now.
    public mutating func request() -> Bool {
        if initiating {
            wanted = true
            return false
        }
        initiating = true
        wanted = false
        return true
    }

    /// The initiator session ended; when it did not complete (refused, aborted, connection
    /// lost, or could not start), another peer is tried on the next tick.
    public mutating func initiatorEnded(completed: Bool) {
        initiating = false
        if completed { caughtUp = true } else { wanted = true }
    }

    /// Called on every maintenance tick: true means "start a session with a random connected
    /// peer now" (a remembered request).
    public mutating func retryDue() -> Bool {
        guard wanted, !initiating else { return false }
        initiating = true
        wanted = false
        return true
    }

    /// A peer opens a sync stream: true accepts it (call `inboundEnded` when it ends).
    public mutating func acceptInbound() -> Bool {
        guard inbound < maxInbound else { return false }
        inbound += 1
        return true
    }

    /// A responder session ended (`completed`: it reconciled to the end).
    public mutating func inboundEnded(completed: Bool = false) {
        inbound = max(0, inbound - 1)
        if completed { caughtUp = true }
    }

    // MARK: news

    /// Whether a record a session merged is news: it won the merge and is older than
    /// `newsAgeMs` by the registry clock.
    public static func isNews(accepted: Bool, recordWallMs: UInt64, nowMs: UInt64) -> Bool {
        accepted && recordWallMs < nowMs && nowMs - recordWallMs > newsAgeMs
    }

    /// A session with `peer` (either role) merged `news` records that are news: every other
    /// connected peer, in random order, is reconciled with next — unless a wave started less
    /// than `spreadIntervalMs` ago, or this node has not caught up yet. `nowMs` is monotonic.
    /// Returns whether a wave started. Call it before `initiatorEnded`/`inboundEnded` for the
    /// session: what a node's first completed session brings is its own catching up.
    @discardableResult
    public mutating func sessionBrought<R: RandomNumberGenerator>(news: Int, from peer: PeerID, connected: [PeerID], nowMs: UInt64, using rng: inout R) -> Bool {
        guard news > 0, caughtUp else { return false }
        if let last = lastSpreadMs, nowMs &- last < Self.spreadIntervalMs { return false }
        lastSpreadMs = nowMs
        spreadQueue = connected.filter { $0 != peer }.sorted()
        spreadQueue.shuffle(using: &rng)
        return true
    }

    /// The next peer of a wave, when no initiator session runs (the slot is then taken: call
    /// `initiatorEnded`). `isConnected` skips peers that went away.
    public mutating func spreadDue(isConnected: (PeerID) -> Bool) -> PeerID? {
        guard !initiating else { return nil }
        while !spreadQueue.isEmpty {
            let peer = spreadQueue.removeFirst()
            guard isConnected(peer) else { continue }
            initiating = true
            return peer
        }
        return nil
    }
}
