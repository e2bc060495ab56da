// Allocation: which media node serves a client (whitepaper 4.1.3, 4.3.1–4.3.3). A pure function
// over a snapshot of candidate nodes, the room's placement and recent allocations, after Jicofo's
// BridgeSelector (a strategy over a snapshot; a "stress" with a penalty for recent joins) and
// LiveKit's node selectors — except that a full node makes the room grow an edge instead of
// refusing the client. Policy and weights: Specs/orchestrator.md "Choosing a node".
import Identity
import Registry

/// One media node as the planner sees it.
public struct NodeCandidate: Hashable, Sendable {
    public var id: PeerID
    /// API base URL (registry `url`).
    public var url: String
    public var region: String
    public var geo: GeoPoint? { didSet { position = geo.map(SpherePosition.init) } }
    /// `geo` on the unit sphere (for distances without trigonometry per candidate).
    public private(set) var position: SpherePosition?
    public var version: String
    /// Declared session limit; 0 = undeclared (no limit).
    public var maxSessions: Int
    /// Sessions the node last reported (record or status RPC).
    public var sessions: Int
    public var cpuPermille: Int
    /// Uplink used / capacity, 0…1 (0 when undeclared).
    public var uplinkUtilization: Double
    /// QoS score 0…1 once the QoS protocol scores this node; nil until then.
    public var qosScore: Double?
    /// False while RPC calls to the node fail (Specs/orchestrator.md "Failures").
    public var healthy: Bool

    public init(id: PeerID, url: String, region: String, geo: GeoPoint?, version: String, maxSessions: Int = 0,
                sessions: Int = 0, cpuPermille: Int = 0, uplinkUtilization: Double = 0, qosScore: Double? = nil, healthy: Bool = true) {
        self.id = id
        self.url = url
        self.region = region
        self.geo = geo
        self.position = geo.map(SpherePosition.init)
        self.version = version
        self.maxSessions = maxSessions
        self.sessions = sessions
        self.cpuPermille = cpuPermille
        self.uplinkUtilization = uplinkUtilization
        self.qosScore = qosScore
        self.healthy = healthy
    }

    /// From a registry record (its position already placed on the sphere); `qosScore` is the
    /// seam for the QoS protocol's score.
    public init(record signed: SignedRecord, qosScore: Double? = nil, healthy: Bool = true) {
        let r = signed.record
        id = r.nodeID
        url = r.url
        region = r.region
        geo = r.geo
        position = signed.position
        version = r.version
        maxSessions = Int(r.capacity.maxSessions)
        sessions = Int(r.load.activeSessions)
        cpuPermille = Int(r.load.cpuPermille)
        uplinkUtilization = r.capacity.bandwidthUpKbps > 0 ? Double(r.load.bandwidthUpUsedKbps) / Double(r.capacity.bandwidthUpKbps) : 0
        self.qosScore = qosScore
        self.healthy = healthy
    }
}

/// What a client asks for.
public struct AllocationRequest: Hashable, Sendable {
    public var room: String
    public var role: ClientRole
    /// The client's position (query or body), else the asked peer's own.
    public var position: GeoPoint?
    public var region: String?
    public var strategy: Strategy

    public init(room: String, role: ClientRole, position: GeoPoint? = nil, region: String? = nil, strategy: Strategy = .auto) {
        self.room = room
        self.role = role
        self.position = position
        self.region = region
        self.strategy = strategy
    }
}

/// Allocations handed out recently, per node: they count as load until the node's own figures
/// catch up, and add a ramp-up penalty so that a burst of joins spreads (Jicofo's "stress").
/// Counted in one-second buckets over the window: constant memory per node, whatever the rate.
public struct RecentAllocations: Sendable {
    public let windowMs: UInt64
    private let slots: Int
    /// Each node's row in `cells`.
    private var rows: [PeerID: Int] = [:]
    /// `slots` cells per row, one per second of the window: the second (high 40 bits) and the
    /// allocations counted in it (low 24 bits). One flat array: a lookup touches one row, not a
    /// node's own arrays scattered over the heap (the planner's cache misses were there).
    private var cells: [UInt64] = []
    private var prunedAt: UInt64 = 0
    private static let countBits: UInt64 = 24
    private static let countMask: UInt64 = (1 << countBits) - 1

    public init(windowMs: UInt64 = 10_000) {
        self.windowMs = windowMs
        slots = Int(max(1, windowMs / 1000))
    }

