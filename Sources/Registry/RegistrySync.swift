import Identity

/// A record's identity in set reconciliation: 128 bits, ordered as a big-endian integer.
public struct SyncID: Hashable, Comparable, Sendable {
    public var hi: UInt64
    public var lo: UInt64

    public init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    public init(digestOf bytes: [UInt8]) {
        self.init(bytes: SHA256.hash(bytes).prefix(16))
    }

    /// From up to 16 big-endian bytes; a shorter prefix is zero-padded (how bounds are sent).
    init<C: Collection>(bytes: C) where C.Element == UInt8 {
        var hi: UInt64 = 0, lo: UInt64 = 0
        for (i, b) in bytes.prefix(16).enumerated() {
            if i < 8 { hi |= UInt64(b) << (56 - 8 * UInt64(i)) } else { lo |= UInt64(b) << (56 - 8 * UInt64(i - 8)) }
        }
        self.init(hi: hi, lo: lo)
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        withUnsafeBytes(of: hi.bigEndian) { out += $0 }
        withUnsafeBytes(of: lo.bigEndian) { out += $0 }
        return out
    }

    public static func < (a: SyncID, b: SyncID) -> Bool { a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo }

    /// Addition mod 2^128.
    public static func &+ (a: SyncID, b: SyncID) -> SyncID {
        let (lo, carry) = a.lo.addingReportingOverflow(b.lo)
        return SyncID(hi: a.hi &+ b.hi &+ (carry ? 1 : 0), lo: lo)
    }

    public static func &- (a: SyncID, b: SyncID) -> SyncID {
        let (lo, borrow) = a.lo.subtractingReportingOverflow(b.lo)
        return SyncID(hi: a.hi &- b.hi &- (borrow ? 1 : 0), lo: lo)
    }

    public static let zero = SyncID(hi: 0, lo: 0)
}

/// The upper bound of a range: a SyncID, or +∞ (the end of the space).
public enum SyncBound: Hashable, Sendable, Comparable {
    case id(SyncID)
    case infinity

    public static func < (a: SyncBound, b: SyncBound) -> Bool {
        switch (a, b) {
        case (.id(let x), .id(let y)): return x < y
        case (.id, .infinity): return true
        default: return false
        }
    }
}

/// One item of a reconciled set: its ID and the exact bytes that travel (a signed record, a
/// signed QoS bundle, …). The ID must be a hash of the bytes, so that nobody can make an item
/// collide with another and hide it from reconciliation.
public struct SyncItem: Sendable {
    public var id: SyncID
    public var encoded: [UInt8]

    public init(id: SyncID, encoded: [UInt8]) {
        self.id = id
        self.encoded = encoded
    }
}

/// An immutable view of one replica's item set for reconciliation: sorted IDs with prefix
/// sums, so that a range's fingerprint costs two binary searches.
///
/// A snapshot can also be another snapshot plus a few changes (`init(overlaying:removing:adding:)`):
/// it shares the other's sorted IDs, sums and items and keeps only the changes, so it costs
/// O(changes) instead of O(items). The simulator's peers all hold one shared table plus their
/// own recent merges (`RegistryTable`), and at 50,000 peers a full snapshot per distinct table
/// — nearly one per session — was the one cost that grew faster than the peer count
/// (Specs/simulation.md "Hot path"). Every query answers exactly as a snapshot built from the
/// whole set would.
public struct SyncSnapshot: Sendable {
    /// The sorted part, shared by the snapshots overlaid on it.
    private final class Base: Sendable {
        let ids: [SyncID]
        let prefixSums: [SyncID]
        let items: [SyncID: [UInt8]]

        init(items map: [SyncID: [UInt8]]) {
            ids = map.keys.sorted()
            var sums: [SyncID] = [.zero]
            sums.reserveCapacity(ids.count + 1)
            for id in ids { sums.append(sums[sums.count - 1] &+ id) }
            prefixSums = sums
            items = map
        }
    }

    private let base: Base
    /// Overlay: IDs not in `base`, sorted, with their items, their prefix sums and their
    /// positions in the merged order; `base` indices of the IDs removed, sorted, with the
    /// prefix sums of those IDs.
    private let added: [SyncID]
    private let addedItems: [SyncID: [UInt8]]
    private let addedSums: [SyncID]
    private let addedPositions: [Int]
    private let removed: [Int]
    private let removedSums: [SyncID]
    public let count: Int

