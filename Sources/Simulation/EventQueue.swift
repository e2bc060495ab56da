import Gossipsub
import QoS
import Registry

/// Virtual time in microseconds since the start of a run. The routers see milliseconds
/// (`now / 1000` plus the run's epoch).
public typealias SimTime = UInt64

/// What happens at one instant of virtual time. Every event but `scenario` and `sample`
/// belongs to one peer (`SimEvent.peer`) and touches only that peer's state.
enum SimEvent {
    /// A frame arrives at `to` on connection `conn`. `size`: its bytes on the wire (framing
    /// and transport overhead included); `tracked`: the followed updates it carries
    /// (Simulator.track).
    case frame(to: Int32, from: Int32, conn: UInt64, size: Int, payload: FramePayload, tracked: [Int32])
    case heartbeat(Int32)
    case forwards(Int32)
    case refresh(Int32)
    case maintain(Int32)
    case antiEntropy(Int32)
    /// `from`'s dial reaches `to` (TCP and the security handshake up to its last message).
    case dialArrive(to: Int32, from: Int32, conn: UInt64)
    /// The dial from `from` to `to` completes at `from`.
    case dialDone(from: Int32, to: Int32, conn: UInt64, result: DialResult)
    /// The dialler's last handshake message reaches `to`: the connection is up on its side.
    case handshakeDone(to: Int32, from: Int32, conn: UInt64)
    /// `peer` learns that its connection `conn` to `remote` is gone.
    case closed(peer: Int32, remote: Int32, conn: UInt64)
    /// The uplink of `peer` is free again: write its next queued RPC.
    case uplink(Int32)
    /// `peer` publishes its QoS bundle of `epoch` (Specs/simulation.md "QoS").
    case qosPublish(Int32, epoch: UInt64)
    case scenario(Int)
    case sample

    /// The peer whose state the event touches (nil: a scenario action or a sample).
    var peer: Int32? {
        switch self {
        case .frame(let to, _, _, _, _, _), .dialArrive(let to, _, _), .handshakeDone(let to, _, _): to
        case .heartbeat(let i), .forwards(let i), .refresh(let i), .maintain(let i), .antiEntropy(let i), .uplink(let i): i
        case .qosPublish(let i, _): i
        case .dialDone(let from, _, _, _): from
        case .closed(let peer, _, _): peer
        case .scenario, .sample: nil
        }
    }
}

/// What a frame carries.
enum FramePayload {
    /// A gossip RPC: the value the sender's router built, handed to the receiver's router
    /// (Specs/simulation.md "What is simulated"); the frame's size is its encoding's size.
    case gossip(GossipRPC)
    /// A registry-sync frame, for the responder's session or the initiator's.
    case sync(toResponder: Bool, [UInt8])
}

/// How a dial ended, as the dialler learns it.
enum DialResult {
    case connected
    /// Nobody listening, the remote is full or leaving, or the address is unreachable.
    case refused
    /// The remote already has a connection to the dialler (both dialled each other).
    case duplicate
}

/// A min-heap (4-ary) of events ordered by (time, sequence). Sequence numbers are given by
/// whoever schedules the event (`Simulator.schedule`): they are unique, so the order of events
/// does not depend on the order in which they were pushed, nor on which queue they went to.
///
/// The heap holds plain (time, sequence, slot) triples; the events themselves wait in a slab
/// and are moved out once, so sifting never retains or releases their payloads.
struct EventQueue {
    private struct Entry {
        var time: UInt64
        var seq: UInt64
        var slot: Int32
    }

    private var heap: [Entry] = []
    private var slab: [SimEvent?] = []
    private var free: [Int32] = []

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: SimTime? { heap.first?.time }

    /// Children per node: a 4-ary heap is half as deep as a binary one, and a node's children
    /// are adjacent (a 10,000-peer run keeps ~10^5 events pending, so each level is a likely
    /// cache miss). Any heap pops the same order: (time, sequence) pairs are unique.
    private static let arity = 4

    @inline(__always)
    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.time != b.time ? a.time < b.time : a.seq < b.seq
    }

    /// Consuming: the event is moved into the slab (a borrowed one was copied, retaining its
    /// frame's buffers, and the caller's copy released).
    mutating func push(_ time: SimTime, seq: UInt64, _ event: consuming SimEvent) {
        let slot: Int32
        if let reused = free.popLast() {
            slot = reused
            slab[Int(slot)] = consume event
        } else {
            slot = Int32(slab.count)
            slab.append(consume event)
        }
        let entry = Entry(time: time, seq: seq, slot: slot)
        heap.append(entry)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / Self.arity
            guard Self.less(entry, heap[parent]) else { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = entry
    }

    mutating func pop() -> (SimTime, SimEvent)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        let n = heap.count
        if n > 0 {
            var i = 0
            while true {
                let first = Self.arity * i + 1
                guard first < n else { break }
                var m = first
                for c in (first + 1)..<min(first + Self.arity, n) where Self.less(heap[c], heap[m]) { m = c }
                guard Self.less(heap[m], last) else { break }
                heap[i] = heap[m]
                i = m
            }
            heap[i] = last
        }
        let event = slab[Int(top.slot)].take()!
        free.append(top.slot)
        return (top.time, event)
    }
}

/// A record update published inside a window, followed once the window ends
/// (`Simulator.track`).
struct PendingTrack {
    var record: SignedRecord
    var message: MessageID
    var origin: Int32
    var at: SimTime
}

/// One partition of the peers (peer index modulo the partition count): its own event queue and
/// clock. Within a window of virtual time shorter than the smallest link delay no event of one
/// peer can cause an event at another, so partitions run a window on separate threads; what one
/// peer sends another waits in the sender's partition's outbox until the window ends, and the
/// receiving partition's thread takes it in when its next window starts (Specs/simulation.md
/// "Parallel windows").
final class Partition {
    struct Scheduled {
        var target: Int32
        var time: SimTime
        var seq: UInt64
        var event: SimEvent
    }

    let number: Int
    var now: SimTime = 0
    var queue = EventQueue()
    /// Events this partition's peers scheduled for other peers in the current window, by the
    /// number of the partition that runs them, and the earliest of their times.
    var outbox: [[Scheduled]]
    var outboxEarliest: SimTime = .max
    /// The events other partitions sent it in the last window, by sender partition: moved here
    /// from their outboxes between windows, pushed into `queue` by this partition's own
    /// thread when its next window starts.
    var inbox: [[Scheduled]]
    /// The followed-update indices of the updates this partition's peers published in the last
    /// window, by their provisional slot (`Simulator.track`): read by every partition taking
    /// in frames that name them.
    var trackedSlots: [Int32] = []
    var pendingTracks: [PendingTrack] = []
    /// QoS bundles published in the current window (merged into the run's set between windows).
    var pendingQoS: [SignedQoSBundle] = []
    var pendingQoSMessages: [MessageID] = []
    var events: UInt64 = 0
    var busyReplies = 0

    init(number: Int, of count: Int) {
        self.number = number
        outbox = Array(repeating: [], count: count)
        inbox = Array(repeating: [], count: count)
    }

    var nowMs: UInt64 { Simulator.epochMs + now / 1000 }
}
