import Foundation
import HTTPAPI
import Identity
import Logging
@testable import Node
import Registry
@testable import Store
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Makes LMDB's data-page writes fail with ENOSPC by putting /dev/full under the descriptor
/// LMDB writes through (a real kernel error on a real commit; no root needed). `restore()`
/// puts the file back under the same number.
final class FullDisk: @unchecked Sendable {
    let fd: Int32
    private var saved: Int32

    init(_ env: LMDBEnvironment) throws {
        fd = try env.dataFileDescriptor()
        saved = dup(fd)
        let full = open("/dev/full", O_WRONLY)
        guard saved >= 0, full >= 0, dup2(full, fd) == fd else { throw LMDBError(code: errno, operation: "dup2 /dev/full") }
        close(full)
    }

    func restore() {
        guard saved >= 0 else { return }
        dup2(saved, fd)
        close(saved)
        saved = -1
    }

    /// For an environment that was closed while the disk was full: its descriptor is gone.
    func discard() {
        guard saved >= 0 else { return }
        close(saved)
        saved = -1
    }
}

/// A clock the test moves.
final class TestClock: Sendable {
    private let now: Mutex<UInt64>
    init(_ start: UInt64 = wallClockMs()) { now = Mutex(start) }
    func read() -> UInt64 { now.withLock { $0 } }
    func advance(ms: UInt64) { now.withLock { $0 += ms } }
}

@Suite struct RegistryStorageTests {
    let logger = Logger(label: "test")

    /// While commits fail: a merge that must be durable (`/register`) throws `storage_full` and
    /// changes nothing; merges from the mesh are applied in memory and deferred; the failures
    /// are counted. Once the disk takes writes again, the next commit writes the deferred
    /// records too, and a reopened store holds exactly the memory's table, indexes included.
    @Test func aFullDiskDefersMeshRecordsAndRefusesDurableOnes() async throws {
        let dir = tempDir("full")
        let clock = TestClock()
        let metrics = DrtcMetrics()
        let service = try RegistryService(directory: dir, metrics: metrics, logger: logger, clock: clock.read)
        let (a, b, c) = (Ed25519KeyPair.generate(), Ed25519KeyPair.generate(), Ed25519KeyPair.generate())
        let t = clock.read()
        _ = try await service.merge([signed(a, wallMs: t, region: "EU")])

        let disk = try FullDisk(service.store.env)
        let refused = await #expect(throws: RegistryStorageError.self) {
            try await service.merge([signed(b, wallMs: t)], durability: .required)
        }
        #expect(refused?.code == "storage_full")
        #expect(refused?.reason == "disk_full")
        #expect(service.withReplica { $0.table[b.peerID] } == nil, "a refused durable merge is not applied")
        #expect(service.storageStatus().degraded?.code == "storage_full")

        // From the mesh: a new version of a (moving to ASI) and a new node c.
        let a2 = signed(a, wallMs: t + 1, region: "ASI")
        #expect(try await service.merge([a2, signed(c, wallMs: t)], durability: .deferrable) == [.accepted, .accepted])
        #expect(service.withReplica { $0.table[a.peerID] } == a2)
        #expect(service.storageStatus().deferredRecords == 2)
        // A durable merge now needs the deferred records on disk too: refused, even a duplicate.
        await #expect(throws: RegistryStorageError.self) { try await service.merge([a2], durability: .required) }