    public init<S: Sequence>(items: S) where S.Element == SyncItem {
        var map: [SyncID: [UInt8]] = [:]
        for item in items { map[item.id] = item.encoded }
        self.init(base: Base(items: map))
    }

    private init(base: Base) {
        self.base = base
        added = []
        addedItems = [:]
        addedSums = [.zero]
        addedPositions = []
        removed = []
        removedSums = [.zero]
        count = base.ids.count
    }

    /// The registry's set: every record the replica holds.
    public init<S: Sequence>(records: S) where S.Element == SignedRecord {
        self.init(items: records.lazy.map { SyncItem(id: $0.syncID, encoded: $0.encoded) })
    }

    /// `other`'s set without `removing` and with `adding`: IDs to remove that `other` lacks,
    /// and items to add that it holds (and keeps), change nothing. `other` must not be an
    /// overlay itself.
    public init<S: Sequence>(overlaying other: SyncSnapshot, removing: [SyncID], adding: S) where S.Element == SyncItem {
        precondition(other.added.isEmpty && other.removed.isEmpty, "overlay on an overlay")
        let base = other.base
        var addMap: [SyncID: [UInt8]] = [:]
        for item in adding { addMap[item.id] = item.encoded }
        var removedIndices = Set<Int>()
        for id in removing where addMap[id] == nil {
            let i = Self.lowerBound(base.ids, id)
            if i < base.ids.count && base.ids[i] == id { removedIndices.insert(i) }
        }
        for id in Array(addMap.keys) {
            let i = Self.lowerBound(base.ids, id)
            if i < base.ids.count && base.ids[i] == id { addMap[id] = nil }  // already there
        }
        self.base = base
        removed = removedIndices.sorted()
        var rSums: [SyncID] = [.zero]
        for i in removed { rSums.append(rSums[rSums.count - 1] &+ base.ids[i]) }
        removedSums = rSums
        added = addMap.keys.sorted()
        addedItems = addMap
        var aSums: [SyncID] = [.zero]
        var positions: [Int] = []
        for (k, id) in added.enumerated() {
            aSums.append(aSums[aSums.count - 1] &+ id)
            // Merged elements before it: base elements below it that stay, and earlier adds.
            let p = Self.lowerBound(base.ids, id)
            positions.append(p - Self.lowerBound(removed, p) + k)
        }
        addedSums = aSums
        addedPositions = positions
        count = base.ids.count - removed.count + added.count
    }

    /// The IDs in order (a view: an overlay computes each from its parts).
    public var ids: IDs { IDs(snapshot: self) }

    public struct IDs: RandomAccessCollection, Sendable {
        let snapshot: SyncSnapshot
        public var startIndex: Int { 0 }
        public var endIndex: Int { snapshot.count }
        public subscript(position: Int) -> SyncID { snapshot.id(at: position) }
    }

    public func item(_ id: SyncID) -> [UInt8]? {
        if isPlain { return base.items[id] }
        if let item = addedItems[id] { return item }
        guard let item = base.items[id] else { return nil }
        let i = Self.lowerBound(base.ids, id)
        return Self.contains(removed, i) ? nil : item
    }

    private var isPlain: Bool { added.isEmpty && removed.isEmpty }

    /// The ID at merged position `i`.
    func id(at i: Int) -> SyncID {
        if isPlain { return base.ids[i] }
        let k = Self.lowerBound(addedPositions, i)
        if k < addedPositions.count && addedPositions[k] == i { return added[k] }
        return base.ids[baseIndex(ofKept: i - k)]
    }