    /// Allocations to `id` within the window (to the second).
    public func count(_ id: PeerID, nowMs: UInt64) -> Int {
        guard let row = rows[id] else { return 0 }
        let now = nowMs / 1000
        var n = 0
        cells.withUnsafeBufferPointer { cells in
            for cell in cells[row * slots ..< (row + 1) * slots] where (cell >> Self.countBits) + UInt64(slots) > now {
                n += Int(cell & Self.countMask)
            }
        }
        return n
    }

    public mutating func record(_ id: PeerID, nowMs: UInt64) {
        let second = nowMs / 1000
        let row: Int
        if let r = rows[id] {
            row = r
        } else {
            row = rows.count
            rows[id] = row
            cells.append(contentsOf: repeatElement(0, count: slots))
        }
        let i = row * slots + Int(second % UInt64(slots))
        let stamp = second << Self.countBits
        if cells[i] & ~Self.countMask != stamp { cells[i] = stamp }
        if cells[i] & Self.countMask < Self.countMask { cells[i] += 1 }
        // Nodes with nothing recent leave once per window: memory follows the allocation rate.
        if rows.count > 1024, nowMs >= prunedAt + windowMs {
            prunedAt = nowMs
            prune(second: second)
        }
    }

    private mutating func prune(second: UInt64) {
        var kept: [PeerID: Int] = [:]
        var keptCells: [UInt64] = []
        for (id, row) in rows {
            let r = cells[row * slots ..< (row + 1) * slots]
            guard r.contains(where: { ($0 >> Self.countBits) + UInt64(slots) > second }) else { continue }
            kept[id] = kept.count
            keptCells.append(contentsOf: r)
        }
        rows = kept
        cells = keptCells
    }
}

/// Weights and limits (Specs/orchestrator.md). Costs are in milliseconds of round trip: 100 km
/// of fibre is about 1 ms.
public struct PlannerPolicy: Hashable, Sendable {
    /// This node's software version: candidates must share its major (and, for 0.x, minor) version.
    public var version: String
    public var maxUplinkUtilization = 0.95
    /// A node scored below this by QoS is not allocated.
    public var minQoSScore = 0.2
    /// A full node costs this much more than an idle one (utilisation squared).
    public var loadWeightMs = 40.0
    /// Cost of a QoS score of 0 against 1; unscored nodes count as 0.5 when others are scored.
    public var qosWeightMs = 30.0
    /// Per allocation to the node in the last `RecentAllocations.windowMs`.
    public var recentPenaltyMs = 4.0
    /// A node already in the room is taken if it costs at most this much more than the best.
    public var roomSlackMs = 10.0
    /// Power of two choices among the nodes within this of the best (or 10 % of it).
    public var toleranceMs = 3.0
    public var poolSize = 8
    /// Pipes one node carries in a room (fanout degree); further edges attach deeper.
    public var maxPipesPerNode = 16

    /// What a compatible version starts with: `MAJOR.` (for 0.x: `0.MINOR.`).
    private let compatiblePrefix: String

    public init(version: String) {
        self.version = version
        let parts = version.split(separator: "-").first.map { $0.split(separator: ".").compactMap { Int($0) } } ?? []
        compatiblePrefix = parts.count >= 2 ? (parts[0] > 0 ? "\(parts[0])." : "0.\(parts[1]).") : "\u{0}"
    }

    /// Same major version, and same minor while the major is 0 (semantic versioning).
    public func compatible(_ other: String) -> Bool { other.utf8.starts(with: compatiblePrefix.utf8) }
}

/// The planner's answer.
public struct Decision: Hashable, Sendable {
    public var node: NodeCandidate
    public var placement: RoomPlacement
    /// Pipe to build for a node that joins the room.
    public var newPipe: RoomPlacement.Pipe?
    public var strategy: Strategy
}

public enum PlanErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// No node can take the client (503 + Retry-After).
        case noCapacity = "no_capacity"
        public var description: String { rawValue }
    }
}
public typealias PlanError = CodedError<PlanErrorDomain>

