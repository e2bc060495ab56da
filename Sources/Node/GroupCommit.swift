import Dispatch
import Synchronization

/// Group commit (used by the registry and the QoS set): callers verify on their own threads
/// (the expensive part), then submit; one writer thread takes everything queued (up to
/// `maxBatch` items), hands it to `process` — which commits it in one durable transaction and
/// publishes it in memory — and only then answers every caller. Under load one fsync covers
/// many submissions; nothing is acknowledged before it is on disk.
final class GroupCommitter<Item: Sendable, Outcome: Sendable>: Sendable {
    private struct Pending {
        var items: [Item]
        var continuation: CheckedContinuation<[Outcome], any Error>
    }

    private struct Queue {
        var pending: [Pending] = []
        var draining = false
    }

    private let queue = Mutex(Queue())
    private let writer: DispatchQueue
    private let maxBatch: Int
    /// Gets the queued submissions in order and returns one outcome array per submission, or
    /// throws to fail them all.
    private let process: @Sendable ([[Item]]) throws -> [[Outcome]]

    init(label: String, maxBatch: Int, process: @escaping @Sendable ([[Item]]) throws -> [[Outcome]]) {
        self.writer = DispatchQueue(label: label)
        self.maxBatch = maxBatch
        self.process = process
    }

    func submit(_ items: [Item]) async throws -> [Outcome] {
        guard !items.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            let schedule = queue.withLock { q in
                q.pending.append(Pending(items: items, continuation: continuation))
                if q.draining { return false }
                q.draining = true
                return true
            }
            if schedule { writer.async { self.drain() } }
        }
    }

    /// Runs `body` on the writer thread, after everything queued before it.
    func onWriter<T>(_ body: () throws -> T) rethrows -> T { try writer.sync(execute: body) }

    private func drain() {
        while true {
            let batch: [Pending] = queue.withLock { q in
                var taken: [Pending] = []
                var count = 0
                while !q.pending.isEmpty, count < maxBatch {
                    count += q.pending[0].items.count
                    taken.append(q.pending.removeFirst())
                }
                if taken.isEmpty { q.draining = false }
                return taken
            }
            if batch.isEmpty { return }
            do {
                let outcomes = try process(batch.map(\.items))
                for (p, o) in zip(batch, outcomes) { p.continuation.resume(returning: o) }
            } catch {
                for p in batch { p.continuation.resume(throwing: error) }
            }
        }
    }
}