    /// Index in `base` of its `j`-th element (from 0) that is not removed; `base.ids.count`
    /// when fewer remain.
    private func baseIndex(ofKept j: Int) -> Int {
        // kept(x) = x − (removed indices below x) grows by one past each kept element.
        var lo = j, hi = min(base.ids.count, j + removed.count)
        // Smallest x in [lo, hi] with kept(x + 1) > j, i.e. x is the j-th kept element.
        while lo < hi {
            let mid = (lo + hi) / 2
            if mid + 1 - Self.lowerBound(removed, mid + 1) > j { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// Sum of the IDs at merged positions 0..<i.
    private func prefixSum(_ i: Int) -> SyncID {
        if isPlain { return base.prefixSums[i] }
        let k = Self.lowerBound(addedPositions, i)
        let b = baseIndex(ofKept: i - k)
        return base.prefixSums[b] &- removedSums[Self.lowerBound(removed, b)] &+ addedSums[k]
    }

    /// Index of the first ID ≥ bound.
    func index(of bound: SyncBound) -> Int {
        guard case .id(let b) = bound else { return count }
        let inBase = Self.lowerBound(base.ids, b)
        if isPlain { return inBase }
        return inBase - Self.lowerBound(removed, inBase) + Self.lowerBound(added, b)
    }

    /// Fingerprint of ids[start..<end]: the first 16 bytes of SHA-256(sum mod 2^128 ‖ count).
    func fingerprint(_ start: Int, _ end: Int) -> [UInt8] {
        var input = (prefixSum(end) &- prefixSum(start)).bytes
        ProtoVarint.append(UInt64(end - start), to: &input)
        return Array(SHA256.hash(input).prefix(16))
    }

    private static func lowerBound<T: Comparable>(_ sorted: [T], _ value: T) -> Int {
        var lo = 0, hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid] < value { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    private static func contains(_ sorted: [Int], _ value: Int) -> Bool {
        let i = lowerBound(sorted, value)
        return i < sorted.count && sorted[i] == value
    }
}

/// Why a sync session was aborted: a stable code and a message naming the peer's mistake.
public struct SyncError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        case malformed, unsupportedVersion, limitExceeded, protocolViolation
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// Limits that bound what a peer can make us do in one session.
public struct SyncLimits: Sendable {
    public var maxFrameSize = 1 << 20
    public var maxRounds = 48
    public var maxRangesPerTurn = 100_000
    public var maxIDsPerTurn = 400_000
    public var maxRecordsPerSession = 500_000
    /// Largest item accepted (registry records and QoS bundles are both at most 16 KiB).
    public var maxItemSize = SignedRecord.maxEncodedSize
    public init() {}
}

/// The registry's name for the reconciliation session (`/drtc/registry-sync/1.0.0`).
public typealias RegistrySyncSession = SetSyncSession

/// Range-based set reconciliation (A. Meyer, "Range-Based Set Reconciliation", 2023; the same
/// scheme as Negentropy) of two replicas' sets of signed, content-addressed items, with the
/// missing items shipped inline. Cost grows with the difference, not the set size. Wire format
/// and rules: Specs/registry-sync.md. One implementation for every replicated set: registry
/// records on `/drtc/registry-sync/1.0.0`, QoS bundles on `/drtc/qos-sync/1.0.0`
/// (Specs/qos.md "Replication"), in the node and in the simulator.
///
/// Pure: the shell moves frames between `start()` / `receive(frame:)` and a libp2p stream and
/// verifies and merges the items it is handed.
public struct SetSyncSession {
    public enum Role: Sendable { case initiator, responder }

    /// What one step produced.
    public struct Step {
        /// Frames to write, in order (each already length-prefixed).
        public var frames: [[UInt8]] = []
        /// Encoded items (`SignedMediaNodeRecord`s, `SignedQosBundle`s) received from the peer,
        /// to verify and merge.
        public var records: [[UInt8]] = []
        /// The session is over: close the stream after writing `frames`.
        public var done = false
    }

    /// Entry types (Specs/registry-sync.md).
    enum EntryType: UInt8 {
        case skip = 1, fingerprint = 2, idList = 3, want = 4, records = 5
    }

    enum Flags {
        static let more: UInt8 = 1
        static let final: UInt8 = 2
    }

    /// The registry set's protocol.
    public static let protocolID = "/drtc/registry-sync/1.0.0"
    static let version: UInt8 = 1
    /// Ranges with at most this many local items are sent as ID lists.
    public var idListThreshold = 32
    /// A differing range is split into this many sub-ranges.
    public var branching = 16

    public let role: Role
    let snapshot: SyncSnapshot
    let limits: SyncLimits
    private var rounds = 0
    private var recordsReceived = 0
    private var pending = TurnReader()
    public private(set) var finished = false

    public init(role: Role, snapshot: SyncSnapshot, limits: SyncLimits = SyncLimits()) {
        self.role = role
        self.snapshot = snapshot
        self.limits = limits
    }

    /// The initiator's opening turn: the whole space as one range.
    /// The whole answer of a responder that is too busy to reconcile (Specs/registry-sync.md
    /// "Busy responders"): one final turn carrying `sample` — a few of its live records, whose
    /// addresses let the initiator find other peers to sync with. Any first turn may be
    /// answered this way; the initiator merges the records and the session ends.
    public static func busyReply(sample: [SignedRecord], limits: SyncLimits = SyncLimits()) -> [[UInt8]] {
        busyReply(items: sample.map(\.encoded), limits: limits)
    }

    public static func busyReply(items: [[UInt8]], limits: SyncLimits = SyncLimits()) -> [[UInt8]] {
        var turn = TurnWriter(maxFrameSize: limits.maxFrameSize)
        for item in items { turn.record(item) }
        return turn.finish(final: true)
    }

    public mutating func start() -> Step {
        precondition(role == .initiator, "only the initiator starts")
        var turn = TurnWriter(maxFrameSize: limits.maxFrameSize)
        describe(0, snapshot.count, upper: .infinity, into: &turn, forceSplit: false)
        rounds += 1
        return Step(frames: turn.finish(final: false), records: [], done: false)
    }

    /// Feeds one frame body (without its length prefix). A turn may span frames (MORE flag):
    /// the reply is produced when its last frame arrives.
    public mutating func receive(frame: [UInt8]) throws(SyncError) -> Step {
        guard !finished else { throw SyncError(.protocolViolation, "frame after the session ended") }
        guard frame.count <= limits.maxFrameSize else { throw SyncError(.limitExceeded, "frame of \(frame.count) bytes exceeds \(limits.maxFrameSize)") }
        var step = Step()
        let complete = try pending.add(frame, limits: limits, records: &step.records)
        recordsReceived += step.records.count
        guard recordsReceived <= limits.maxRecordsPerSession else {
            throw SyncError(.limitExceeded, "peer sent more than \(limits.maxRecordsPerSession) records")
        }
        guard complete else { return step }
        let turn = pending
        pending = TurnReader()
        rounds += 1
        guard rounds <= limits.maxRounds else { throw SyncError(.limitExceeded, "more than \(limits.maxRounds) rounds") }
        if turn.final {
            finished = true
            step.done = true
            return step
        }
        var reply = TurnWriter(maxFrameSize: limits.maxFrameSize)
        var lower = 0
        var needsReply = false
        for range in turn.ranges {
            let end = snapshot.index(of: range.upper)
            let start = min(lower, end)
            lower = end
            switch range.kind {
            case .skip:
                reply.skip(range.upper)
            case .fingerprint(let count, let fp):
                if count == end - start && fp == snapshot.fingerprint(start, end) {
                    reply.skip(range.upper)
                } else {
                    describe(start, end, upper: range.upper, into: &reply, forceSplit: true)
                    needsReply = true
                }
            case .idList(let theirs):
                let theirSet = Set(theirs)
                var ours = Set<SyncID>()
                for i in start..<end {
                    ours.insert(snapshot.ids[i])
                    if !theirSet.contains(snapshot.ids[i]), let item = snapshot.item(snapshot.ids[i]) { reply.record(item) }
                }
                let wanted = theirs.filter { !ours.contains($0) }
                if !wanted.isEmpty {
                    reply.want(wanted)
                    needsReply = true
                }
                reply.skip(range.upper)
            }
        }
        for id in turn.wants {
            if let item = snapshot.item(id) { reply.record(item) }
        }
        step.frames = reply.finish(final: !needsReply)
        if !needsReply {
            finished = true
            step.done = true
        }
        return step
    }

    /// Describes local items [start, end) bounded above by `upper`: as an ID list when small
    /// (or empty), else as a fingerprint, or (when the peer's fingerprint differed) as
    /// `branching` sub-ranges.
    private func describe(_ start: Int, _ end: Int, upper: SyncBound, into turn: inout TurnWriter, forceSplit: Bool) {
        let n = end - start
        if n <= idListThreshold {
            turn.idList(Array(snapshot.ids[start..<end]), upper: upper)
            return
        }
        guard forceSplit else {
            turn.fingerprint(count: n, snapshot.fingerprint(start, end), upper: upper)
            return
        }
        // Every sub-range holds at least one item, so the bounds are strictly ascending.
        let parts = min(branching, n)
        var from = start
        for k in 1...parts {
            let to = k == parts ? end : start + n * k / parts
            let bound: SyncBound = k == parts ? upper : .id(snapshot.ids[to])
            let count = to - from
            if count <= idListThreshold / 4 {
                turn.idList(Array(snapshot.ids[from..<to]), upper: bound)
            } else {
                turn.fingerprint(count: count, snapshot.fingerprint(from, to), upper: bound)
            }
            from = to
        }
    }
}

// MARK: - wire

struct TurnWriter {
    let maxFrameSize: Int
    private var frames: [[UInt8]] = []
    private var body: [UInt8] = []
    private var pendingSkip: SyncBound?

    init(maxFrameSize: Int) { self.maxFrameSize = maxFrameSize }

    mutating func skip(_ upper: SyncBound) { pendingSkip = upper }

    private mutating func flushSkip() {
        if let bound = pendingSkip {
            pendingSkip = nil
            append(SetSyncSession.EntryType.skip) { Self.encode(bound, into: &$0) }
        }
    }

    mutating func fingerprint(count: Int, _ fp: [UInt8], upper: SyncBound) {
        flushSkip()
        append(.fingerprint) {
            Self.encode(upper, into: &$0)
            ProtoVarint.append(UInt64(count), to: &$0)
            $0 += fp
        }
    }

    mutating func idList(_ ids: [SyncID], upper: SyncBound) {
        flushSkip()
        // Long lists are cut into several ranges so that each entry fits a frame.
        let perEntry = max(1, (maxFrameSize - 64) / 16)
        var rest = ids[...]
        while rest.count > perEntry {
            let chunk = rest.prefix(perEntry)
            rest = rest.dropFirst(perEntry)
            let bound = SyncBound.id(rest.first!)
            append(.idList) { out in
                Self.encode(bound, into: &out)
                ProtoVarint.append(UInt64(chunk.count), to: &out)
                for id in chunk { out += id.bytes }
            }
        }
        append(.idList) { out in
            Self.encode(upper, into: &out)
            ProtoVarint.append(UInt64(rest.count), to: &out)
            for id in rest { out += id.bytes }
        }
    }

    mutating func want(_ ids: [SyncID]) {
        flushSkip()
        let perEntry = max(1, (maxFrameSize - 64) / 16)
        for start in stride(from: 0, to: ids.count, by: perEntry) {
            let chunk = ids[start..<min(ids.count, start + perEntry)]
            append(.want) { out in
                ProtoVarint.append(UInt64(chunk.count), to: &out)
                for id in chunk { out += id.bytes }
            }
        }
    }

    mutating func record(_ encoded: [UInt8]) {
        append(.records) { out in
            ProtoVarint.append(1, to: &out)
            ProtoVarint.append(UInt64(encoded.count), to: &out)
            out += encoded
        }
    }

    private mutating func append(_ type: SetSyncSession.EntryType, _ payload: (inout [UInt8]) -> Void) {
        var entry: [UInt8] = [type.rawValue]
        payload(&entry)
        if !body.isEmpty && body.count + entry.count > maxFrameSize - 8 { closeFrame(more: true, final: false) }
        body += entry
    }

    private mutating func closeFrame(more: Bool, final: Bool) {
        var frame: [UInt8] = []
        let header: [UInt8] = [SetSyncSession.version, (more ? SetSyncSession.Flags.more : 0) | (final ? SetSyncSession.Flags.final : 0)]
        ProtoVarint.append(UInt64(header.count + body.count), to: &frame)
        frame += header
        frame += body
        frames.append(frame)
        body = []
    }

    mutating func finish(final: Bool) -> [[UInt8]] {
        flushSkip()
        closeFrame(more: false, final: final)
        return frames
    }

    static func encode(_ bound: SyncBound, into out: inout [UInt8]) {
        switch bound {
        case .infinity:
            out.append(0xff)
        case .id(let id):
            // The shortest prefix is not worth the bookkeeping here: bounds are 1/16 of ranges.
            var bytes = id.bytes
            while let last = bytes.last, last == 0 { bytes.removeLast() }
            out.append(UInt8(bytes.count))
            out += bytes
        }
    }
}

/// Accumulates one turn (one or more frames).
struct TurnReader {
    enum Kind {
        case skip
        case fingerprint(count: Int, [UInt8])
        case idList([SyncID])
    }

    struct Range {
        var upper: SyncBound
        var kind: Kind
    }

    var ranges: [Range] = []
    var wants: [SyncID] = []
    var final = false
    private var ids = 0

    /// Parses a frame body; returns true once the turn is complete.
    mutating func add(_ frame: [UInt8], limits: SyncLimits, records: inout [[UInt8]]) throws(SyncError) -> Bool {
        var r = ByteReader(frame)
        guard let version = r.byte() else { throw SyncError(.malformed, "empty frame") }
        guard version == SetSyncSession.version else { throw SyncError(.unsupportedVersion, "sync version \(version), expected 1") }
        guard let flags = r.byte() else { throw SyncError(.malformed, "frame without flags") }
        while !r.atEnd {
            guard let typeByte = r.byte(), let type = SetSyncSession.EntryType(rawValue: typeByte) else {
                throw SyncError(.malformed, "unknown entry type")
            }
            switch type {
            case .skip:
                try addRange(Range(upper: try r.bound(), kind: .skip), limits)
            case .fingerprint:
                let upper = try r.bound()
                let count = try r.varint()
                guard count <= UInt64(Int32.max), let fp = r.bytes(16) else { throw SyncError(.malformed, "truncated fingerprint") }
                try addRange(Range(upper: upper, kind: .fingerprint(count: Int(count), fp)), limits)
            case .idList:
                let upper = try r.bound()
                let list = try readIDs(&r, limits)
                guard list.indices.dropFirst().allSatisfy({ list[$0 - 1] < list[$0] }) else {
                    throw SyncError(.protocolViolation, "ID list not strictly ascending")
                }
                try addRange(Range(upper: upper, kind: .idList(list)), limits)
            case .want:
                wants += try readIDs(&r, limits)
            case .records:
                let n = try r.varint()
                guard n <= UInt64(limits.maxRecordsPerSession) else { throw SyncError(.limitExceeded, "too many records in one entry") }
                for _ in 0..<n {
                    let length = try r.varint()
                    guard length <= UInt64(limits.maxItemSize), let bytes = r.bytes(Int(length)) else {
                        throw SyncError(.malformed, "truncated or oversize record")
                    }
                    records.append(bytes)
                }
            }
        }
        if flags & SetSyncSession.Flags.more != 0 { return false }
        final = flags & SetSyncSession.Flags.final != 0
        if let last = ranges.last, last.upper != .infinity {
            throw SyncError(.protocolViolation, "ranges do not reach the end of the space")
        }
        return true
    }

    private mutating func addRange(_ range: Range, _ limits: SyncLimits) throws(SyncError) {
        if let last = ranges.last, !(last.upper < range.upper) {
            throw SyncError(.protocolViolation, "range bounds not ascending")
        }
        guard ranges.count < limits.maxRangesPerTurn else { throw SyncError(.limitExceeded, "more than \(limits.maxRangesPerTurn) ranges") }
        ranges.append(range)
    }

    private mutating func readIDs(_ r: inout ByteReader, _ limits: SyncLimits) throws(SyncError) -> [SyncID] {
        let n = try r.varint()
        guard n <= UInt64(limits.maxIDsPerTurn - ids) else { throw SyncError(.limitExceeded, "more than \(limits.maxIDsPerTurn) IDs in one turn") }
        ids += Int(n)
        var out: [SyncID] = []
        out.reserveCapacity(Int(n))
        for _ in 0..<n {
            guard let b = r.bytes(16) else { throw SyncError(.malformed, "truncated ID") }
            out.append(SyncID(bytes: b))
        }
        return out
    }
}

struct ByteReader {
    let data: [UInt8]
    var index = 0
    init(_ data: [UInt8]) { self.data = data }
    var atEnd: Bool { index >= data.count }

    mutating func byte() -> UInt8? {
        guard index < data.count else { return nil }
        defer { index += 1 }
        return data[index]
    }

    mutating func bytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, data.count - index >= n else { return nil }
        defer { index += n }
        return Array(data[index..<index + n])
    }

    mutating func varint() throws(SyncError) -> UInt64 {
        guard let v = ProtoVarint.read(data, &index, end: data.count) else { throw SyncError(.malformed, "truncated or over-long varint") }
        return v
    }

    mutating func bound() throws(SyncError) -> SyncBound {
        guard let length = byte() else { throw SyncError(.malformed, "truncated bound") }
        if length == 0xff { return .infinity }
        guard length <= 16, let prefix = bytes(Int(length)) else { throw SyncError(.malformed, "bad bound length \(length)") }
        return .id(SyncID(bytes: prefix))
    }
}
