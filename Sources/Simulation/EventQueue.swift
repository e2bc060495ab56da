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
struct EventQueue {
    private var times: [UInt64] = []
    private var seqs: [UInt64] = []
    private var events: [SimEvent] = []
    private var nextSeq: UInt64 = 0

    var count: Int { events.count }
    var isEmpty: Bool { events.isEmpty }
    var nextTime: SimTime? { times.first }

    private func less(_ a: Int, _ b: Int) -> Bool {
        times[a] != times[b] ? times[a] < times[b] : seqs[a] < seqs[b]
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        times.swapAt(a, b)
        seqs.swapAt(a, b)
        events.swapAt(a, b)
    }

    mutating func push(_ time: SimTime, _ event: SimEvent) {
        times.append(time)
        seqs.append(nextSeq)
        events.append(event)
        nextSeq &+= 1
        var i = events.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(i, parent) else { break }
            swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (SimTime, SimEvent)? {
        guard !events.isEmpty else { return nil }
        let last = events.count - 1
        swapAt(0, last)
        let time = times.removeLast()
        _ = seqs.removeLast()
        let event = events.removeLast()
        var i = 0
        let n = events.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && less(l, m) { m = l }
            if r < n && less(r, m) { m = r }
            if m == i { break }
            swapAt(i, m)
            i = m
        }
        return (time, event)
    }
}
