import Identity

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `/getMediaNodes` query.
public struct NodeQuery: Sendable, Hashable {
    public var region: String?
    public var near: GeoPoint?
    public var limit: Int
    /// Minimum QoS score in 0...1 (Specs/qos.md "Aggregation"): an unmeasured node cannot prove
    /// a score, so any value above 0 excludes it.
    public var minScore: Double?

    public static let defaultLimit = 10
    public static let maxLimit = 1000

    public init(region: String? = nil, near: GeoPoint? = nil, limit: Int = defaultLimit, minScore: Double? = nil) {
        self.region = region
        self.near = near
        self.limit = limit
        self.minScore = minScore
    }
}

/// Ranking of `/getMediaNodes`: nodes are grouped into distance bands of this width (when the
/// query gives a position), and within a band ordered by load headroom. 50 km of fibre is
/// about 0.5 ms of round trip: inside a band the less loaded node is the better choice.
public let distanceBandKm = 50.0
public let earthRadiusKm = 6371.0088

public func greatCircleKm(_ a: GeoPoint, _ b: GeoPoint) -> Double {
    let va = UnitVector(a), vb = UnitVector(b)
    return chordToKm(va.chord(to: vb))
}

struct UnitVector {
    var x, y, z: Double
    init(_ p: GeoPoint) {
        let lat = p.latitude * .pi / 180, lon = p.longitude * .pi / 180
        x = cos(lat) * cos(lon)
        y = cos(lat) * sin(lon)
        z = sin(lat)
    }
    subscript(axis: Int) -> Double { axis == 0 ? x : (axis == 1 ? y : z) }
    func distance2(to o: UnitVector) -> Double {
        let dx = x - o.x, dy = y - o.y, dz = z - o.z
        return dx * dx + dy * dy + dz * dz
    }
    func chord(to o: UnitVector) -> Double { distance2(to: o).squareRoot() }
}

func chordToKm(_ chord: Double) -> Double { 2 * asin(min(1, chord / 2)) * earthRadiusKm }
func kmToChord(_ km: Double) -> Double { 2 * sin(min(.pi / 2, km / (2 * earthRadiusKm))) }

/// A static 3-D k-d tree over the unit-sphere positions of records, plus the set of records
/// changed since it was built. Euclidean (chord) distance on the unit sphere is monotonic in
/// great-circle distance, so nearest-neighbour search in 3-D is exact, with no trouble at the
/// poles or the antimeridian. Changed records are answered from the pending set, and the tree
/// is rebuilt once that set grows past a fraction of the table.
struct SpatialIndex: Sendable {
    /// A record in the tree. `liveUntilMs` copies what the liveness check needs (0 for a record
    /// that is not active, or that changed since the build and is answered from `pending`), so
    /// the search decides on points alone: a record object is touched only for the few that
    /// pass (cache misses on scattered records were half a query's time).
    struct Point: Sendable {
        var position: UnitVector
        var liveUntilMs: UInt64
        var record: SignedRecord
    }

    private var tree: [Point] = []
    /// Where each record sits in `tree` after the build.
    private var indexOf: [PeerID: Int] = [:]
    private(set) var pending: Set<PeerID> = []

    init(records: RegistryTable.Records) {
        var points: [Point] = []
        points.reserveCapacity(records.underestimatedCount)
        for record in records {
            guard let geo = record.record.geo else { continue }
            points.append(Point(position: UnitVector(geo), liveUntilMs: record.record.status == .active ? record.expiresAtMs : 0, record: record))
        }
        Self.build(&points, 0, points.count, 0)
        for (i, p) in points.enumerated() { indexOf[p.record.nodeID] = i }
        tree = points
    }

    var needsRebuild: Bool { pending.count > 64 + tree.count / 32 }

    mutating func markChanged(_ id: PeerID) {
        if let i = indexOf[id] { tree[i].liveUntilMs = 0 }
        pending.insert(id)
    }

