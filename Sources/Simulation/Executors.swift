import Dispatch

/// Ways to run a window's partitions (`Simulator.run(executor:)`). The simulator core starts no
/// threads itself; the CLI and the benchmarks pick one of these.
public enum PartitionExecutors {
    /// One after the other on the calling thread.
    public static let sequential: PartitionExecutor = { count, body in
        for k in 0..<count { body(k) }
    }

    /// Concurrently, on Dispatch's worker threads (one partition per thread at a time).
    /// Partitions touch disjoint peers within a window (Specs/simulation.md "Parallel windows").
    public static let threaded: PartitionExecutor = { count, body in
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: count) { shared.value($0) }
        }
    }
}

/// A value handed to other threads whose safety the simulator's windows guarantee, not the
/// type system.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
