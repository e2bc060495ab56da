import Identity
import Testing

@testable import Registry

/// A snapshot overlaid on another (`SyncSnapshot(overlaying:removing:adding:)`) must answer
/// every query a reconciliation makes exactly as a snapshot built from the whole set: the
/// sessions' bytes on the wire depend on it. Random sets, random changes (including removals
/// of absent IDs, additions of present ones, and an ID both removed and added), every query.
struct SnapshotOverlayTests {
    static func item(_ id: SyncID, _ tag: UInt8) -> SyncItem {
        SyncItem(id: id, encoded: [tag] + id.bytes)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func overlayAnswersAsTheWholeSet(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        func randomID() -> SyncID { SyncID(hi: rng.next() % 64, lo: rng.next()) }  // equal `hi`s: `lo` decides
        let baseIDs = (0..<Int(rng.next() % 300)).map { _ in randomID() }
        let base = SyncSnapshot(items: baseIDs.map { Self.item($0, 0) })
        var removing: [SyncID] = [], adding: [SyncItem] = []
        for id in baseIDs where rng.next() % 4 == 0 { removing.append(id) }
        for _ in 0..<Int(rng.next() % 40) { removing.append(randomID()) }  // absent: no effect
        for _ in 0..<Int(rng.next() % 60) { adding.append(Self.item(randomID(), 1)) }
        for id in baseIDs.prefix(5) where rng.next() % 2 == 0 { adding.append(Self.item(id, 2)) }  // present: kept as is
        if let both = removing.first { adding.append(Self.item(both, 3)) }  // removed and added: stays

        // The expected set, built the plain way.
        var expected: [SyncID: [UInt8]] = [:]
        for id in baseIDs { expected[id] = Self.item(id, 0).encoded }
        let addedIDs = Set(adding.map(\.id))
        for id in removing where !addedIDs.contains(id) { expected[id] = nil }
        for item in adding where expected[item.id] == nil && !baseIDs.contains(item.id) { expected[item.id] = item.encoded }
        let whole = SyncSnapshot(items: expected.map { SyncItem(id: $0.key, encoded: $0.value) })
        let overlay = SyncSnapshot(overlaying: base, removing: removing, adding: adding)

        #expect(overlay.count == whole.count)
        #expect(Array(overlay.ids) == Array(whole.ids))
        var bounds: [SyncBound] = [.infinity, .id(.zero)]
        bounds += whole.ids.map { .id($0) } + (0..<50).map { _ in .id(randomID()) }
        for bound in bounds { #expect(overlay.index(of: bound) == whole.index(of: bound)) }
        for start in 0...whole.count {
            for end in stride(from: start, through: whole.count, by: max(1, whole.count / 17)) {
                #expect(overlay.fingerprint(start, end) == whole.fingerprint(start, end))
            }
            #expect(overlay.fingerprint(start, whole.count) == whole.fingerprint(start, whole.count))
        }
        for id in baseIDs + removing + adding.map(\.id) + (0..<20).map({ _ in randomID() }) {
            #expect(overlay.item(id) == whole.item(id))
        }
    }
}
