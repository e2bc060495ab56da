/// Per-stream state inside a `YamuxSession`. Three independent sub-machines:
/// the SYN/ACK handshake, our write half and the peer's write half (our read half). A stream
/// whose write half is `.finSent` and read half `.finReceived` is closed both ways and is
/// removed from the session; a reset removes it at once.
struct YamuxStream: Sendable {
    enum Handshake: Sendable {
        /// We opened it; the SYN went out, no ACK (or RST) has come back yet.
        case synSent
        /// The peer opened it; our ACK rides on the first frame we send on it
        /// (libp2p yamux "ACK backlog": do not acknowledge implicitly).
        case synReceived
        case established
    }

    enum WriteHalf: Sendable {
        case open
        /// `close` was called while data was still queued behind the send window: the FIN goes
        /// out right after the last queued byte.
        case finQueued
        case finSent
    }

    enum ReadHalf: Sendable {
        case open
        case finReceived
    }

    var handshake: Handshake
    var writeHalf: WriteHalf = .open
    var readHalf: ReadHalf = .open

    /// Bytes we may still send before the peer grants more (spec "Flow Control").
    var sendWindow: UInt32
    /// Bytes accepted by `write` that did not fit the send window yet.
    var queue = ByteQueue()

    /// Bytes the peer may still send us. Invariant while the read half is open:
    /// `receiveWindow + unconsumed + unannounced == configuration.receiveWindow`.
    var receiveWindow: UInt32
    /// Bytes handed to the application (`.data` events) that it has not reported `consumed`.
    var unconsumed: UInt32 = 0
    /// Credit the application freed (or the part of a larger configured window not yet
    /// advertised) that no Window Update has announced yet.
    var unannounced: UInt32

    var isClosedBothWays: Bool { writeHalf == .finSent && readHalf == .finReceived }
}

/// FIFO of bytes with O(1) amortised pop from the front.
struct ByteQueue: Sendable {
    private var storage: [UInt8] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }

    mutating func append(contentsOf bytes: ArraySlice<UInt8>) {
        storage.append(contentsOf: bytes)
    }

    func front(_ n: Int) -> ArraySlice<UInt8> {
        storage[head..<head + n]
    }

    mutating func removeFront(_ n: Int) {
        head += n
        if head == storage.count {
            storage.removeAll(keepingCapacity: false)
            head = 0
        } else if head >= 4096 && head * 2 >= storage.count {
            storage.removeSubrange(0..<head)
            head = 0
        }
    }
}

/// A bounded memory of how recently finished streams ended, so that late frames can be told
/// apart: in-flight data for a stream *we* reset is dropped quietly, while frames the peer sends
/// after *its own* RST, or data after its FIN, are violations. The oldest entry is evicted once
/// `capacity` is reached; frames for evicted ids are dropped quietly (see `YamuxSession`).
struct RecentlyFinishedStreams: Sendable {
    enum Ending: Sendable, CustomStringConvertible {
        case resetLocally
        case resetByPeer
        /// FIN both ways.
        case closed

        var description: String {
            switch self {
            case .resetLocally: "reset by us"
            case .resetByPeer: "reset by the peer"
            case .closed: "closed both ways"
            }
        }
    }

    let capacity: Int
    private var endings: [UInt32: Ending] = [:]
    private var order: [UInt32] = []
    private var oldest = 0

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    var count: Int { endings.count }

    subscript(id: UInt32) -> Ending? { endings[id] }

    mutating func record(_ id: UInt32, _ ending: Ending) {
        if endings.updateValue(ending, forKey: id) != nil { return }
        if order.count < capacity {
            order.append(id)
        } else {
            endings[order[oldest]] = nil
            order[oldest] = id
            oldest = (oldest + 1) % capacity
        }
    }
}
