import Foundation
import Store
import Testing

@Suite struct LMDBTests {
    func tempDir() -> String { NSTemporaryDirectory() + "drtc-lmdb-\(UUID().uuidString)" }

    @Test func putGetDeleteAndOrderedIteration() throws {
        let env = try LMDBEnvironment(path: tempDir())
        let db = try env.database("t")
        try env.write { txn in
            for i in [5, 1, 3] { try txn.put(db, [UInt8(i)], [UInt8(i * 10)]) }
        }
        #expect(try env.read { try $0.get(db, [3]) } == [30])
        #expect(try env.read { try $0.get(db, [4]) } == nil)
        var keys: [UInt8] = []
        try env.read { txn in try txn.forEach(db, from: [2]) { k, _ in keys.append(k[0]); return true } }
        #expect(keys == [3, 5])
        #expect(try env.write { try $0.delete(db, [3]) })
        #expect(try env.write { try $0.delete(db, [3]) } == false)
        #expect(try env.stat(db).entries == 2)
    }

    /// A map far too small for the data grows on MDB_MAP_FULL and every write lands.
    @Test func growsTheMapWhenFull() throws {
        let path = tempDir()
        let env = try LMDBEnvironment(path: path, mapSize: 256 * 1024)
        let db = try env.database("big")
        let value = [UInt8](repeating: 0xab, count: 4000)
        for batch in 0..<40 {
            try env.write { txn in
                for i in 0..<50 {
                    let key = withUnsafeBytes(of: UInt32(batch * 50 + i).bigEndian) { Array($0) }
                    try txn.put(db, key, value)
                }
            }
        }
        #expect(env.mapGrowths > 0)
        #expect(try env.stat(db).entries == 2000)
        env.close()
        // Reopening with the original small size adopts the grown file.
        let reopened = try LMDBEnvironment(path: path, mapSize: 256 * 1024)
        #expect(try reopened.stat(try reopened.database("big")).entries == 2000)
        #expect(reopened.mapSize >= 8_000_000, "the data needs about 8 MB; the map must have grown to hold it")
    }

    @Test func failedTransactionLeavesNoTrace() throws {
        struct Boom: Error {}
        let env = try LMDBEnvironment(path: tempDir())
        let db = try env.database("t")
        #expect(throws: Boom.self) {
            try env.write { txn in
                try txn.put(db, [1], [1])
                throw Boom()
            }
        }
        #expect(try env.read { try $0.get(db, [1]) } == nil)
    }

    @Test func closedEnvironmentThrowsInsteadOfCrashing() throws {
        let env = try LMDBEnvironment(path: tempDir())
        let db = try env.database("t")
        env.close()
        #expect(throws: LMDBError.self) { try env.read { try $0.get(db, [1]) } }
    }
}