    /// Median-split build: node of range [lo, hi) is its middle element.
    private static func build(_ points: inout [Point], _ lo: Int, _ hi: Int, _ depth: Int) {
        guard hi - lo > 1 else { return }
        let axis = depth % 3
        let mid = (lo + hi) / 2
        quickselect(&points, lo, hi - 1, mid, axis)
        build(&points, lo, mid, depth + 1)
        build(&points, mid + 1, hi, depth + 1)
    }

    private static func quickselect(_ a: inout [Point], _ lo: Int, _ hi: Int, _ k: Int, _ axis: Int) {
        var lo = lo, hi = hi
        while lo < hi {
            let pivot = a[(lo + hi) / 2].position[axis]
            var i = lo, j = hi
            while i <= j {
                while a[i].position[axis] < pivot { i += 1 }
                while a[j].position[axis] > pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if k <= j { hi = j } else if k >= i { lo = i } else { return }
        }
    }

    /// The `k` nearest records live at `nowMs` and passing `accept` (nil: all), as (chord,
    /// record), nearest first.
    ///
    /// Iterative, with an explicit stack: a recursive local function capturing `best` made Swift
    /// box it and check exclusive access dynamically on every visit. Each stack entry carries the
    /// squared distance from `q` to its half-space, so a branch is skipped when it cannot beat
    /// the k-th best found so far. `best` holds tree indices: records are read (and retained)
    /// only for the k found, and for `accept` when there is one.
    func nearest(_ q: UnitVector, k: Int, nowMs: UInt64, pendingRecords: [SignedRecord], accept: ((SignedRecord) -> Bool)?) -> [(Double, SignedRecord)] {
        guard k > 0 else { return [] }
        var best: [(d2: Double, index: Int)] = []  // sorted ascending, at most k
        best.reserveCapacity(k + 1)
        var stack: [(lo: Int, hi: Int, depth: Int, bound: Double)] = [(0, tree.count, 0, 0)]
        stack.reserveCapacity(64)
        tree.withUnsafeBufferPointer { tree in
            while let (lo, hi, depth, bound) = stack.popLast() {
                guard lo < hi else { continue }
                if best.count == k, bound >= best[k - 1].d2 { continue }
                let mid = (lo + hi) / 2
                let position = tree[mid].position
                let d2 = position.distance2(to: q)
                if best.count < k || d2 < best[best.count - 1].d2, nowMs < tree[mid].liveUntilMs, accept?(tree[mid].record) ?? true {
                    Self.offer(d2, mid, into: &best, k: k)
                }
                let axis = depth % 3
                let diff = q[axis] - position[axis]
                let (near, far) = diff < 0 ? ((lo, mid), (mid + 1, hi)) : ((mid + 1, hi), (lo, mid))
                // The far side first onto the stack, so the near side is searched first.
                stack.append((far.0, far.1, depth + 1, max(bound, diff * diff)))
                stack.append((near.0, near.1, depth + 1, bound))
            }
        }
        var out = best.map { ($0.d2, tree[$0.index].record) }
        for r in pendingRecords where r.isLive(nowMs: nowMs) && (accept?(r) ?? true) {
            guard let geo = r.record.geo else { continue }
            let d2 = UnitVector(geo).distance2(to: q)
            if out.count == k, let last = out.last, d2 >= last.0 { continue }
            var i = out.count
            while i > 0, out[i - 1].0 > d2 { i -= 1 }
            out.insert((d2, r), at: i)
            if out.count > k { out.removeLast() }
        }
        return out.map { ($0.0.squareRoot(), $0.1) }
    }

    /// Inserts (d2, i) into `best` (ascending, at most `k`) if it is among the k nearest; an
    /// equal distance goes after those already there.
    private static func offer(_ d2: Double, _ index: Int, into best: inout [(d2: Double, index: Int)], k: Int) {
        if best.count == k, let last = best.last, d2 >= last.d2 { return }
        var i = best.count
        while i > 0, best[i - 1].d2 > d2 { i -= 1 }
        best.insert((d2, index), at: i)
        if best.count > k { best.removeLast() }
    }

    /// Every record within `chord` of `q`, live at `nowMs` and passing `accept`.
    func within(_ q: UnitVector, chord: Double, nowMs: UInt64, pendingRecords: [SignedRecord], accept: ((SignedRecord) -> Bool)?) -> [(Double, SignedRecord)] {
        let limit2 = chord * chord
        var out: [(Double, SignedRecord)] = []
        func search(_ lo: Int, _ hi: Int, _ depth: Int) {
            guard lo < hi else { return }
            let mid = (lo + hi) / 2
            let p = tree[mid]
            let d2 = p.position.distance2(to: q)
            if d2 <= limit2, nowMs < p.liveUntilMs, accept?(p.record) ?? true { out.append((d2.squareRoot(), p.record)) }
            let axis = depth % 3
            let diff = q[axis] - p.position[axis]
            if diff < 0 || diff * diff <= limit2 { search(lo, mid, depth + 1) }
            if diff >= 0 || diff * diff <= limit2 { search(mid + 1, hi, depth + 1) }
        }
        search(0, tree.count, 0)
        for r in pendingRecords where r.isLive(nowMs: nowMs) && (accept?(r) ?? true) {
            if let geo = r.record.geo {
                let d2 = UnitVector(geo).distance2(to: q)
                if d2 <= limit2 { out.append((d2.squareRoot(), r)) }
            }
        }
        return out
    }
}

/// Answers registry queries over a table. Keeps derived orderings (spatial index, headroom
/// order, id order) and refreshes them when the table changes. Pure: time is a parameter.
public struct RegistryQueryEngine: Sendable {
    private var spatial: SpatialIndex?
    private var byHeadroom: [SignedRecord] = []
    private var byID: [(String, SignedRecord)] = []
    private var orderedGeneration: UInt64 = .max

