/// What a media node serves in one room at one instant (Specs/rewards.md "Data supplied"): the
/// input of `ReceiptAccumulator` on the node, and of the orchestrator's own sightings.
public struct RoomSample: Hashable, Sendable {
    public var room: String
    /// The key of the orchestrator whose tokens admitted the room's clients (the latest admitted).
    public var orchestrator: [UInt8]
    public var role: SessionReceipt.Role
    /// n_p and n_c now: local publishers plus incoming pipes, local viewers plus outgoing pipes
    /// (an edge pipe is one viewer of the node that feeds it, and one publisher of the edge).
    public var publishers: Double
    public var viewers: Double
    /// SHA-256s of the media tokens that admitted clients to the room.
    public var tokenHashes: Set<[UInt8]>
    /// RTP bytes the node has sent in the room so far (a counter).
    public var bytesForwarded: UInt64

    public init(room: String, orchestrator: [UInt8], role: SessionReceipt.Role, publishers: Double, viewers: Double,
                tokenHashes: Set<[UInt8]> = [], bytesForwarded: UInt64 = 0) {
        self.room = room
        self.orchestrator = orchestrator
        self.role = role
        self.publishers = publishers
        self.viewers = viewers
        self.tokenHashes = tokenHashes
        self.bytesForwarded = bytesForwarded
    }
}

/// The media node's receipt accumulator (pure; time is an input): fed the rooms it serves at
/// each sample, it integrates each room's publisher and viewer counts over time and hands back
/// one `SessionReceipt` per room and epoch part — when the room's session ends (the room is
/// gone or empty), when its orchestrator changes, and at every epoch boundary it spans, so that
/// every receipt belongs to one epoch. Counts hold from one sample to the next.
public struct ReceiptAccumulator: Sendable {
    struct Part: Sendable {
        var orchestrator: [UInt8]
        var role: SessionReceipt.Role
        var startMs: UInt64
        var lastMs: UInt64
        var publishers: Double
        var viewers: Double
        /// ∫ n dt in count·ms since `startMs`.
        var publisherMs: Double = 0
        var viewerMs: Double = 0
        var tokens: Set<[UInt8]>
        var bytesAtStart: UInt64
        var bytesLast: UInt64
    }

    public let node: [UInt8]
    public let epochs: RewardEpochs
    private var parts: [String: Part] = [:]

    public init(node: [UInt8], epochSeconds: UInt32) {
        self.node = node
        epochs = RewardEpochs(epochSeconds: UInt64(epochSeconds))
    }

    /// Rooms with an open part.
    public var openRooms: [String] { parts.keys.sorted() }

    /// One sample: `rooms` are all the rooms the node serves at `now`. Returns the parts it
    /// closed, in room order, then time order.
    public mutating func observe(_ rooms: [RoomSample], atMs now: UInt64) -> [SessionReceipt] {
        var out: [SessionReceipt] = []
        let seen = Dictionary(rooms.map { ($0.room, $0) }, uniquingKeysWith: { a, _ in a })
        for room in parts.keys.sorted() {
            guard var part = parts[room] else { continue }
            out += advance(&part, room: room, to: now)
            let sample = seen[room]
            if let s = sample, s.publishers + s.viewers > 0, s.orchestrator == part.orchestrator {
                part.publishers = s.publishers
                part.viewers = s.viewers
                part.role = s.role
                part.tokens.formUnion(s.tokenHashes)
                part.bytesLast = max(part.bytesLast, s.bytesForwarded)
                parts[room] = part
            } else {
                // The session ended, or another orchestrator's tokens now admit its clients.
                if let s = sample { part.bytesLast = max(part.bytesLast, s.bytesForwarded) }
                if let r = receipt(part, room: room, endMs: now) { out.append(r) }
                parts[room] = nil
            }
        }
        for s in rooms.sorted(by: { $0.room < $1.room }) where parts[s.room] == nil && s.publishers + s.viewers > 0 && s.orchestrator != node {
            parts[s.room] = Part(orchestrator: s.orchestrator, role: s.role, startMs: now, lastMs: now, publishers: s.publishers,
                                 viewers: s.viewers, tokens: s.tokenHashes, bytesAtStart: s.bytesForwarded, bytesLast: s.bytesForwarded)
        }
        return out
    }

    /// Closes every open part at `now` (the node is shutting down).
    public mutating func closeAll(atMs now: UInt64) -> [SessionReceipt] {
        observe([], atMs: now)
    }

    /// Integrates `part` up to `now`, closing it at each epoch boundary on the way.
    private func advance(_ part: inout Part, room: String, to now: UInt64) -> [SessionReceipt] {
        var out: [SessionReceipt] = []
        guard now > part.lastMs else { return out }
        while true {
            let boundary = epochs.endMs(epochs.epoch(atMs: part.startMs))
            let until = min(now, boundary)
            let dt = Double(until - part.lastMs)
            part.publisherMs += part.publishers * dt
            part.viewerMs += part.viewers * dt
            part.lastMs = until
            guard until == boundary, now >= boundary else { break }
            if let r = receipt(part, room: room, endMs: boundary) { out.append(r) }
            part = Part(orchestrator: part.orchestrator, role: part.role, startMs: boundary, lastMs: boundary, publishers: part.publishers,
                        viewers: part.viewers, tokens: part.tokens, bytesAtStart: part.bytesLast, bytesLast: part.bytesLast)
            if now == boundary { break }
        }
        return out
    }

    private func receipt(_ part: Part, room: String, endMs: UInt64) -> SessionReceipt? {
        guard endMs > part.startMs else { return nil }
        let duration = Double(endMs - part.startMs)
        func centi(_ integral: Double, max limit: UInt32) -> UInt32 {
            UInt32(min(Double(limit), (integral / duration * 100).rounded()))
        }
        let np = centi(part.publisherMs, max: SessionReceipt.maxPublishersCenti)
        let nc = centi(part.viewerMs, max: SessionReceipt.maxViewersCenti)
        guard np > 0 || nc > 0 else { return nil }
        return SessionReceipt(
            node: node, orchestrator: part.orchestrator, room: room, epochSeconds: UInt32(epochs.epochSeconds),
            epoch: epochs.epoch(atMs: part.startMs), startMs: part.startMs, endMs: endMs, role: part.role,
            publishersCenti: np, viewersCenti: nc, tokenDigest: SessionReceipt.tokenDigest(tokenHashes: part.tokens),
            bytesForwarded: part.bytesLast &- part.bytesAtStart)
    }
}
