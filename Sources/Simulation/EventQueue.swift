/// Virtual time in microseconds since the start of a run. The routers see milliseconds
/// (`now / 1000` plus the run's epoch).
public typealias SimTime = UInt64

/// What happens at one instant of virtual time.
enum SimEvent {
    /// A frame arrives at `to` on connection `conn` (a gossip RPC or a registry-sync frame).
    case frame(to: Int32, from: Int32, conn: UInt32, sync: Bool, bytes: [UInt8], tracked: [Int32])
    case heartbeat(Int32)
    case forwards(Int32)
    case refresh(Int32)
    case maintain(Int32)
    case antiEntropy(Int32)
    /// The dial from `from` to `to` completes (connected or failed).
    case dialDone(from: Int32, to: Int32)
    /// `peer` learns that its connection `conn` to `remote` is gone.
    case closed(peer: Int32, remote: Int32, conn: UInt32)
    /// The uplink of `peer` is free again: write its next queued RPC.
    case uplink(Int32)
    case scenario(Int)
    case sample
}

/// A binary min-heap of events ordered by (time, insertion sequence): events at the same
/// instant run in the order they were scheduled, so a run depends on the seed only.
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
    private var nextSeq: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: SimTime? { heap.first?.time }

    @inline(__always)
    private static func less(_ a: Entry, _ b: Entry) -> Bool {
        a.time != b.time ? a.time < b.time : a.seq < b.seq
    }

    mutating func push(_ time: SimTime, _ event: SimEvent) {
        let slot: Int32
        if let reused = free.popLast() {
            slot = reused
            slab[Int(slot)] = event
        } else {
            slot = Int32(slab.count)
            slab.append(event)
        }
        let entry = Entry(time: time, seq: nextSeq, slot: slot)
        nextSeq &+= 1
        heap.append(entry)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
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
                let l = 2 * i + 1
                guard l < n else { break }
                let r = l + 1
                let m = r < n && Self.less(heap[r], heap[l]) ? r : l
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
