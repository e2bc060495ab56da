import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An LMDB error with the library's own message.
public struct LMDBError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var operation: String
    /// The filesystem had no room for the write: `ENOSPC` or `EDQUOT`, or a short write (which
    /// LMDB reports as `EIO`) on a filesystem that has less than `nearlyFullBytes` left.
    public var isNoSpace: Bool
    public var description: String {
        let what = "\(operation): \(String(cString: mdb_strerror(code))) (\(code))"
        return code == EIO && isNoSpace ? what + ", a short write: the filesystem is full" : what
    }

    public init(code: Int32, operation: String, isNoSpace: Bool? = nil) {
        self.code = code
        self.operation = operation
        self.isNoSpace = isNoSpace ?? (code == ENOSPC || code == EDQUOT)
    }

    /// The map is full: the database reached the size of its memory map.
    public var isMapFull: Bool { code == MDB_MAP_FULL }
    /// LMDB marked the environment unusable after a failed meta-page write; only closing and
    /// reopening it recovers.
    public var isPanic: Bool { code == MDB_PANIC }

    /// Below this much free space, a short write is taken for a full filesystem.
    public static let nearlyFullBytes = 1 << 20
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
    if rc != 0 { throw LMDBError(code: rc, operation: operation()) }
}

/// LMDB's lock file is a shared memory map that LMDB sizes with `ftruncate`, which
/// allocates no blocks. On a full filesystem, the first touch of a page never written
/// kills the process with SIGBUS (seen on a full tmpfs at start). Reserving the blocks
/// first turns that into an `ENOSPC` error. 8 KiB is what LMDB uses with its default 126
/// reader slots; a larger existing file is kept (LMDB then fits more slots in it).
func reserveLockFile(_ lockPath: String) throws {
    let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw LMDBError(code: errno, operation: "open \(lockPath)") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw LMDBError(code: errno, operation: "fstat \(lockPath)") }
    let rc = posix_fallocate(fd, 0, max(off_t(st.st_size), 8192))
    // A filesystem without fallocate (glibc emulates it where it can) keeps LMDB's own behaviour.
    if rc != 0 && rc != EOPNOTSUPP && rc != EINVAL {
        throw LMDBError(code: rc, operation: "reserve space for \(lockPath)")
    }
}

/// A named database (LMDB "DBI") inside an environment.
public struct LMDBDatabase: Sendable {
    let dbi: MDB_dbi
    public let name: String
}

/// One LMDB environment: a memory-mapped, crash-safe B+tree store in a directory.
///
/// - Writes are serialised (LMDB allows one writer) and retried after growing the map when
///   LMDB reports `MDB_MAP_FULL`, up to `maxMapSize`.
/// - Reads run concurrently; growing the map waits for them, because LMDB only allows
///   `mdb_env_set_mapsize` while this process has no transaction open.
/// - Stale reader slots left by crashed processes are cleared at open (`mdb_reader_check`).
/// - Handle lifetimes follow lmdb.h: a transaction is never touched after `mdb_txn_commit`
///   (which frees it whatever it returns) or `mdb_txn_abort`; cursors are closed inside the
///   transaction that opened them; nothing is used after `mdb_env_close`. When LMDB leaves the
///   environment handle unusable (`MDB_PANIC` after a failed meta-page write, or a failed
///   `mdb_env_set_mapsize`, which has already unmapped the old map), the next write closes
///   and reopens it, with every database handle under its old number.
public final class LMDBEnvironment: @unchecked Sendable {
    private var env: OpaquePointer?
    /// The handle failed and was closed by us, not by `close()`: the next write reopens it.
    private var needsReopen = false
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    private let writeLock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let maxDatabases: UInt32
    /// Databases opened so far, in open order (LMDB numbers handles in that order).
    private var databases: [LMDBDatabase] = []
    public private(set) var mapSize: Int
    /// `MDB_MAP_FULL` beyond this size is an error instead of a reason to grow.
    public let maxMapSize: Int
    public let path: String
    /// Reader slots of dead processes cleared when the environment was opened.
    public let staleReadersCleared: Int
    public private(set) var mapGrowths = 0
    /// Times the environment was closed and reopened after LMDB left it unusable.
    public private(set) var reopens = 0