public enum Planner {
    /// Chooses the node for `request` and returns the room's new placement. `seed` drives the
    /// power-of-two-choices draw, so a decision is reproducible.
    public static func plan(_ request: AllocationRequest, candidates: [NodeCandidate], placement: RoomPlacement?,
                            recent: RecentAllocations, policy: PlannerPolicy, owner: String, nowMs: UInt64,
                            seed: UInt64) throws(PlanError) -> Decision {
        let strategy = placement?.strategy ?? (request.strategy == .auto ? .proximity : request.strategy)
        var room = placement ?? RoomPlacement(room: request.room, strategy: strategy, owner: owner)
        if room.owner != owner {
            // Another owner's placement, continued here (its owner died): the next version names
            // this owner, so replica holders, which keep only newer versions, learn of it.
            room.owner = owner
            room.version += 1
        }
        let anyScored = candidates.contains { $0.qosScore != nil }
        // Indices into `candidates` throughout: no copies of the candidates on the hot path.
        let pending = candidates.map { recent.count($0.id, nowMs: nowMs) }
        let usable = candidates.indices.filter { eligible(candidates[$0], pending: pending[$0], policy: policy) }
        let inRoom = Set(room.nodes.map(\.nodeID))

        var pool = usable
        if strategy == .regional {
            let region = request.region ?? nearest(usable.map { candidates[$0] }, to: request.position)?.region
            if let region, pool.contains(where: { candidates[$0].region == region }) { pool.removeAll { candidates[$0].region != region } }
        }
        if strategy == .fanout, let origin = room.origin {
            if request.role == .publish, let o = pool.first(where: { candidates[$0].id == origin.nodeID }) {
                // One ingest node per livestream.
                return Decision(node: candidates[o], placement: room, newPipe: nil, strategy: strategy)
            }
            if request.role == .view, pool.contains(where: { candidates[$0].id != origin.nodeID }) {
                // Viewers watch edges: the origin sends one stream per edge, not per viewer.
                pool.removeAll { candidates[$0].id == origin.nodeID }
            }
        }
        guard !pool.isEmpty else {
            throw PlanError(.noCapacity, usable.isEmpty && !candidates.isEmpty
                ? "all \(candidates.count) candidate nodes are full, unhealthy or run an incompatible version"
                : "no live media node is known")
        }
        let from = request.position.map(SpherePosition.init)
        var scored: [(index: Int, cost: Double)] = pool.map { i in
            let c = candidates[i]
            let load = loadCost(c, pending: pending[i], policy: policy)
            let qos = qosCost(c, anyScored: anyScored, policy: policy)
            // Regional spreads by load: four times the load weight, distance only breaks ties.
            let distance = distanceMs(c, from: from)
            let cost = strategy == .regional ? 4 * load + distance / 10 + qos : distance + load + qos
            return (i, cost)
        }
        scored.sort { a, b in a.cost != b.cost ? a.cost < b.cost : candidates[a.index].id < candidates[b.index].id }
        let best = scored[0].cost
        var chosen: NodeCandidate
        if strategy != .regional,
           let member = scored.first(where: { inRoom.contains(candidates[$0.index].id) }), member.cost <= best + policy.roomSlackMs {
            chosen = candidates[member.index]  // keep the room together: no new pipe
        } else {
            let limit = best + max(policy.toleranceMs, best * 0.1)
            let near = scored.prefix { $0.cost <= limit }.prefix(policy.poolSize)
            var pick = near.first!
            if near.count >= 2 {
                var rng = SplitMix64(seed: seed)
                let i = Int(rng.next() % UInt64(near.count))
                var j = Int(rng.next() % UInt64(near.count - 1))
                if j >= i { j += 1 }
                let (a, b) = (near[near.startIndex + i], near[near.startIndex + j])
                pick = a.cost != b.cost ? (a.cost < b.cost ? a : b) : (candidates[a.index].id < candidates[b.index].id ? a : b)
            }
            chosen = candidates[pick.index]
        }
        guard !inRoom.contains(chosen.id) else {
            return Decision(node: chosen, placement: room, newPipe: nil, strategy: strategy)
        }
        // A new node joins the room's tree under the nearest node with a free pipe slot (fanout:
        // under the origin while it has one).
        let role: RoomPlacement.NodeRole = strategy == .fanout ? (request.role == .publish && room.origin == nil ? .origin : .edge) : .member
        var parent: PeerID?
        if !room.nodes.isEmpty {
            let open = room.nodes.filter { room.degree($0.nodeID) < policy.maxPipesPerNode }
            let from = open.isEmpty ? room.nodes : open
            if strategy == .fanout, role == .edge, let o = room.origin, from.contains(where: { $0.nodeID == o.nodeID }) {
                parent = o.nodeID
            } else {
                parent = from.min { a, b in
                    let (da, db) = (km(a.geo, chosen.geo), km(b.geo, chosen.geo))
                    return da != db ? da < db : a.nodeID < b.nodeID
                }!.nodeID
            }
        }
        room.nodes.append(.init(nodeID: chosen.id, role: role, parent: parent, url: chosen.url, geo: chosen.geo))
        room.version += 1
        return Decision(node: chosen, placement: room, newPipe: parent.map { .init(parent: $0, child: chosen.id) }, strategy: strategy)
    }

