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
    public var geo: GeoPoint?
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
        self.version = version
        self.maxSessions = maxSessions
        self.sessions = sessions
        self.cpuPermille = cpuPermille
        self.uplinkUtilization = uplinkUtilization
        self.qosScore = qosScore
        self.healthy = healthy
    }

    /// From a registry record; `qosScore` is the seam for the QoS protocol's score.
    public init(record signed: SignedRecord, qosScore: Double? = nil, healthy: Bool = true) {
        let r = signed.record
        var uplink = 0.0
        if r.capacity.bandwidthUpKbps > 0 { uplink = Double(r.load.bandwidthUpUsedKbps) / Double(r.capacity.bandwidthUpKbps) }
        self.init(id: r.nodeID, url: r.url, region: r.region, geo: r.geo, version: r.version,
                  maxSessions: Int(r.capacity.maxSessions), sessions: Int(r.load.activeSessions),
                  cpuPermille: Int(r.load.cpuPermille), uplinkUtilization: uplink, qosScore: qosScore, healthy: healthy)
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
public struct RecentAllocations: Sendable {
    public var windowMs: UInt64
    private var times: [PeerID: [UInt64]] = [:]

    public init(windowMs: UInt64 = 10_000) { self.windowMs = windowMs }

    public func count(_ id: PeerID, nowMs: UInt64) -> Int {
        guard let t = times[id] else { return 0 }
        var n = 0
        for x in t.reversed() {
            guard x + windowMs > nowMs else { break }
            n += 1
        }
        return n
    }

    public mutating func record(_ id: PeerID, nowMs: UInt64) {
        var t = times[id] ?? []
        if let firstLive = t.firstIndex(where: { $0 + windowMs > nowMs }) { t.removeFirst(firstLive) } else { t.removeAll() }
        t.append(nowMs)
        times[id] = t
        if times.count > 4096 { times = times.filter { $0.value.last.map { $0 + windowMs > nowMs } ?? false } }
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

    public init(version: String) { self.version = version }

    public func compatible(_ other: String) -> Bool {
        func parts(_ v: String) -> [Int] { v.split(separator: "-").first.map { $0.split(separator: ".").compactMap { Int($0) } } ?? [] }
        let a = parts(version), b = parts(other)
        guard a.count >= 2, b.count >= 2 else { return false }
        return a[0] == b[0] && (a[0] > 0 || a[1] == b[1])
    }
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
        room.owner = owner
        let anyScored = candidates.contains { $0.qosScore != nil }
        let usable = candidates.filter { Self.eligible($0, recent: recent, policy: policy, nowMs: nowMs) }
        let inRoom = Set(room.nodes.map(\.nodeId))

        var pool = usable
        let costOf: (NodeCandidate) -> Double
        switch strategy {
        case .regional:
            let region = request.region ?? nearest(usable, to: request.position)?.region
            if let region, pool.contains(where: { $0.region == region }) { pool = pool.filter { $0.region == region } }
            // Spread by load: four times the load weight, distance only breaks ties.
            costOf = { c in
                let load: Double = 4 * loadCost(c, recent: recent, policy: policy, nowMs: nowMs)
                let distance: Double = distanceMs(c, request.position) / 10
                return load + distance + qosCost(c, anyScored: anyScored, policy: policy)
            }
        case .fanout, .proximity, .auto:
            costOf = { c in
                let load: Double = loadCost(c, recent: recent, policy: policy, nowMs: nowMs)
                return distanceMs(c, request.position) + load + qosCost(c, anyScored: anyScored, policy: policy)
            }
        }
        if strategy == .fanout, let origin = room.origin {
            if request.role == .publish, let o = pool.first(where: { $0.id.description == origin.nodeId }) {
                // One ingest node per livestream.
                return Decision(node: o, placement: room, newPipe: nil, strategy: strategy)
            }
            if request.role == .view, pool.contains(where: { $0.id.description != origin.nodeId }) {
                // Viewers watch edges: the origin sends one stream per edge, not per viewer.
                pool.removeAll { $0.id.description == origin.nodeId }
            }
        }
        guard !pool.isEmpty else {
            throw PlanError(.noCapacity, usable.isEmpty && !candidates.isEmpty
                ? "all \(candidates.count) candidate nodes are full, unhealthy or run an incompatible version"
                : "no live media node is known")
        }
        let scored: [(c: NodeCandidate, cost: Double)] = pool.map { (c: $0, cost: costOf($0)) }.sorted { a, b in
            if a.cost != b.cost { return a.cost < b.cost }
            return a.c.id < b.c.id
        }
        let best = scored[0].cost
        var chosen: NodeCandidate
        if strategy != .regional,
           let member = scored.first(where: { inRoom.contains($0.c.id.description) }), member.cost <= best + policy.roomSlackMs {
            chosen = member.c  // keep the room together: no new pipe
        } else {
            let limit = best + max(policy.toleranceMs, best * 0.1)
            let near = scored.prefix { $0.cost <= limit }.prefix(policy.poolSize)
            chosen = near.first!.c
            if near.count >= 2 {
                var rng = SplitMix64(seed: seed)
                let i = Int(rng.next() % UInt64(near.count))
                var j = Int(rng.next() % UInt64(near.count - 1))
                if j >= i { j += 1 }
                let (a, b) = (near[near.startIndex + i], near[near.startIndex + j])
                chosen = a.cost != b.cost ? (a.cost < b.cost ? a.c : b.c) : (a.c.id < b.c.id ? a.c : b.c)
            }
        }
        guard !inRoom.contains(chosen.id.description) else {
            return Decision(node: chosen, placement: room, newPipe: nil, strategy: strategy)
        }
        // A new node joins the room's tree under the nearest node with a free pipe slot (fanout:
        // under the origin while it has one).
        let role: RoomPlacement.NodeRole = strategy == .fanout ? (request.role == .publish && room.origin == nil ? .origin : .edge) : .member
        var parent: String?
        if !room.nodes.isEmpty {
            let open = room.nodes.filter { room.degree($0.nodeId) < policy.maxPipesPerNode }
            let from = open.isEmpty ? room.nodes : open
            if strategy == .fanout, role == .edge, let o = room.origin, from.contains(where: { $0.nodeId == o.nodeId }) {
                parent = o.nodeId
            } else {
                parent = from.min { a, b in
                    let (da, db) = (km(a.geo, chosen.geo), km(b.geo, chosen.geo))
                    return da != db ? da < db : a.nodeId < b.nodeId
                }!.nodeId
            }
        }
        room.nodes.append(.init(nodeId: chosen.id.description, role: role, parent: parent, url: chosen.url, geo: chosen.geo))
        room.version += 1
        return Decision(node: chosen, placement: room, newPipe: parent.map { .init(parent: $0, child: chosen.id.description) }, strategy: strategy)
    }

    /// Hard limits: healthy, compatible software, room under every declared capacity (recent
    /// allocations count as sessions), QoS score not below the floor. CPU is the machine's load
    /// average, which everything else on the machine moves too: it weighs in the cost only.
    public static func eligible(_ c: NodeCandidate, recent: RecentAllocations, policy: PlannerPolicy, nowMs: UInt64) -> Bool {
        guard c.healthy, policy.compatible(c.version), c.uplinkUtilization < policy.maxUplinkUtilization else { return false }
        if c.maxSessions > 0, c.sessions + recent.count(c.id, nowMs: nowMs) >= c.maxSessions { return false }
        if let q = c.qosScore, q < policy.minQoSScore { return false }
        return true
    }

    static func loadCost(_ c: NodeCandidate, recent: RecentAllocations, policy: PlannerPolicy, nowMs: UInt64) -> Double {
        let pending = recent.count(c.id, nowMs: nowMs)
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
    static func distanceMs(_ c: NodeCandidate, _ p: GeoPoint?) -> Double { km(c.geo, p) / 100 }

    static func km(_ a: GeoPoint?, _ b: GeoPoint?) -> Double {
        guard let a, let b else { return 0 }
        return greatCircleKm(a, b)
    }

    static func nearest(_ nodes: [NodeCandidate], to p: GeoPoint?) -> NodeCandidate? {
        guard let p else { return nil }
        return nodes.filter { $0.geo != nil }.min { km($0.geo, p) < km($1.geo, p) }
    }
}

/// Rendezvous (highest-random-weight) hashing of rooms over peers: every peer ranks the same
/// live nodes the same way, so all agree which peer owns a room's placement and which two keep
/// its replicas (Specs/orchestrator.md "Where placement lives").
public enum Rendezvous {
    public static func rank(room: String, peers: [PeerID]) -> [PeerID] {
        let roomBytes = Array(room.utf8) + [0]
        return peers.map { (weight(roomBytes + $0.bytes), $0) }
            .sorted { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
            .map(\.1)
    }

    static func weight(_ bytes: [UInt8]) -> UInt64 {
        SHA256.hash(bytes).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