    public init(path: String, mapSize: Int = 64 << 20, maxMapSize: Int = 1 << 40, maxDatabases: UInt32 = 16) throws {
        self.path = path
        self.maxDatabases = maxDatabases
        self.maxMapSize = max(mapSize, maxMapSize)
        pthread_rwlock_init(lock, nil)
        pthread_mutex_init(writeLock, nil)
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw LMDBError(code: errno, operation: "mkdir \(path)")
        }
        let opened = try Self.openHandle(path: path, mapSize: mapSize, maxDatabases: maxDatabases)
        env = opened.env
        // The file may be larger than requested (grown in an earlier run): adopt its size.
        self.mapSize = opened.mapSize
        staleReadersCleared = opened.staleReaders
    }

    private static func openHandle(path: String, mapSize: Int, maxDatabases: UInt32) throws -> (env: OpaquePointer, mapSize: Int, staleReaders: Int) {
        var e: OpaquePointer?
        try check(mdb_env_create(&e), "mdb_env_create")
        guard let e else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
        do {
            try check(mdb_env_set_maxdbs(e, maxDatabases), "mdb_env_set_maxdbs")
            try check(mdb_env_set_mapsize(e, mapSize), "mdb_env_set_mapsize")
            try reserveLockFile(path + "/lock.mdb")
            // MDB_NOTLS: read transactions are not tied to threads (Swift tasks hop threads).
            try check(mdb_env_open(e, path, UInt32(MDB_NOTLS), 0o600), "mdb_env_open \(path)")
            var info = MDB_envinfo()
            try check(mdb_env_info(e, &info), "mdb_env_info")
            var dead: Int32 = 0
            try check(mdb_reader_check(e, &dead), "mdb_reader_check")
            return (e, max(mapSize, info.me_mapsize), Int(dead))
        } catch {
            // lmdb.h: if mdb_env_open fails, mdb_env_close must discard the handle.
            mdb_env_close(e)
            throw error
        }
    }

    deinit {
        close()
        pthread_rwlock_destroy(lock)
        lock.deallocate()
        pthread_mutex_destroy(writeLock)
        writeLock.deallocate()
    }

    /// Flushes and closes. Idempotent; later transactions throw.
    public func close() {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        needsReopen = false
        if let e = env {
            mdb_env_sync(e, 1)
            mdb_env_close(e)
            env = nil
        }
    }

    private func requireEnv() throws -> OpaquePointer {
        guard let env else {
            throw LMDBError(code: EINVAL, operation: needsReopen
                ? "environment \(path) failed and could not be reopened yet"
                : "environment \(path) is closed")
        }
        return env
    }

    /// Opens (creating if needed) a named database.
    public func database(_ name: String) throws -> LMDBDatabase {
        pthread_mutex_lock(writeLock)
        defer { pthread_mutex_unlock(writeLock) }
        if let known = databases.first(where: { $0.name == name }) { return known }
        let db = try writeLocked { txn in
            var dbi: MDB_dbi = 0
            try check(mdb_dbi_open(txn.txn, name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open \(name)")
            return LMDBDatabase(dbi: dbi, name: name)
        }
        // The handle is shared only once the opening transaction committed (lmdb.h).
        databases.append(db)
        return db
    }

    /// Runs `body` in a read-only snapshot.
    public func read<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        let env = try requireEnv()
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin(read)")
        defer { mdb_txn_abort(txn) }
        return try body(LMDBTransaction(txn: txn!))
    }

    /// Runs `body` in a write transaction and commits it (durably: the commit fsyncs). If the
    /// map is full, the transaction is aborted, the map doubled, and `body` run again; if LMDB
    /// left the environment unusable, it is reopened and `body` run again once. So `body` must
    /// not have effects outside the transaction. A failed commit (`ENOSPC`, `EIO`…) throws and
    /// leaves the database as it was before the transaction.
    public func write<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        pthread_mutex_lock(writeLock)
        defer { pthread_mutex_unlock(writeLock) }
        return try writeLocked(body)
    }

    /// `write`, with `writeLock` held by the caller.
    private func writeLocked<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        var reopened = false
        while true {
            do {
                if needsReopen {
                    reopened = true
                    try reopen()
                }
                return try attemptWrite(body)
            } catch let error as LMDBError where error.isMapFull {
                guard mapSize < maxMapSize else {
                    throw LMDBError(code: MDB_MAP_FULL, operation: "\(error.operation): the database reached its size limit of \(maxMapSize) bytes")
                }
                try grow()
            } catch where (error as? LMDBError)?.isPanic == true && !reopened {
                // The environment handle is unusable (lmdb.h: MDB_PANIC); the transaction never
                // began or was already freed by mdb_txn_commit. Reopen, then run `body` again.
                markForReopen()
            }
        }
    }

    private func attemptWrite<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        let env = try requireEnv()
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin(write)")
        let result: T
        do {
            result = try body(LMDBTransaction(txn: txn!))
        } catch {
            // The body failed: the transaction is still ours to end.
            mdb_txn_abort(txn)
            throw error
        }
        // lmdb.h: "The transaction handle is freed" by mdb_txn_commit, whatever it returns; on
        // failure LMDB has already aborted it. It must not be aborted (or touched) again.
        let rc = mdb_txn_commit(txn)
        if rc != 0 {
            throw LMDBError(code: rc, operation: "mdb_txn_commit", isNoSpace: Self.isNoSpace(rc, path: path))
        }
        return result
    }

    /// A short write is reported by LMDB as EIO; it means "disk full" when the filesystem is
    /// (nearly) out of space.
    static func isNoSpace(_ rc: Int32, path: String) -> Bool {
        if rc == ENOSPC || rc == EDQUOT { return true }
        guard rc == EIO else { return false }
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return false }
        return UInt64(fs.f_bavail) * UInt64(fs.f_frsize) < UInt64(LMDBError.nearlyFullBytes)
    }

    private func grow() throws {
        pthread_rwlock_wrlock(lock)  // no transaction of ours may be open while resizing
        defer { pthread_rwlock_unlock(lock) }
        let env = try requireEnv()
        let newSize = mapSize > maxMapSize / 2 ? maxMapSize : mapSize * 2
        let rc = mdb_env_set_mapsize(env, newSize)
        guard rc == 0 else {
            // mdb_env_set_mapsize unmaps the old map before mapping the new one; when that
            // fails the handle is left without a map and must not be used again.
            closeForReopen()
            throw LMDBError(code: rc, operation: "mdb_env_set_mapsize(\(newSize))")
        }
        mapSize = newSize
        mapGrowths += 1
    }

    private func markForReopen() {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        closeForReopen()
    }

    /// With the write lock of `lock` held.
    private func closeForReopen() {
        if let e = env {
            mdb_env_close(e)
            env = nil
        }
        needsReopen = true
    }

    /// Opens the environment again and re-opens every database under its old handle number,
    /// so the `LMDBDatabase` values callers hold stay valid. With `writeLock` held.
    private func reopen() throws {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        guard needsReopen, env == nil else { return }
        let opened = try Self.openHandle(path: path, mapSize: mapSize, maxDatabases: maxDatabases)
        do {
            var txn: OpaquePointer?
            try check(mdb_txn_begin(opened.env, nil, 0, &txn), "mdb_txn_begin(reopen)")
            for db in databases {
                var dbi: MDB_dbi = 0
                let rc = mdb_dbi_open(txn, db.name, 0, &dbi)
                if rc != 0 || dbi != db.dbi {
                    mdb_txn_abort(txn)
                    throw LMDBError(code: rc == 0 ? EINVAL : rc, operation: "reopen database \(db.name)")
                }
            }
            // Opening existing databases changes no page, so this commit writes nothing.
            try check(mdb_txn_commit(txn), "mdb_txn_commit(reopen)")
        } catch {
            mdb_env_close(opened.env)
            throw error
        }
        env = opened.env
        mapSize = opened.mapSize
        needsReopen = false
        reopens += 1
    }

    /// The descriptor LMDB writes data pages through (`mdb_env_get_fd`), for fault-injection
    /// tests.
    func dataFileDescriptor() throws -> Int32 {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        var fd: Int32 = -1
        try check(mdb_env_get_fd(try requireEnv(), &fd), "mdb_env_get_fd")
        return fd
    }

    /// Entries and pages used, for metrics and tests.
    public func stat(_ db: LMDBDatabase) throws -> (entries: Int, depth: Int) {
        try read { txn in
            var s = MDB_stat()
            try check(mdb_stat(txn.txn, db.dbi, &s), "mdb_stat")
            return (Int(s.ms_entries), Int(s.ms_depth))
        }
    }
}