    /// Hard limits: healthy, compatible software, room under every declared capacity (recent
    /// allocations count as sessions), QoS score not below the floor. CPU is the machine's load
    /// average, which everything else on the machine moves too: it weighs in the cost only.
    public static func eligible(_ c: NodeCandidate, recent: RecentAllocations, policy: PlannerPolicy, nowMs: UInt64) -> Bool {
        eligible(c, pending: recent.count(c.id, nowMs: nowMs), policy: policy)
    }

    static func eligible(_ c: NodeCandidate, pending: Int, policy: PlannerPolicy) -> Bool {
        guard c.healthy, policy.compatible(c.version), c.uplinkUtilization < policy.maxUplinkUtilization else { return false }
        if c.maxSessions > 0, c.sessions + pending >= c.maxSessions { return false }
        if let q = c.qosScore, q < policy.minQoSScore { return false }
        return true
    }

    static func loadCost(_ c: NodeCandidate, pending: Int, policy: PlannerPolicy) -> Double {
        var u = max(Double(c.cpuPermille) / 1000, c.uplinkUtilization)
        if c.maxSessions > 0 { u = max(u, Double(c.sessions + pending) / Double(c.maxSessions)) }
        u = min(1, u)
        return policy.loadWeightMs * u * u + policy.recentPenaltyMs * Double(pending)
    }

    static func qosCost(_ c: NodeCandidate, anyScored: Bool, policy: PlannerPolicy) -> Double {
        guard anyScored else { return 0 }
        return policy.qosWeightMs * (1 - min(1, max(0, c.qosScore ?? 0.5)))
    }

    /// Round-trip milliseconds over fibre for the great-circle distance: 100 km ≈ 1 ms.
    static func distanceMs(_ c: NodeCandidate, from p: SpherePosition?) -> Double {
        guard let p, let q = c.position else { return 0 }
        return q.km(to: p) / 100
    }

    static func km(_ a: GeoPoint?, _ b: GeoPoint?) -> Double {
        guard let a, let b else { return 0 }
        return greatCircleKm(a, b)
    }

    /// The first of the nearest nodes with a position (one distance per node).
    static func nearest(_ nodes: [NodeCandidate], to p: GeoPoint?) -> NodeCandidate? {
        guard let p else { return nil }
        var best: (node: NodeCandidate, km: Double)?
        for n in nodes where n.geo != nil {
            let d = km(n.geo, p)
            if best == nil || d < best!.km { best = (n, d) }
        }
        return best?.node
    }
}

/// Consistent hashing of rooms over peers (Karger et al. 1997): every peer builds the same ring
/// from the same live peers, so all agree which peer owns a room's placement and which two keep
/// its replicas (Specs/orchestrator.md "Where placement lives"). A lookup is a binary search,
/// so a peer can find a room's owner per request among 10,000 peers; a peer joining or leaving
/// moves only the rooms next to its points.
public struct OwnerRing: Sendable {
    /// Points per peer, for an even share of rooms.
    public static let pointsPerPeer = 8
    private let points: [(position: UInt64, peer: PeerID)]
    public let peers: Set<PeerID>

    public init(peers: some Sequence<PeerID>) {
        let unique = Set(peers)
        self.peers = unique
        var points: [(position: UInt64, peer: PeerID)] = []
        points.reserveCapacity(unique.count * Self.pointsPerPeer)
        for peer in unique {
            for i in 0..<Self.pointsPerPeer { points.append((Self.position(peer.bytes + [UInt8(i)]), peer)) }
        }
        self.points = points.sorted { $0.position != $1.position ? $0.position < $1.position : $0.peer < $1.peer }
    }

    /// The first `count` distinct peers clockwise from the room's position that `skip` does not
    /// exclude: the owner first, then the replica holders.
    public func owners(of room: String, count: Int, skip: (PeerID) -> Bool = { _ in false }) -> [PeerID] {
        guard !points.isEmpty, count > 0 else { return [] }
        let target = Self.position(Array(room.utf8))
        var lo = 0, hi = points.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].position < target { lo = mid + 1 } else { hi = mid }
        }
        var out: [PeerID] = []
        var seen = Set<PeerID>()
        for step in 0..<points.count {
            let peer = points[(lo + step) % points.count].peer
            guard seen.insert(peer).inserted, !skip(peer) else { continue }
            out.append(peer)
            if out.count == count { break }
        }
        return out
    }

    static func position(_ bytes: [UInt8]) -> UInt64 {
        SHA256.hash(bytes).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
