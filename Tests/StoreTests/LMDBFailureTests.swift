import Foundation
@testable import Store
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Writes the disk refuses. Each test makes real LMDB commits fail — through a descriptor
/// that writes to /dev/full (ENOSPC from the kernel, no root needed), a small tmpfs (root), or
/// a map that may not grow — and checks that the environment survives: the failed commit
/// leaves no trace, reads go on, and the next write succeeds once the disk takes writes again.
/// Before the fix, a failed `mdb_txn_commit` was followed by `mdb_txn_abort` on the handle
/// LMDB had already freed (a double free).
@Suite struct LMDBFailureTests {
    func tempDir() -> String { NSTemporaryDirectory() + "drtc-lmdb-fail-\(UUID().uuidString)" }

    static func key(_ i: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(i).bigEndian) { Array($0) } }

    /// Runs `body` while descriptor `fd` writes to /dev/full (every write fails with ENOSPC),
    /// then puts the original file back under the same number.
    static func whileWritesFail<T>(fd: Int32, _ body: () throws -> T) throws -> T {
        let saved = dup(fd)
        let full = open("/dev/full", O_WRONLY)
        #expect(saved >= 0 && full >= 0)
        #expect(dup2(full, fd) == fd)
        close(full)
        defer {
            dup2(saved, fd)
            close(saved)
        }
        return try body()
    }

    /// The other descriptor LMDB holds on `data.mdb`: the O_DSYNC one it writes meta pages through.
    static func metaDescriptor(path: String, dataFD: Int32) -> Int32? {
        let target = URL(fileURLWithPath: path + "/data.mdb").resolvingSymlinksInPath().path
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return nil }
        for name in fds {
            guard let fd = Int32(name), fd != dataFD,
                  let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
                  link == target else { continue }
            return fd
        }
        return nil
    }

    @Test func aCommitTheDiskRefusesThrowsAndTheNextOneLands() throws {
        let path = tempDir()
        let env = try LMDBEnvironment(path: path)
        let db = try env.database("t")
        try env.write { try $0.put(db, Self.key(0), [0]) }
        let value = [UInt8](repeating: 7, count: 3000)
        try Self.whileWritesFail(fd: try env.dataFileDescriptor()) { () throws in
            for attempt in 1...20 {
                let error = #expect(throws: LMDBError.self) {
                    try env.write { txn in
                        for i in 1...10 { try txn.put(db, Self.key(attempt * 100 + i), value) }
                    }
                }
                #expect(error?.isNoSpace == true, "\(String(describing: error))")
                #expect(error?.operation == "mdb_txn_commit")
                // Reads are served from the map while writes fail.
                #expect(try env.read { try $0.get(db, Self.key(0)) } == [0])
            }
        }
        #expect(try env.stat(db).entries == 1, "no failed commit left anything behind")
        try env.write { try $0.put(db, Self.key(1), value) }
        env.close()
        let reopened = try LMDBEnvironment(path: path)
        let db2 = try reopened.database("t")
        #expect(try reopened.stat(db2).entries == 2)
        #expect(try reopened.read { try $0.get(db2, Self.key(1)) } == value)
    }

    /// A failed meta-page write makes LMDB refuse every later transaction (MDB_PANIC). The
    /// environment is closed and reopened under the same database handles, and the write that
    /// met the panic runs then.
    @Test func anEnvironmentLMDBGaveUpOnIsReopened() throws {
        let path = tempDir()
        let env = try LMDBEnvironment(path: path)
        let a = try env.database("a")
        let b = try env.database("b")
        try env.write { txn in
            try txn.put(a, [1], [1])
            try txn.put(b, [1], [2])
        }
        let dataFD = try env.dataFileDescriptor()
        let metaFD = try #require(Self.metaDescriptor(path: path, dataFD: dataFD))
        // Only the meta descriptor fails: data pages land, the meta page that would make them
        // current does not. It is not restored: reopening closes it and opens fresh ones.
        let full = open("/dev/full", O_WRONLY)
        #expect(dup2(full, metaFD) == metaFD)
        close(full)
        let error = #expect(throws: LMDBError.self) { try env.write { try $0.put(a, [2], [2]) } }
        #expect(error?.isNoSpace == true)
        #expect(env.reopens == 0)

        try env.write { try $0.put(b, [3], [3]) }
        #expect(env.reopens == 1)
        #expect(try env.read { try $0.get(a, [2]) } == nil, "the write whose meta page failed did not happen")
        #expect(try env.read { try ($0.get(a, [1]), $0.get(b, [1]), $0.get(b, [3])) } == ([1], [2], [3]))
        env.close()
        let reopened = try LMDBEnvironment(path: path)
        #expect(try reopened.stat(try reopened.database("b")).entries == 2)
    }

    /// With growth disabled, a store at its size limit refuses writes with MDB_MAP_FULL, from
    /// `mdb_put` or from `mdb_txn_commit` (saving the free list needs pages too). Whatever the
    /// call, each write lands entirely or not at all: the store always equals a model of the
    /// writes that returned.
    @Test func aStoreAtItsSizeLimitStaysConsistent() throws {
        let path = tempDir()
        let size = 512 * 1024
        let env = try LMDBEnvironment(path: path, mapSize: size, maxMapSize: size)
        let db = try env.database("t")
        var model: [Int: [UInt8]] = [:]
        var rng = SystemRandomNumberGenerator()
        var refused = 0
        for round in 0..<400 {
            var changes: [(Int, [UInt8]?)] = []
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                let k = Int.random(in: 0..<300, using: &rng)
                let delete = Int.random(in: 0..<4, using: &rng) == 0
                changes.append((k, delete ? nil : [UInt8](repeating: UInt8(truncatingIfNeeded: round), count: Int.random(in: 100...3000, using: &rng))))
            }
            do {
                try env.write { txn in
                    for (k, v) in changes {
                        if let v { try txn.put(db, Self.key(k), v) } else { try txn.delete(db, Self.key(k)) }
                    }
                }
                for (k, v) in changes { model[k] = v }
            } catch let error as LMDBError {
                #expect(error.isMapFull, "\(error)")
                refused += 1
            }
        }
        #expect(refused > 0, "the workload must reach the limit")
        #expect(env.mapGrowths == 0)
        var stored: [Int: [UInt8]] = [:]
        try env.read { txn in
            try txn.forEach(db) { k, v in
                stored[Int(k.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self).bigEndian })] = v
                return true
            }
        }
        #expect(stored == model)
    }

    /// The fault as operators meet it: the data dir on a filesystem (a 1 MiB tmpfs) that
    /// another file fills up. Needs root to mount; CI runs as root.
    @Test(.enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func aFullFilesystemRefusesCommitsUntilSpaceIsFreed() throws {
        let dir = tempDir()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard mount("tmpfs", dir, "tmpfs", 0, "size=1m") == 0 else {
            Issue.record("mount tmpfs on \(dir): \(String(cString: strerror(errno)))")
            return
        }
        defer {
            umount2(dir, Int32(MNT_DETACH))
            rmdir(dir)
        }
        let path = dir + "/registry"
        let env = try LMDBEnvironment(path: path)
        let db = try env.database("t")
        let value = [UInt8](repeating: 1, count: 2000)
        for batch in 0..<10 {
            try env.write { txn in
                for i in 0..<8 { try txn.put(db, Self.key(batch * 8 + i), value) }
            }
        }
        // Another file takes every block left.
        let filler = dir + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
        let chunk = [UInt8](repeating: 0, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        close(fd)

        // A write that needs new pages fails (ENOSPC, or a short write that LMDB reports as EIO
        // on a full filesystem), again and again, and leaves no trace; reads go on.
        for attempt in 0..<5 {
            let error = #expect(throws: LMDBError.self) {
                try env.write { txn in
                    for i in 0..<100 { try txn.put(db, Self.key(1000 + attempt * 100 + i), value) }
                }
            }
            #expect(error?.isNoSpace == true, "\(String(describing: error))")
        }
        #expect(try env.stat(db).entries == 80)
        #expect(try env.read { try $0.get(db, Self.key(79)) } == value)

        // Space comes back: the same write lands, and everything survives a reopen.
        #expect(unlink(filler) == 0)
        try env.write { txn in
            for i in 0..<100 { try txn.put(db, Self.key(1000 + i), value) }
        }
        env.close()
        let reopened = try LMDBEnvironment(path: path)
        #expect(try reopened.stat(try reopened.database("t")).entries == 180)
        reopened.close()
    }
}
