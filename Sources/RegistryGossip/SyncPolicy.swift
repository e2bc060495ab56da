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
public struct SyncPolicy: Sendable {
    public static let defaultMaxInbound = 4
    /// Live records a busy responder hands out instead of reconciling.
    public static let busySample = 16

    public let maxInbound: Int
    public private(set) var inbound = 0
    public private(set) var initiating = false
    private var wanted = false

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
        if !completed { wanted = true }
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

    public mutating func inboundEnded() { inbound = max(0, inbound - 1) }
}
