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
    public var description: String { "\(operation): \(String(cString: mdb_strerror(code))) (\(code))" }

    public var isMapFull: Bool { code == MDB_MAP_FULL }
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
    if rc != 0 { throw LMDBError(code: rc, operation: operation()) }
}

/// A named database (LMDB "DBI") inside an environment.
public struct LMDBDatabase: Sendable {
    let dbi: MDB_dbi
    public let name: String
}

/// One LMDB environment: a memory-mapped, crash-safe B+tree store in a directory.
///
/// - Writes are serialised (LMDB allows one writer) and retried after growing the map when
///   LMDB reports `MDB_MAP_FULL`.
/// - Reads run concurrently; growing the map waits for them, because LMDB only allows
///   `mdb_env_set_mapsize` while this process has no transaction open.
/// - Stale reader slots left by crashed processes are cleared at open (`mdb_reader_check`).
public final class LMDBEnvironment: @unchecked Sendable {
    private var env: OpaquePointer?
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    private let writeLock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    public private(set) var mapSize: Int
    public let path: String
    /// Reader slots of dead processes cleared when the environment was opened.
    public let staleReadersCleared: Int
    public private(set) var mapGrowths = 0

    public init(path: String, mapSize: Int = 64 << 20, maxDatabases: UInt32 = 16) throws {
        self.path = path
        self.mapSize = mapSize
        pthread_rwlock_init(lock, nil)
        pthread_mutex_init(writeLock, nil)
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw LMDBError(code: errno, operation: "mkdir \(path)")
        }
        var e: OpaquePointer?
        try check(mdb_env_create(&e), "mdb_env_create")
        env = e
        do {
            try check(mdb_env_set_maxdbs(e, maxDatabases), "mdb_env_set_maxdbs")
            try check(mdb_env_set_mapsize(e, mapSize), "mdb_env_set_mapsize")
            // MDB_NOTLS: read transactions are not tied to threads (Swift tasks hop threads).
            try check(mdb_env_open(e, path, UInt32(MDB_NOTLS), 0o600), "mdb_env_open \(path)")
            // The file may be larger than requested (grown in an earlier run): adopt its size.
            var info = MDB_envinfo()
            try check(mdb_env_info(e, &info), "mdb_env_info")
            self.mapSize = max(mapSize, info.me_mapsize)
            var dead: Int32 = 0
            try check(mdb_reader_check(e, &dead), "mdb_reader_check")
            staleReadersCleared = Int(dead)
        } catch {
            mdb_env_close(e)
            env = nil
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
        if let e = env {
            mdb_env_sync(e, 1)
            mdb_env_close(e)
            env = nil
        }
    }

    private func requireEnv() throws -> OpaquePointer {
        guard let env else { throw LMDBError(code: EINVAL, operation: "environment \(path) is closed") }
        return env
    }

    /// Opens (creating if needed) a named database.
    public func database(_ name: String) throws -> LMDBDatabase {
        try write { txn in
            var dbi: MDB_dbi = 0
            try check(mdb_dbi_open(txn.txn, name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open \(name)")
            return LMDBDatabase(dbi: dbi, name: name)
        }
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
    /// map is full, the transaction is aborted, the map doubled, and `body` run again, so
    /// `body` must not have effects outside the transaction.
    public func write<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        pthread_mutex_lock(writeLock)
        defer { pthread_mutex_unlock(writeLock) }
        while true {
            do {
                return try attemptWrite(body)
            } catch let error as LMDBError where error.isMapFull {
                try grow()
            }
        }
    }

    private func attemptWrite<T>(_ body: (LMDBTransaction) throws -> T) throws -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        let env = try requireEnv()
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin(write)")
        do {
            let result = try body(LMDBTransaction(txn: txn!))
            let rc = mdb_txn_commit(txn)
            try check(rc, "mdb_txn_commit")
            return result
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
    }

    private func grow() throws {
        pthread_rwlock_wrlock(lock)  // no transaction of ours may be open while resizing
        defer { pthread_rwlock_unlock(lock) }
        let env = try requireEnv()
        let newSize = mapSize * 2
        try check(mdb_env_set_mapsize(env, newSize), "mdb_env_set_mapsize(\(newSize))")
        mapSize = newSize
        mapGrowths += 1
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
