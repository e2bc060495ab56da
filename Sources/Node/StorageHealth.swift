import Store

#if canImport(Glibc)
import Glibc
#endif

/// Whether the registry's store takes writes, when to retry writes it refused, and when to say
/// so in the log (Specs/registry.md "A full disk"). A value type with time as an input, so the
/// policy is tested without a disk.
struct StorageHealth: Sendable {
    /// Why a commit failed; the label of `drtc_registry_commit_failures_total`.
    enum Reason: String, Sendable {
        /// The filesystem has no room (`ENOSPC`, `EDQUOT`, a short write on a full filesystem).
        case diskFull = "disk_full"
        /// The database reached the largest map LMDB may grow to.
        case mapFull = "map_full"
        /// The disk reported an I/O error.
        case ioError = "io_error"
        case other

        init(_ error: any Error) {
            guard let e = error as? LMDBError else { self = .other; return }
            if e.isNoSpace {
                self = .diskFull
            } else if e.isMapFull {
                self = .mapFull
            } else if e.code == EIO {
                self = .ioError
            } else {
                self = .other
            }
        }

        /// The error code a write refused for this reason is answered with: 507 `storage_full`
        /// when there is no room, 503 `storage_error` otherwise.
        var code: String {
            switch self {
            case .diskFull, .mapFull: return "storage_full"
            case .ioError, .other: return "storage_error"
            }
        }
    }

    struct Degraded: Sendable, Equatable {
        var reason: Reason
        /// The last error, as LMDB describes it.
        var detail: String
        var sinceMs: UInt64
        var failedCommits: Int
        var lastAttemptMs: UInt64
        /// A line said this episode started, so its end is logged too.
        var logged: Bool
    }

    /// What to log after a commit. Everything else stays quiet: at most one failure line a
    /// minute (plus one when the reason changes), and a recovery line only for a failure
    /// that was logged. A disk full under a flood of writes, or one that flaps at the edge
    /// (LMDB reuses freed pages, so some commits still fit), yields a few lines a minute.
    enum Report: Equatable, Sendable {
        /// Commits fail (the first line of an episode, or a new reason); `failures` counts
        /// the failed commits since the last line, including any of quiet earlier episodes.
        case failing(Reason, detail: String, failures: Int)
        /// The same episode goes on: `failures` commits failed since the last line.
        case stillFailing(Reason, detail: String, failures: Int, sinceMs: UInt64)
        /// A commit succeeded after `failedCommits` failures that started at `sinceMs`.
        case recovered(failedCommits: Int, sinceMs: UInt64)
    }

    /// A write that may wait was kept in memory because the last attempt is too recent.
    struct RetryNotDue: Error {}

    static let logIntervalMs: UInt64 = 60_000
    /// While degraded, writes that may wait (records from the mesh, the node's own refresh)
    /// try the disk at most this often.
    static let retryIntervalMs: UInt64 = 1_000

    private(set) var degraded: Degraded?
    private var lastLogMs: UInt64?
    private var unlogged = 0

    var isDegraded: Bool { degraded != nil }

    /// Whether a write that may wait should try the store now.
    func shouldAttempt(nowMs: UInt64) -> Bool {
        guard let d = degraded else { return true }
        return nowMs >= d.lastAttemptMs &+ Self.retryIntervalMs || nowMs < d.lastAttemptMs
    }

    mutating func commitFailed(_ reason: Reason, detail: String, nowMs: UInt64) -> Report? {
        var d = degraded ?? Degraded(reason: reason, detail: detail, sinceMs: nowMs, failedCommits: 0, lastAttemptMs: nowMs, logged: false)
        let newReason = d.logged && reason != d.reason
        d.failedCommits += 1
        d.lastAttemptMs = nowMs
        d.reason = reason
        d.detail = detail
        unlogged += 1
        defer { degraded = d }
        let due = lastLogMs.map { nowMs >= $0 &+ Self.logIntervalMs || nowMs < $0 } ?? true
        guard due || newReason else { return nil }
        let report: Report = d.logged && !newReason
            ? .stillFailing(reason, detail: detail, failures: unlogged, sinceMs: d.sinceMs)
            : .failing(reason, detail: detail, failures: unlogged)
        d.logged = true
        lastLogMs = nowMs
        unlogged = 0
        return report
    }

    mutating func commitSucceeded() -> Report? {
        guard let d = degraded else { return nil }
        degraded = nil
        return d.logged ? .recovered(failedCommits: d.failedCommits, sinceMs: d.sinceMs) : nil
    }
}