    public init() {}

    /// Tells the engine which entries changed since the last call (after merges or GC).
    public mutating func noteChanged(_ ids: some Sequence<PeerID>) {
        guard spatial != nil else { return }
        for id in ids { spatial!.markChanged(id) }
    }

    private static func matches(_ r: SignedRecord, _ q: NodeQuery, nowMs: UInt64, quality: ((PeerID) -> Double?)?) -> Bool {
        guard r.isLive(nowMs: nowMs) else { return false }
        return passesFilters(r, q, quality: quality)
    }

    /// The query's filters besides liveness (region, minimum score); nil when it has none.
    private static func filter(_ q: NodeQuery, quality: ((PeerID) -> Double?)?) -> ((SignedRecord) -> Bool)? {
        guard q.region != nil || (q.minScore ?? 0) > 0 else { return nil }
        return { passesFilters($0, q, quality: quality) }
    }

    private static func passesFilters(_ r: SignedRecord, _ q: NodeQuery, quality: ((PeerID) -> Double?)?) -> Bool {
        if let region = q.region, r.record.region != region { return false }
        if let minScore = q.minScore, minScore > 0 {
            guard let score = quality?(r.nodeID), score >= minScore else { return false }
        }
        return true
    }

    /// The quality class of the ranking (Specs/qos.md "Aggregation"): ⌊5 · score⌋ for a measured
    /// node, 3 (the whitepaper's 0.6–0.8 band) for an unmeasured one.
    public static func qualityClass(_ score: Double?) -> Int {
        guard let score else { return 3 }
        return min(5, max(0, Int((score * 5).rounded(.down))))
    }

    private mutating func refreshOrders(_ table: RegistryTable) {
        guard orderedGeneration != table.generation else { return }
        byHeadroom = table.records.sorted {
            let (a, b) = ($0.record.loadHeadroom, $1.record.loadHeadroom)
            return a != b ? a > b : $0.nodeID < $1.nodeID
        }
        byID = table.records.map { ($0.nodeID.description, $0) }.sorted { $0.0 < $1.0 }
        orderedGeneration = table.generation
    }