/// A transaction handle, valid only inside the closure that received it.
public struct LMDBTransaction {
    let txn: OpaquePointer

    public func get(_ db: LMDBDatabase, _ key: [UInt8]) throws -> [UInt8]? {
        var k = key
        return try k.withUnsafeMutableBytes { kp in
            var kv = MDB_val(mv_size: kp.count, mv_data: kp.baseAddress)
            var v = MDB_val()
            let rc = mdb_get(txn, db.dbi, &kv, &v)
            if rc == MDB_NOTFOUND { return nil }
            try check(rc, "mdb_get \(db.name)")
            return Array(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
        }
    }

    public func put(_ db: LMDBDatabase, _ key: [UInt8], _ value: [UInt8]) throws {
        var k = key, v = value
        try k.withUnsafeMutableBytes { kp in
            try v.withUnsafeMutableBytes { vp in
                var kv = MDB_val(mv_size: kp.count, mv_data: kp.baseAddress)
                var vv = MDB_val(mv_size: vp.count, mv_data: vp.baseAddress)
                try check(mdb_put(txn, db.dbi, &kv, &vv, 0), "mdb_put \(db.name)")
            }
        }
    }

    /// Deletes a key; returns false if it was absent.
    @discardableResult
    public func delete(_ db: LMDBDatabase, _ key: [UInt8]) throws -> Bool {
        var k = key
        return try k.withUnsafeMutableBytes { kp in
            var kv = MDB_val(mv_size: kp.count, mv_data: kp.baseAddress)
            let rc = mdb_del(txn, db.dbi, &kv, nil)
            if rc == MDB_NOTFOUND { return false }
            try check(rc, "mdb_del \(db.name)")
            return true
        }
    }

    /// Visits entries in key order, starting at the first key ≥ `from` (or the first key);
    /// stops when `body` returns false.
    public func forEach(_ db: LMDBDatabase, from: [UInt8]? = nil, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, db.dbi, &cursor), "mdb_cursor_open \(db.name)")
        defer { mdb_cursor_close(cursor) }
        var k = MDB_val(), v = MDB_val()
        var start = from ?? []
        var rc: Int32 = try start.withUnsafeMutableBytes { sp in
            if from != nil {
                k = MDB_val(mv_size: sp.count, mv_data: sp.baseAddress)
                return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            }
            return mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
        }
        while rc == 0 {
            let key = Array(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size))
            let value = Array(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
            if try !body(key, value) { return }
            rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get \(db.name)") }
    }
}