        let exposition = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(exposition.contains(#"drtc_registry_commit_failures_total{reason="disk_full"}"#))
        #expect(exposition.contains("drtc_registry_storage_degraded 1"))
        #expect(exposition.contains("drtc_registry_deferred_records 2"))

        disk.restore()
        // The retry that the node runs every second: not due within a second of the last
        // attempt, due after.
        await service.retryDeferredWrites()
        #expect(service.storageStatus().deferredRecords == 2)
        clock.advance(ms: StorageHealth.retryIntervalMs)
        await service.retryDeferredWrites()
        #expect(service.storageStatus().deferredRecords == 0)
        #expect(service.storageStatus().degraded == nil)
        #expect(try await service.submit(encoded: signed(b, wallMs: t + 2).encoded).outcome == .accepted)
        service.close()

        let reopened = try RegistryService(directory: dir, metrics: DrtcMetrics(), logger: logger)
        let table = reopened.withReplica { $0.table }
        #expect(table.count == 3)
        #expect(table[a.peerID] == a2)
        #expect(table[c.peerID] != nil)
        // The index entry of the version that was on disk (EU) went with it.
        #expect(try reopened.store.nodeIDs(inRegion: "EU").map(\.description).sorted() == [b.peerID, c.peerID].map(\.description).sorted())
        #expect(try reopened.store.nodeIDs(inRegion: "ASI") == [a.peerID])
        reopened.close()
    }

    /// While degraded, deferrable merges touch the disk at most once a second; a durable one
    /// always tries, and its success ends the degraded state.
    @Test func deferrableMergesRetryTheDiskAtMostOnceASecond() async throws {
        let clock = TestClock()
        let metrics = DrtcMetrics()
        let service = try RegistryService(directory: tempDir("retry"), metrics: metrics, logger: logger, clock: clock.read)
        let disk = try FullDisk(service.store.env)
        defer { disk.restore() }
        func failures() -> Int {
            let text = String(decoding: metrics.exposition(), as: UTF8.self)
            let line = text.split(separator: "\n").first { $0.hasPrefix(#"drtc_registry_commit_failures_total{reason="disk_full"}"#) }
            return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        }
        for i in 0..<20 {
            _ = try await service.merge([signed(Ed25519KeyPair.generate(), wallMs: clock.read())], durability: .deferrable)
            if i == 9 { clock.advance(ms: StorageHealth.retryIntervalMs) }
        }
        #expect(failures() == 2, "one attempt at the first merge, one a second later")
        #expect(service.storageStatus().deferredRecords == 20)
        await #expect(throws: RegistryStorageError.self) {
            try await service.merge([signed(Ed25519KeyPair.generate(), wallMs: clock.read())], durability: .required)
        }
        #expect(failures() == 3)
        disk.restore()
        _ = try await service.merge([signed(Ed25519KeyPair.generate(), wallMs: clock.read())], durability: .required)
        #expect(service.storageStatus().degraded == nil)
        #expect(service.storageStatus().deferredRecords == 0)
        service.close()
    }

    /// Closing on a full disk: the final write fails, is logged, and nothing crashes; the store
    /// still holds what was committed before.
    @Test func closingOnAFullDiskKeepsWhatWasCommitted() async throws {
        let dir = tempDir("close")
        let service = try RegistryService(directory: dir, metrics: DrtcMetrics(), logger: logger)
        let key = Ed25519KeyPair.generate()
        let first = signed(key, wallMs: wallClockMs())
        _ = try await service.merge([first])
        let disk = try FullDisk(service.store.env)
        _ = try await service.merge([signed(key, wallMs: wallClockMs() + 1, status: .leaving)], durability: .deferrable)
        service.close()
        disk.discard()
        await #expect(throws: RegistryClosedError.self) { try await service.merge([first]) }
        let reopened = try RegistryService(directory: dir, metrics: DrtcMetrics(), logger: logger)
        #expect(reopened.withReplica { $0.table[key.peerID] } == first)
        reopened.close()
    }
}

@Suite struct StorageHealthTests {
    /// One log line when commits start failing, then at most one a minute, and one when they
    /// succeed again.
    @Test func logsAreRateBounded() {
        var health = StorageHealth()
        let t: UInt64 = 1_000_000
        #expect(health.commitFailed(.diskFull, detail: "x", nowMs: t) == .failing(.diskFull, detail: "x", failures: 1))
        var lines: [StorageHealth.Report] = []
        for i in 1...600 {  // ten minutes at one failure a second
            if let line = health.commitFailed(.diskFull, detail: "x", nowMs: t + UInt64(i) * 1000) { lines.append(line) }
        }
        #expect(lines.count == 10)
        #expect(lines.first == .stillFailing(.diskFull, detail: "x", failures: 60, sinceMs: t))
        #expect(health.commitFailed(.ioError, detail: "y", nowMs: t + 600_500) == .failing(.ioError, detail: "y", failures: 1),
                "a new reason is reported at once")
        #expect(health.commitSucceeded() == .recovered(failedCommits: 602, sinceMs: t))
        #expect(health.commitSucceeded() == nil)
        #expect(!health.isDegraded)
    }

    /// A disk at the edge of full fails and succeeds in turn: still at most one failure line a
    /// minute, each followed by one recovery line; quiet episodes are counted in the next line.
    @Test func aFlappingDiskIsLoggedAFewTimesAMinute() {
        var health = StorageHealth()
        var lines: [StorageHealth.Report] = []
        for i in 0..<1200 {  // two minutes, a commit every 100 ms, every third one failing
            let now = UInt64(i) * 100
            let line = i % 3 == 0 ? health.commitFailed(.diskFull, detail: "", nowMs: now) : health.commitSucceeded()
            if let line { lines.append(line) }
        }
        #expect(lines == [
            .failing(.diskFull, detail: "", failures: 1), .recovered(failedCommits: 1, sinceMs: 0),
            .failing(.diskFull, detail: "", failures: 200), .recovered(failedCommits: 1, sinceMs: 60_000),
        ])
    }

    @Test func deferrableWritesRetryOnceASecond() {
        var health = StorageHealth()
        #expect(health.shouldAttempt(nowMs: 0))
        _ = health.commitFailed(.diskFull, detail: "", nowMs: 10_000)
        #expect(!health.shouldAttempt(nowMs: 10_999))
        #expect(health.shouldAttempt(nowMs: 11_000))
        #expect(health.shouldAttempt(nowMs: 9_000), "a clock that stepped back does not stop retries")
    }

    @Test func reasonsFollowTheStoreError() {
        #expect(StorageHealth.Reason(LMDBError(code: ENOSPC, operation: "c")) == .diskFull)
        #expect(StorageHealth.Reason(LMDBError(code: EIO, operation: "c", isNoSpace: true)) == .diskFull)
        #expect(StorageHealth.Reason(LMDBError(code: EIO, operation: "c")) == .ioError)
        #expect(StorageHealth.Reason(LMDBError(code: -30792, operation: "c")) == .mapFull)  // MDB_MAP_FULL
        #expect(StorageHealth.Reason.mapFull.code == "storage_full")
        #expect(StorageHealth.Reason.ioError.code == "storage_error")
    }
}

extension SubmitResult {
    var outcome: MergeOutcome? {
        if case .merged(_, let o) = self { return o }
        return nil
    }
}
