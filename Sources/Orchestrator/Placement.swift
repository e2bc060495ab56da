// A room's placement (Specs/orchestrator.md): which media nodes host it, in which role, and the
// pipes between them as a tree of parent links. Jicofo keeps its relay topology as data and
// validates that it is a tree (`Cascade.kt`); this value does the same, so a planner bug that
// would make a loop (media circling between nodes) is caught before any pipe is built.
import Identity
import Registry

/// How a room's participants are spread over media nodes (whitepaper 4.3.1).
public enum Strategy: String, Codable, Hashable, Sendable, CaseIterable {
    /// Proximity for a new room; an existing room keeps its strategy.
    case auto
    /// Each participant on its nearest node; the room's nodes linked.
    case proximity
    /// Participants of one region spread over that region's nodes by load.
    case regional
    /// One origin node ingests; edge nodes near the viewers receive it over pipes.
    case fanout
}

public struct RoomPlacement: Codable, Hashable, Sendable {
    public enum NodeRole: String, Codable, Hashable, Sendable {
        /// Fanout: the node that ingests the stream.
        case origin
        /// Fanout: a node that serves viewers from the origin's stream.
        case edge
        /// Proximity and regional: a node serving participants of any role.
        case member
    }

    public struct Node: Codable, Hashable, Sendable {
        public var nodeID: PeerID
        public var role: NodeRole
        /// The node this one pulls its pipe from; nil for the tree's root.
        public var parent: PeerID?
        /// The node's API base URL (its registry record's `url`).
        public var url: String
        public var latitude: Double?
        public var longitude: Double?

        public init(nodeID: PeerID, role: NodeRole, parent: PeerID?, url: String, geo: GeoPoint?) {
            self.nodeID = nodeID
            self.role = role
            self.parent = parent
            self.url = url
            latitude = geo?.latitude
            longitude = geo?.longitude
        }

        public var nodeId: String { nodeID.description }

        public var geo: GeoPoint? {
            guard let latitude, let longitude else { return nil }
            return GeoPoint(latitude: latitude, longitude: longitude)
        }

        enum CodingKeys: String, CodingKey { case nodeId, role, parent, url, latitude, longitude }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            nodeID = try PeerID.decode(c, .nodeId)
            role = try c.decode(NodeRole.self, forKey: .role)
            parent = try c.contains(.parent) ? PeerID.decode(c, .parent) : nil
            url = try c.decode(String.self, forKey: .url)
            latitude = try c.decodeIfPresent(Double.self, forKey: .latitude)
            longitude = try c.decodeIfPresent(Double.self, forKey: .longitude)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(nodeID.description, forKey: .nodeId)
            try c.encode(role, forKey: .role)
            try c.encodeIfPresent(parent?.description, forKey: .parent)
            try c.encode(url, forKey: .url)
            try c.encodeIfPresent(latitude, forKey: .latitude)
            try c.encodeIfPresent(longitude, forKey: .longitude)
        }
    }

    /// A pipe: `child` connects to `parent` (ICE and DTLS client), media flows both ways.
    public struct Pipe: Hashable, Sendable {
        public var parent: PeerID
        public var child: PeerID
        public init(parent: PeerID, child: PeerID) {
            self.parent = parent
            self.child = child
        }
        /// The pipe's id on both nodes: one pipe per node pair per room.
        public func id(room: String) -> String {
            let digest = SHA256.hash(Array(room.utf8) + [0] + parent.bytes + [0] + child.bytes)
            return Hex.encode(digest.prefix(12))
        }
    }

    public var room: String
    /// Never `.auto`: resolved when the room is first placed.
    public var strategy: Strategy
    public var nodes: [Node]
    /// Raised by every change; replicas keep the highest.
    public var version: UInt64
    /// The orchestrator that wrote this version (its PeerID).
    public var owner: String

    public init(room: String, strategy: Strategy, nodes: [Node] = [], version: UInt64 = 0, owner: String) {
        self.room = room
        self.strategy = strategy
        self.nodes = nodes
        self.version = version
        self.owner = owner
    }

    public func node(_ id: PeerID) -> Node? { nodes.first { $0.nodeID == id } }
    public var origin: Node? { nodes.first { $0.role == .origin } }
    public var pipes: [Pipe] { nodes.compactMap { n in n.parent.map { Pipe(parent: $0, child: n.nodeID) } } }
    public func degree(_ id: PeerID) -> Int {
        nodes.reduce(0) { $0 + ($1.parent == id ? 1 : 0) } + (node(id)?.parent == nil ? 0 : 1)
    }

    public enum ValidationError: Error, Hashable, Sendable, CustomStringConvertible {
        case duplicateNode(PeerID)
        case unknownParent(node: PeerID, parent: PeerID)
        case selfParent(PeerID)
        case notOneRoot(Int)
        case cycle(PeerID)
        case autoStrategy
        public var description: String {
            switch self {
            case .duplicateNode(let n): "node \(n) appears twice"
            case .unknownParent(let n, let p): "node \(n) has parent \(p), which is not in the room"
            case .selfParent(let n): "node \(n) is its own parent"
            case .notOneRoot(let k): "a non-empty placement has exactly one root, this one has \(k)"
            case .cycle(let n): "node \(n) is on a cycle"
            case .autoStrategy: "a placement's strategy is resolved, never auto"
            }
        }
    }

    /// A loop-free tree: unique nodes, known parents, one root, every node reaches the root.
    /// (n nodes, n − 1 parent links and no cycle imply connected.)
    public func validate() throws(ValidationError) {
        guard strategy != .auto else { throw .autoStrategy }
        var ids = Set<PeerID>()
        for n in nodes {
            guard ids.insert(n.nodeID).inserted else { throw .duplicateNode(n.nodeID) }
        }
        guard !nodes.isEmpty else { return }
        var parent: [PeerID: PeerID] = [:]
        for n in nodes {
            guard let p = n.parent else { continue }
            guard p != n.nodeID else { throw .selfParent(n.nodeID) }
            guard ids.contains(p) else { throw .unknownParent(node: n.nodeID, parent: p) }
            parent[n.nodeID] = p
        }
        let roots = nodes.count - parent.count
        guard roots == 1 else { throw .notOneRoot(roots) }
        for n in nodes {
            var at = n.nodeID
            var steps = 0
            while let p = parent[at] {
                at = p
                steps += 1
                if steps > nodes.count { throw .cycle(n.nodeID) }
            }
        }
    }

    /// Removes a node that died or drained and keeps the tree whole: its children re-attach to
    /// its parent, or, if it was the root, the first child becomes the root and the others
    /// attach to it. Returns the pipes to build for the re-attached children.
    public mutating func remove(_ id: PeerID) -> [Pipe] {
        guard let gone = node(id) else { return [] }
        nodes.removeAll { $0.nodeID == id }
        let children = nodes.indices.filter { nodes[$0].parent == id }
        var built: [Pipe] = []
        var newParent = gone.parent
        for i in children {
            nodes[i].parent = newParent
            if let p = newParent {
                built.append(Pipe(parent: p, child: nodes[i].nodeID))
            } else {
                newParent = nodes[i].nodeID  // the new root; the other children attach to it
            }
        }
        version += 1
        return built
    }
}

extension PeerID {
    /// A PeerID written as its base58btc text in JSON.
    static func decode<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> PeerID {
        let text = try c.decode(String.self, forKey: key)
        do { return try PeerID(text) } catch {
            throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(key.stringValue) is not a PeerID")
        }
    }
}
