import Identity

/// The message cache (gossipsub-v1.0.md "Message Cache"): the last `historyLength` heartbeat
/// windows of messages, of which the newest `historyGossip` are advertised in IHAVE.
struct MessageCache {
    struct Entry {
        var message: GossipMessage
        var topic: String
        /// Times each peer was sent this message in answer to an IWANT.
        var iwantCounts: [PeerID: Int] = [:]
    }

    private(set) var windows: [[MessageID]]
    private(set) var entries: [MessageID: Entry] = [:]
    let gossipWindows: Int

    init(historyLength: Int, historyGossip: Int) {
        windows = Array(repeating: [], count: max(1, historyLength))
        gossipWindows = max(0, min(historyGossip, historyLength))
    }

    mutating func put(_ id: MessageID, _ message: GossipMessage, topic: String) {
        guard entries[id] == nil else { return }
        entries[id] = Entry(message: message, topic: topic)
        windows[0].append(id)
    }

    func message(_ id: MessageID) -> GossipMessage? { entries[id]?.message }

    /// Counts one more IWANT answer of `id` to `peer`; returns the message when the
    /// retransmission limit still allows sending it.
    mutating func messageForIWant(_ id: MessageID, peer: PeerID, limit: Int) -> GossipMessage? {
        guard var entry = entries[id] else { return nil }
        let count = entry.iwantCounts[peer, default: 0] + 1
        entry.iwantCounts[peer] = count
        entries[id] = entry
        return count <= limit ? entry.message : nil
    }

    /// For k = 1…`gossipWindows`, the IDs of messages in `topic` from the newest k windows,
    /// newest window first (element k − 1).
    func gossipIDsByWindow(topic: String) -> [[MessageID]] {
        var out: [[MessageID]] = []
        var ids: [MessageID] = []
        for window in windows.prefix(gossipWindows) {
            for id in window where entries[id]?.topic == topic { ids.append(id) }
            out.append(ids)
        }
        return out
    }

    /// Called at every heartbeat: the oldest window falls out.
    mutating func shift() {
        for id in windows.removeLast() { entries[id] = nil }
        windows.insert([], at: 0)
    }
}

/// IDs seen within the last `ttl` (gossipsub "seen cache"): duplicates are recognised without
/// keeping the messages. With each ID it keeps when it was first seen and which peers have
/// delivered it (for duplicate accounting, P3, and not forwarding a message back to a peer
/// that sent it): one table and one probe per copy received, where a second table keyed by
/// the same IDs doubled both. Expiry is a FIFO because IDs are inserted in time order.
struct SeenCache {
    struct Entry {
        var first: Millis
        /// Peers that delivered the message (none for our own). A short array: a message comes
        /// from a few mesh peers, and `PeerID` equality compares a hash word first.
        var deliverers: [PeerID]
    }

    private(set) var entries: [MessageID: Entry] = [:]
    private var order: [(MessageID, Millis)] = []
    private var head = 0
    let ttl: Millis

    init(ttl: Millis) { self.ttl = ttl }

    func contains(_ id: MessageID) -> Bool { entries[id] != nil }
    var count: Int { entries.count }

    /// Records `id`, first delivered by `peer` (nil: published here); returns false if it was
    /// already present.
    @discardableResult
    mutating func insert(_ id: MessageID, now: Millis, from peer: PeerID? = nil) -> Bool {
        guard entries[id] == nil else { return false }
        entries[id] = Entry(first: now, deliverers: peer.map { [$0] } ?? [])
        order.append((id, now))
        return true
    }

    enum Copy {
        case new
        /// Seen before; `newDeliverer` when this peer had not delivered it yet.
        case duplicate(first: Millis, newDeliverer: Bool)
    }

    /// Notes a copy of `id` from `peer`, in one probe: new, or a duplicate (and whether the
    /// peer is a new deliverer, now recorded).
    mutating func noteCopy(_ id: MessageID, from peer: PeerID) -> Copy {
        guard let i = entries.index(forKey: id) else { return .new }
        return Self.note(&entries.values[i], peer)
    }

    private static func note(_ entry: inout Entry, _ peer: PeerID) -> Copy {
        if entry.deliverers.contains(peer) { return .duplicate(first: entry.first, newDeliverer: false) }
        entry.deliverers.append(peer)
        return .duplicate(first: entry.first, newDeliverer: true)
    }

    /// Whether `peer` has delivered `id` to us (within the window).
    func delivered(_ id: MessageID, by peer: PeerID) -> Bool {
        guard let i = entries.index(forKey: id) else { return false }
        return entries.values[i].deliverers.contains(peer)
    }

    mutating func expire(now: Millis) {
        while head < order.count, order[head].1 &+ ttl <= now {
            entries[order[head].0] = nil
            head += 1
        }
        if head > 1024 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