    /// `/getMediaNodes`: live nodes, best first. With a position: by 50-km distance band,
    /// then by QoS quality class, then by load headroom, then nodeId. Without: by quality class,
    /// then load headroom, then nodeId. Without a `quality` function every node is class 3.
    public mutating func getMediaNodes(_ q: NodeQuery, table: RegistryTable, nowMs: UInt64,
                                       quality: ((PeerID) -> Double?)? = nil) -> [(record: SignedRecord, distanceKm: Double?)] {
        let limit = max(0, min(q.limit, NodeQuery.maxLimit))
        guard limit > 0 else { return [] }
        guard let near = q.near else {
            refreshOrders(table)
            guard let quality else {
                var out: [(record: SignedRecord, distanceKm: Double?)] = []
                for r in byHeadroom where Self.matches(r, q, nowMs: nowMs, quality: nil) {
                    out.append((r, nil))
                    if out.count == limit { break }
                }
                return out
            }
            // Headroom order within each class, classes best first.
            var classes = [[SignedRecord]](repeating: [], count: 6)
            for r in byHeadroom where Self.matches(r, q, nowMs: nowMs, quality: quality) {
                classes[Self.qualityClass(quality(r.nodeID))].append(r)
            }
            return classes.reversed().joined().prefix(limit).map { ($0, nil) }
        }
        if spatial == nil || spatial!.needsRebuild {
            spatial = SpatialIndex(records: table.records)
        }
        let index = spatial!
        let pendingRecords = index.pending.compactMap { table[$0] }
        let accept = Self.filter(q, quality: quality)
        let center = UnitVector(near)
        let nearest = index.nearest(center, k: limit, nowMs: nowMs, pendingRecords: pendingRecords, accept: accept)
        var candidates = nearest
        if nearest.count == limit, let last = nearest.last {
            // Everything in the k-th node's band competes on headroom.
            let bandEnd = (chordToKm(last.0) / distanceBandKm).rounded(.down) * distanceBandKm + distanceBandKm
            candidates = index.within(center, chord: kmToChord(bandEnd), nowMs: nowMs, pendingRecords: pendingRecords, accept: accept)
        }
        let ranked = candidates.map { (chord, r) -> (band: Double, quality: Int, headroom: Double, km: Double, r: SignedRecord) in
            let km = chordToKm(chord)
            return ((km / distanceBandKm).rounded(.down), Self.qualityClass(quality?(r.nodeID)), r.record.loadHeadroom, km, r)
        }.sorted {
            if $0.band != $1.band { return $0.band < $1.band }
            if $0.quality != $1.quality { return $0.quality > $1.quality }
            if $0.headroom != $1.headroom { return $0.headroom > $1.headroom }
            if $0.km != $1.km { return $0.km < $1.km }
            return $0.r.nodeID < $1.r.nodeID
        }
        return ranked.prefix(limit).map { ($0.r, $0.km) }
    }

    /// The `k` nearest live records to `near` (in `region` if given), nearest first, without
    /// the band-and-headroom ranking of `/getMediaNodes`: the orchestrator ranks them itself.
    public mutating func nearest(_ near: GeoPoint, k: Int, region: String?, table: RegistryTable, nowMs: UInt64) -> [SignedRecord] {
        guard k > 0 else { return [] }
        if spatial == nil || spatial!.needsRebuild {
            spatial = SpatialIndex(records: table.records)
        }
        let index = spatial!
        let q = NodeQuery(region: region, near: near, limit: k)
        return index.nearest(UnitVector(near), k: k, nowMs: nowMs, pendingRecords: index.pending.compactMap { table[$0] },
                             accept: Self.filter(q, quality: nil)).map(\.1)
    }

    /// `/listMediaNodes`: live records in nodeId (text) order, after `cursor` (exclusive).
    /// Returns the page and the cursor for the next one (nil at the end).
    public mutating func listMediaNodes(after cursor: String?, limit: Int, table: RegistryTable, nowMs: UInt64) -> (page: [SignedRecord], next: String?) {
        refreshOrders(table)
        var lo = 0
        if let cursor {
            var hi = byID.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if byID[mid].0 <= cursor { lo = mid + 1 } else { hi = mid }
            }
        }
        var page: [SignedRecord] = []
        var i = lo
        while i < byID.count, page.count < limit {
            if byID[i].1.isLive(nowMs: nowMs) { page.append(byID[i].1) }
            i += 1
        }
        let more = byID[i...].contains { $0.1.isLive(nowMs: nowMs) }
        return (page, more ? page.last?.nodeID.description : nil)
    }
}
