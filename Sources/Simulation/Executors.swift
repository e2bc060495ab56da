import Dispatch
import Synchronization

/// Ways to run a window's partitions (`Simulator.run(executor:)`). The simulator core starts no
/// threads itself; the CLI and the benchmarks pick one of these.
public enum PartitionExecutors {
    /// One after the other on the calling thread.
    public static let sequential: PartitionExecutor = { count, body in
        for k in 0..<count { body(k) }
    }

    /// On `threads` of Dispatch's worker threads at once (one thread: `sequential`), each
    /// taking the next partition not yet run until none is left: there are usually many more
    /// partitions than threads (`Simulator.partitionCount`), and taking them one by one
    /// balances the threads' loads. Partitions touch disjoint peers within a window
    /// (Specs/simulation.md "Parallel windows").
    public static func threaded(_ threads: Int) -> PartitionExecutor {
        guard threads > 1 else { return sequential }
        return { count, body in
            withoutActuallyEscaping(body) { body in
                let shared = UncheckedSendable(body)
                let next = Atomic<Int>(0)
                DispatchQueue.concurrentPerform(iterations: min(threads, count)) { _ in
                    while true {
                        let k = next.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard k < count else { return }
                        shared.value(k)
                    }
                }
            }
        }
    }
}

/// A value handed to other threads whose safety the simulator's windows guarantee, not the
/// type system.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
