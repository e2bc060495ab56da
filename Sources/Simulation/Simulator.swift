import Gossipsub
import Identity
import Registry
import RegistryGossip

/// A record update being followed: who published it, when, and when each peer held it.
struct TrackedUpdate {
    static let notExpected = UInt32.max
    static let pending = UInt32.max - 1

    let origin: Int32
    let publishedAt: SimTime
    /// Per peer index (peers that existed at publication): µs until the update was live there,
    /// `pending`, or `notExpected` (the origin, attackers, peers down at publication).
    var liveAfter: [UInt32]
    /// Copies of the gossip message each peer received.
    var copies: [UInt8]
}

/// The discrete-event simulator: thousands of drtc peers, each running the production
/// `GossipRouter`, `RegistryReplica` and `RegistrySyncSession`, over simulated links and a
/// virtual clock (Specs/simulation.md). Pure: no sockets, clocks or tasks; a run depends on
/// its configuration only.
public final class Simulator {
    public let config: SimConfig
    /// Wall-clock epoch the virtual clock starts at (ms): records carry realistic timestamps.
    public static let epochMs: UInt64 = 1_700_000_000_000

    var peers: [SimPeer] = []
    var indexOf: [PeerID: Int32] = [:]
    var queue = EventQueue()
    var now: SimTime = 0
    var rng: SplitMix64
    let memo = VerificationMemo()
    let snapshots = SnapshotMemo()
    var nextConnectionID: UInt32 = 1
    var updates: [TrackedUpdate] = []
    var updateHLC: [HLC] = []
    var updateByMessage: [MessageID: Int32] = [:]
    var updateByRecord: [SyncID: Int32] = [:]
    /// Tracked updates by node, oldest first: a newer version being live makes an older one live.
    var updatesByNode: [PeerID: [Int32]] = [:]
    var bootstrap: [Int32] = []
    var partitioned = false
    /// Measurement window start (after the warm-up).
    var measureFrom: SimTime = 0
    var endAt: SimTime = 0
    var eventsProcessed: UInt64 = 0
    var busyReplies = 0
    var samples: [AgreementSample] = []
    var scenarioActions: [(SimTime, ScenarioAction)] = []
    var scenarioLog = ScenarioLog()
    /// join-storm: time after the last join when every peer held every record.
    var fullTableAt: SimTime?
    /// Progress hook (virtual ms, events processed); the CLI turns it into stderr lines.
    public var progress: ((_ virtualMs: UInt64, _ endMs: UInt64, _ events: UInt64) -> Void)?

    public init(config: SimConfig) {
        self.config = config
        self.rng = SplitMix64(seed: config.seed ^ 0x5D1A_7E57_0000_0001)
    }

    var nowMs: UInt64 { Self.epochMs + now / 1000 }

    // MARK: - peers

    func makeKey(_ index: Int) -> Ed25519KeyPair {
        // Keys derive from the seed, so identical arguments give identical PeerIDs.
        var g = SplitMix64(seed: config.seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(index))
        var seed: [UInt8] = []
        for _ in 0..<4 { withUnsafeBytes(of: g.next()) { seed += $0 } }
        return try! Ed25519KeyPair(seed: seed)
    }

    @discardableResult
    func addPeer(role: PeerRole, replica: RegistryReplica = RegistryReplica(), fingerprint: TableFingerprint = TableFingerprint()) -> SimPeer {
        let index = Int32(peers.count)
        let key = makeKey(Int(index))
        let memo = self.memo
        let router = GossipRouter(
            localPeer: key.peerID, signer: key, parameters: parametersFor(role), score: RegistryGossip.scoreParameters(),
            seed: rng.next(), seqnoStart: nowMs &* 1_000_000, checkSignature: { memo.checkSignature($0) })
        let peer = SimPeer(index: index, key: key, region: Int(index) % Region.allCases.count, role: role,
                           router: router, replica: replica, joinedAt: now)
        peer.fingerprint = fingerprint
        peer.lastExploreMs = nowMs
        peer.knownEarlier = 0
        peers.append(peer)
        indexOf[peer.id] = index
        _ = peer.router.subscribe(RegistryGossip.topic, now: nowMs)
        return peer
    }

    func parametersFor(_ role: PeerRole) -> GossipParameters {
        var p = config.gossip
        p.heartbeatIntervalMs = config.heartbeatMs
        return p
    }

    /// Starts a peer's timers (heartbeat, connection maintenance, anti-entropy) at random phases.
    func startTimers(_ peer: SimPeer, publishNow: Bool) {
        let i = peer.index
        queue.push(now + rng.next() % (config.heartbeatMs * 1000), .heartbeat(i))
        queue.push(now, .maintain(i))
        queue.push(now + config.syncIntervalSeconds * 1_000_000 / 2 + rng.next() % (config.syncIntervalSeconds * 1_000_000), .antiEntropy(i))
        if publishNow { queue.push(now, .refresh(i)) }
    }

    /// The record a node publishes (like `DrtcNode.ownRecord`).
    func makeRecord(_ peer: SimPeer, hlc: HLC, status: NodeStatus, schedule: (interval: UInt32, ttl: UInt32)) -> SignedRecord {
        let i = Int(peer.index)
        let ip = "10.\(i >> 16 & 255).\(i >> 8 & 255).\(i & 255)"
        let base = "http://\(ip):8080"
        let lat = Double(Int(peer.index) * 37 % 150) - 60
        let lon = Double(Int(peer.index) * 91 % 360) - 180
        let record = MediaNodeRecord(
            publicKey: peer.key.publicKey, region: Region.allCases[peer.region].rawValue,
            geo: GeoPoint(latitude: lat, longitude: lon), url: base, discoveryURL: base, ip: ip,
            metricsURL: base + "/metrics", version: "sim", multiaddrs: ["/ip4/\(ip)/tcp/4001/p2p/\(peer.id)"],
            capacity: Capacity(bandwidthUpKbps: 1_000_000, maxSessions: 500),
            load: Load(activeSessions: UInt32(truncatingIfNeeded: rng.next() % 500)), status: status, hlc: hlc,
            refreshIntervalSeconds: schedule.interval, ttlSeconds: schedule.ttl)
        let signed = try! record.signed(with: peer.key)
        memo.remember(signed)
        return signed
    }

    // MARK: - running

    /// Runs the scenario to its end and returns the report.
    public func run() -> SimReport {
        setUpScenario()
        endAt = measureFrom + UInt64(config.durationSeconds * 1_000_000)
        queue.push(measureFrom, .sample)
        for (i, action) in scenarioActions.enumerated() { queue.push(action.0, .scenario(i)) }
        var lastProgress: UInt64 = 0
        while let t = queue.nextTime, t <= endAt {
            let (time, event) = queue.pop()!
            now = time
            handle(event)
            eventsProcessed += 1
            if eventsProcessed - lastProgress >= 1 << 16 {
                lastProgress = eventsProcessed
                progress?(now / 1000, endAt / 1000, eventsProcessed)
            }
        }
        now = endAt
        return makeReport()
    }

    func handle(_ event: SimEvent) {
        switch event {
        case .frame(let to, let from, let conn, let sync, let bytes, let tracked):
            receiveFrame(to: to, from: from, conn: conn, sync: sync, bytes: bytes, tracked: tracked)
        case .heartbeat(let i):
            let p = peers[Int(i)]
            guard p.alive else { return }
            execute(p, p.router.heartbeat(now: nowMs), accepted: [:])
            if p.role == .flooder && now >= measureFrom { floodAttack(p) }
            if p.role == .honest && !p.leaving && p.announce.shouldAnnounce(meshPeers: Self.read(&p.router) { $0.mesh[RegistryGossip.topic]?.count ?? 0 }) {
                publishOwn(p, status: .active)
            }
            queue.push(now + config.heartbeatMs * 1000, .heartbeat(i))
        case .forwards(let i):
            let p = peers[Int(i)]
            p.forwardTimer = nil
            guard p.alive else { return }
            execute(p, p.router.flushForwards(now: nowMs), accepted: [:])
        case .refresh(let i):
            let p = peers[Int(i)]
            guard p.alive, !p.leaving, p.role == .honest, now >= p.nextRefreshAt else { return }
            publishOwn(p, status: .active)
        case .maintain(let i):
            let p = peers[Int(i)]
            guard p.alive, !p.leaving else { return }
            maintainConnections(p)
            queue.push(now + 1_000_000, .maintain(i))
        case .antiEntropy(let i):
            let p = peers[Int(i)]
            guard p.alive, !p.leaving else { return }
            if p.role == .honest, p.syncPolicy.request() { syncWithRandomPeer(p) }
            queue.push(now + config.syncIntervalSeconds * 1_000_000, .antiEntropy(i))
        case .dialDone(let from, let to):
            dialDone(from: from, to: to)
        case .closed(let i, let remote, let conn):
            let p = peers[Int(i)]
            guard p.alive, p.connections[remote]?.id == conn else { return }
            dropConnection(p, remote: remote)
        case .uplink(let i):
            let p = peers[Int(i)]
            p.uplinkArmed = false
            guard p.alive else { return }
            drainUplink(p)
        case .scenario(let i):
            perform(scenarioActions[i].1)
        case .sample:
            sampleAgreement()
            if now + config.sampleIntervalMs * 1000 <= endAt { queue.push(now + config.sampleIntervalMs * 1000, .sample) }
        }
    }

    // MARK: - publishing and merging

    func publishOwn(_ p: SimPeer, status: NodeStatus) {
        let live = p.replica.table.liveCount(nowMs: nowMs)
        let schedule = LivenessRule.schedule(baseInterval: config.refreshIntervalSeconds, baseTTL: config.ttlSeconds, liveRecords: live)
        p.refreshIntervalMs = UInt64(schedule.interval) * 1000
        if status == .active {
            p.nextRefreshAt = now + p.refreshIntervalMs * 1000
            queue.push(p.nextRefreshAt, .refresh(p.index))
        }
        let hlc = p.replica.nextTimestamp(nowMs: nowMs)
        let record = makeRecord(p, hlc: hlc, status: status, schedule: schedule)
        p.ownRecord = record
        merge(record, into: p)
        guard let (id, actions) = try? p.router.publish(record.encoded, topic: RegistryGossip.topic, now: nowMs) else { return }
        if now >= measureFrom {
            track(record: record, message: id, origin: p.index)
        }
        execute(p, actions, accepted: [:])
    }

    func track(record: SignedRecord, message: MessageID, origin: Int32) {
        let u = Int32(updates.count)
        var live = [UInt32](repeating: TrackedUpdate.pending, count: peers.count)
        for p in peers where !p.alive || p.leaving || p.role != .honest || p.index == origin {
            live[Int(p.index)] = TrackedUpdate.notExpected
        }
        updates.append(TrackedUpdate(origin: origin, publishedAt: now, liveAfter: live, copies: [UInt8](repeating: 0, count: peers.count)))
        updateByMessage[message] = u
        updateByRecord[record.syncID] = u
        updatesByNode[record.nodeID, default: []].append(u)
        updateHLC.append(record.hlc)
    }

    /// Merges a verified record into a peer's replica and keeps the measurements.
    func merge(_ record: SignedRecord, into p: SimPeer) {
        let previous = p.replica.table[record.nodeID]
        guard p.replica.merge(record, nowMs: nowMs) == .accepted else { return }
        if let previous { p.fingerprint.remove(previous.syncID) } else { noteNewNode(record.nodeID, at: p) }
        p.fingerprint.add(record.syncID)
        if record.hlc.wallMs + Self.settleMs > nowMs {
            p.recent.append(RecentMerge(wallMs: record.hlc.wallMs, added: record.syncID, removed: previous?.syncID))
        }
        if let tracked = updatesByNode[record.nodeID] {
            let i = Int(p.index)
            for u in tracked.reversed() {
                guard updateHLC[Int(u)] <= record.hlc else { continue }
                guard i < updates[Int(u)].liveAfter.count, updates[Int(u)].liveAfter[i] == TrackedUpdate.pending else { break }
                updates[Int(u)].liveAfter[i] = UInt32(min(now - updates[Int(u)].publishedAt, UInt64(UInt32.max - 2)))
            }
        }
    }

    func noteNewNode(_ node: PeerID, at p: SimPeer) {
        guard p.caughtUpAt == nil, let owner = indexOf[node], owner < p.index else { return }
        p.knownEarlier += 1
        if p.knownEarlier >= Int(p.index) { p.caughtUpAt = now }
    }

    /// Reads a peer's router or replica in place. A plain `p.router.x` on a class property
    /// copies the whole struct first (retaining every table in it), once per frame.
    @inline(__always)
    static func read<T, R>(_ value: inout T, _ body: (inout T) -> R) -> R { body(&value) }

    // MARK: - router actions

    func execute(_ p: SimPeer, _ actions: [GossipAction], accepted: [MessageID: SignedRecord]) {
        for action in actions {
            switch action {
            case .send(let peer, let rpc):
                guard let q = indexOf[peer] else { continue }
                send(p, .gossip(to: q, rpc))
            case .deliver(_, let id, _):
                if let record = accepted[id] { merge(record, into: p) }
            case .discovered(let found):
                p.exchanged += found
                if p.exchanged.count > 256 { p.exchanged.removeFirst(p.exchanged.count - 256) }
            }
        }
        if let due = Self.read(&p.router, { $0.nextForwardDue }) {
            let at = max(now, (due - Self.epochMs) * 1000)
            if p.forwardTimer.map({ $0 > at }) ?? true {
                p.forwardTimer = at
                queue.push(at, .forwards(p.index))
            }
        }
    }

    // MARK: - links

    /// A frame that would wait less than this for its peer's uplink is written at once (its
    /// late IDONTWANT check runs then); longer waits queue, and the check runs when the frame
    /// reaches the wire, as in production. Writing at once saves an event per frame of a burst.
    static let uplinkSlackUs: SimTime = 1_000

    func send(_ p: SimPeer, _ frame: OutgoingFrame) {
        if p.outgoingHead == p.outgoing.count && p.uplinkFreeAt <= now + Self.uplinkSlackUs {
            transmit(p, frame)
        } else {
            p.outgoing.append(frame)
            armUplink(p)
        }
    }

    func armUplink(_ p: SimPeer) {
        guard !p.uplinkArmed else { return }
        p.uplinkArmed = true
        queue.push(max(now, p.uplinkFreeAt &- min(p.uplinkFreeAt, Self.uplinkSlackUs)), .uplink(p.index))
    }

    func drainUplink(_ p: SimPeer) {
        while p.outgoingHead < p.outgoing.count && p.uplinkFreeAt <= now + Self.uplinkSlackUs {
            let frame = p.outgoing[p.outgoingHead]
            p.outgoingHead += 1
            transmit(p, frame)
        }
        if p.outgoingHead == p.outgoing.count {
            p.outgoing.removeAll(keepingCapacity: true)
            p.outgoingHead = 0
        } else {
            armUplink(p)
        }
    }

    /// Writes one frame on the connection `p` → `q`: serialisation on the uplink, then the
    /// link's latency, jitter and retransmissions, in order behind earlier frames.
    func transmit(_ p: SimPeer, _ frame: OutgoingFrame) {
        let to: Int32, bytes: [UInt8], kind: UInt8
        var tracked: [Int32] = []
        switch frame {
        case .gossip(let q, var rpc):
            guard p.connections[q] != nil else { return }
            // Late deduplication at write time, as the production writer does.
            guard p.router.filterOutgoing(&rpc, to: peers[Int(q)].id, now: nowMs) else { return }
            to = q
            bytes = rpc.encoded
            kind = 0
            for message in rpc.publish {
                if let u = updateByMessage[StrictSign.messageID(message)] { tracked.append(u) }
            }
        case .sync(let q, let toResponder, let frameBytes):
            to = q
            bytes = frameBytes
            kind = toResponder ? 1 : 2
        }
        guard var conn = p.connections[to] else { return }
        let size = bytes.count + (kind == 0 ? varintSize(bytes.count) : 0) + config.link.framingOverheadBytes
        p.bytesOut += size
        let start = max(now, p.uplinkFreeAt)
        let serialisation = config.link.uplinkBytesPerSecond > 0 ? UInt64(Double(size) / config.link.uplinkBytesPerSecond * 1e6) : 0
        p.uplinkFreeAt = start + serialisation
        var arrival = p.uplinkFreeAt + linkDelay(p, peers[Int(to)])
        arrival = max(arrival, conn.lastArrival)
        conn.lastArrival = arrival
        p.connections[to] = conn
        queue.push(arrival, .frame(to: to, from: p.index, conn: conn.id, sync: kind != 0, bytes: kind == 2 ? [2] + bytes : kind == 1 ? [1] + bytes : bytes, tracked: tracked))
    }

    func varintSize(_ n: Int) -> Int {
        var n = n, size = 1
        while n >= 0x80 { n >>= 7; size += 1 }
        return size
    }

    func oneWayLatencyMs(_ a: SimPeer, _ b: SimPeer) -> Double {
        if let matrix = config.link.regionLatencyMs, !matrix.isEmpty {
            let ra = a.region % matrix.count, rb = b.region % matrix.count
            return matrix[ra][rb % matrix[ra].count]
        }
        return config.link.latencyMs
    }

    /// One-way delay of a frame in µs: latency ± uniform jitter, plus an RTO (≥ 200 ms, Linux
    /// TCP_RTO_MIN; doubling) for each lost transmission.
    func linkDelay(_ a: SimPeer, _ b: SimPeer) -> SimTime {
        let base = oneWayLatencyMs(a, b)
        let jitter = config.link.jitterMs
        var ms = base
        if jitter > 0 { ms += (unitRandom() * 2 - 1) * jitter }
        if config.link.loss > 0 {
            var rto = max(200, 4 * base)
            while unitRandom() < config.link.loss {
                ms += rto
                rto *= 2
            }
        }
        return UInt64(max(0.05, ms) * 1000)
    }

    func unitRandom() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    // MARK: - receiving

    func receiveFrame(to: Int32, from: Int32, conn: UInt32, sync: Bool, bytes: [UInt8], tracked: [Int32]) {
        let q = peers[Int(to)]
        guard q.alive, let c = q.connections[from], c.id == conn else { return }
        let p = peers[Int(from)]
        if partitioned && p.side != q.side { return }  // blackholed until the connection times out
        q.bytesIn += bytes.count + config.link.framingOverheadBytes
        if sync {
            receiveSync(q, from: from, toResponder: bytes[0] == 1, body: Array(bytes[1...]))
            return
        }
        for u in tracked where Int(to) < updates[Int(u)].copies.count {
            let c = updates[Int(u)].copies[Int(to)]
            if c < 255 { updates[Int(u)].copies[Int(to)] = c + 1 }
        }
        let now = nowMs
        var accepted: [MessageID: SignedRecord] = [:]
        let memo = self.memo
        let validating = q.role == .eclipser
        let actions = q.router.handle(frame: bytes, from: p.id, now: now) { message, _ in
            if validating { return .ignore("eclipser") }
            let (result, record) = RegistryGossip.validate(
                message, nowMs: now, verify: { bytes, t throws(RecordRejection) in try memo.verifyRecord(bytes, nowMs: t) },
                outcome: { record in Self.read(&q.replica) { $0.outcome(of: record, nowMs: now) } })
            if let record { accepted[StrictSign.messageID(message)] = record }
            return result
        }
        execute(q, actions, accepted: accepted)
    }

    // MARK: - registry sync

    /// Starts the initiator session `SyncPolicy` granted with a random connected peer.
    func syncWithRandomPeer(_ p: SimPeer) {
        let connected = p.sortedConnections
        guard !connected.isEmpty else {
            p.syncPolicy.initiatorEnded(completed: false)
            return
        }
        startSync(p, with: connected[Int(rng.next() % UInt64(connected.count))])
    }

    /// Starts the initiator session `SyncPolicy` granted (`request`/`retryDue`) with `q`.
    func startSync(_ p: SimPeer, with q: Int32) {
        let key = SyncKey(remote: q, initiator: true)
        guard p.syncs[key] == nil, p.connections[q] != nil else {
            p.syncPolicy.initiatorEnded(completed: false)
            return
        }
        var session = RegistrySyncSession(role: .initiator, snapshot: snapshots.snapshot(p.fingerprint, table: p.replica.table))
        let step = session.start()
        p.syncs[key] = session
        for frame in step.frames { send(p, .sync(to: q, toResponder: true, frame)) }
    }

    func receiveSync(_ q: SimPeer, from p: Int32, toResponder: Bool, body framed: [UInt8]) {
        let key = SyncKey(remote: p, initiator: !toResponder)
        var session: RegistrySyncSession
        if let s = q.syncs[key] {
            session = s
        } else {
            guard toResponder else { return }  // an answer to a session we dropped
            guard q.syncPolicy.acceptInbound() else {
                // At the limit: a sample of live records instead of a reconciliation.
                busyReplies += 1
                for frame in RegistrySyncSession.busyReply(sample: liveSample(q, count: SyncPolicy.busySample)) {
                    send(q, .sync(to: p, toResponder: false, frame))
                }
                return
            }
            session = RegistrySyncSession(role: .responder, snapshot: snapshots.snapshot(q.fingerprint, table: q.replica.table))
        }
        // Strip the uvarint length prefix the session put on the frame.
        var i = 0
        while i < framed.count && framed[i] & 0x80 != 0 { i += 1 }
        let body = Array(framed[(i + 1)...])
        let step: RegistrySyncSession.Step
        do { step = try session.receive(frame: body) } catch {
            q.syncs[key] = nil
            endSync(q, key, completed: false)
            return
        }
        for bytes in step.records {
            if let record = try? memo.verifyRecord(bytes, nowMs: nowMs) { merge(record, into: q) }
        }
        for frame in step.frames { send(q, .sync(to: p, toResponder: !toResponder, frame)) }
        q.syncs[key] = step.done ? nil : session
        if step.done { endSync(q, key, completed: true) }
    }

    func endSync(_ p: SimPeer, _ key: SyncKey, completed: Bool) {
        if key.initiator { p.syncPolicy.initiatorEnded(completed: completed) } else { p.syncPolicy.inboundEnded() }
    }

    // MARK: - connections

    func reachable(_ a: SimPeer, _ b: SimPeer) -> Bool { !(partitioned && a.side != b.side) }

    func maintainConnections(_ p: SimPeer) {
        if p.role == .honest && p.syncPolicy.retryDue() { syncWithRandomPeer(p) }
        guard p.dialing.isEmpty else { return }
        if p.role == .eclipser {
            eclipseDial(p)
            return
        }
        let count = p.connections.count
        if count < config.minPeers {
            dialMore(p, missing: config.minPeers - count, preferLive: true)
        } else if count > config.maxPeers {
            trim(p)
        } else if count < config.maxPeers && nowMs - p.lastExploreMs >= config.syncIntervalSeconds * 1000 {
            p.lastExploreMs = nowMs
            dialMore(p, missing: 1, preferLive: false)
        }
    }

    static let candidateSample = 64

    /// Visits the records that `p`'s table holds for random peers (each peer drawn at most
    /// once), for up to `attempts` draws while `wanted()` holds: a uniform sample of the table
    /// without scanning it.
    func probeTable(_ p: SimPeer, attempts: Int, while wanted: () -> Bool, _ visit: (SignedRecord) -> Void) {
        var probed = Set<Int32>()
        for _ in 0..<attempts where wanted() {
            let i = Int32(truncatingIfNeeded: rng.next() % UInt64(peers.count))
            guard probed.insert(i).inserted, let record = Self.read(&p.replica, { $0.table[peers[Int(i)].id] }) else { continue }
            visit(record)
        }
    }

    /// Up to `count` distinct live records of `p`'s table, drawn uniformly by probing random
    /// peers (a whole-table scan when that comes back short).
    func liveSample(_ p: SimPeer, count: Int) -> [SignedRecord] {
        let nowMs = self.nowMs
        var out: [SignedRecord] = []
        probeTable(p, attempts: 8 * count, while: { out.count < count }) { record in
            if record.isLive(nowMs: nowMs) { out.append(record) }
        }
        if out.count < count {
            var all = p.replica.table.records.filter { $0.isLive(nowMs: nowMs) }.sorted { $0.nodeID < $1.nodeID }
            all.shuffle(using: &rng)
            out = Array(all.prefix(count))
        }
        return out
    }

    /// Like `MeshService.dialMore`: PX peers, then table entries spread over regions (live
    /// ones preferred), then the bootstrap peers.
    ///
    /// The table candidates are a uniform sample of at most `candidateSample` entries, drawn by
    /// probing random peers' records (a whole-table scan when the table is small or the probes
    /// come back short): scanning 10,000 records for every exploration dial of every peer
    /// cost more than the gossip itself (Specs/simulation.md "Connection maintenance").
    func dialMore(_ p: SimPeer, missing: Int, preferLive: Bool) {
        let nowMs = self.nowMs
        var live: [(index: Int32, region: String)] = []
        var expired: [(index: Int32, region: String)] = []
        func consider(_ record: SignedRecord) {
            guard record.record.status == .active, let i = indexOf[record.nodeID], i != p.index, p.connections[i] == nil,
                  p.planner.mayDial(record.nodeID, now: nowMs) else { return }
            if record.isLive(nowMs: nowMs) { live.append((i, record.record.region)) } else { expired.append((i, record.record.region)) }
        }
        let table = Self.read(&p.replica) { $0.table.count }
        if table > 4 * Self.candidateSample {
            probeTable(p, attempts: 4 * Self.candidateSample, while: { live.count + expired.count < Self.candidateSample }, consider)
        }
        if live.count + expired.count < missing {
            live = []
            expired = []
            for record in p.replica.table.records { consider(record) }
        }
        // Dictionary order is per process: sort so that the run depends on the seed only.
        live.sort { $0.index < $1.index }
        var candidates = live
        if candidates.count < missing || !preferLive {
            expired.sort { $0.index < $1.index }
            candidates += expired
        }
        let exchanged = p.exchanged
        p.exchanged = []
        let boot = bootstrap.filter { $0 != p.index && p.connections[$0] == nil && p.planner.mayDial(peers[Int($0)].id, now: nowMs) }
            .filter { b in !candidates.contains { $0.index == b } }
        let targets = DialPlanner.targets(
            missing: missing, exchanged: exchanged, candidates: candidates.map { (peers[Int($0.index)].id, $0.region) },
            bootstrap: boot.map { peers[Int($0)].id }, using: &rng)
        for target in targets {
            guard let q = indexOf[target] else { continue }
            dial(p, q)
        }
    }

    func dial(_ p: SimPeer, _ q: Int32) {
        guard p.dialing.insert(q).inserted else { return }
        let target = peers[Int(q)]
        let delay: SimTime
        if !reachable(p, target) {
            delay = config.dialTimeoutMs * 1000
        } else if !target.alive {
            delay = 2 * linkDelay(p, target)  // connection refused: one round trip
        } else {
            // TCP handshake (1 RTT) + multistream-select and Noise XX (~1 RTT more).
            delay = 4 * linkDelay(p, target)
        }
        queue.push(now + delay, .dialDone(from: p.index, to: q))
    }

    func dialDone(from: Int32, to: Int32) {
        let p = peers[Int(from)], q = peers[Int(to)]
        p.dialing.remove(to)
        guard p.alive else { return }
        if p.connections[to] != nil { return }
        guard q.alive, !q.leaving, reachable(p, q), q.connections.count < 256 else {
            p.planner.failed(q.id, now: nowMs)
            return
        }
        p.planner.succeeded(q.id)
        connect(p, q)
    }

    /// A connection is up: both sides open their gossip streams; the dialler reconciles.
    func connect(_ p: SimPeer, _ q: SimPeer) {
        let id = nextConnectionID
        nextConnectionID &+= 1
        p.connections[q.index] = SimConnection(id: id, outbound: true, openedAt: now)
        q.connections[p.index] = SimConnection(id: id, outbound: false, openedAt: now)
        execute(p, p.router.addPeer(q.id, protocol: .v12, outbound: true, now: nowMs), accepted: [:])
        execute(q, q.router.addPeer(p.id, protocol: .v12, outbound: false, now: nowMs), accepted: [:])
        if p.role == .honest && p.syncPolicy.request() { startSync(p, with: q.index) }
    }

    /// `p` closes its connection to `remote`; the remote notices one latency later.
    func disconnect(_ p: SimPeer, from remote: Int32, noticeAfter: SimTime? = nil) {
        guard let c = p.connections[remote] else { return }
        dropConnection(p, remote: remote)
        let r = peers[Int(remote)]
        queue.push(now + (noticeAfter ?? linkDelay(p, r)), .closed(peer: remote, remote: p.index, conn: c.id))
    }

    func dropConnection(_ p: SimPeer, remote: Int32) {
        p.connections[remote] = nil
        for key in [SyncKey(remote: remote, initiator: true), SyncKey(remote: remote, initiator: false)]
        where p.syncs.removeValue(forKey: key) != nil {
            endSync(p, key, completed: false)
        }
        p.router.removePeer(peers[Int(remote)].id, now: nowMs)
    }

    /// Like `MeshService.trim` (`DialPlanner.connectionsToClose`).
    func trim(_ p: SimPeer) {
        let mesh = p.router.mesh[RegistryGossip.topic] ?? []
        let connections = p.sortedConnections.map { i in
            (peer: peers[Int(i)].id, outbound: p.connections[i]!.outbound, ageMs: (now - p.connections[i]!.openedAt) / 1000)
        }
        for victim in DialPlanner.connectionsToClose(connections, mesh: mesh, maxPeers: config.maxPeers, using: &rng) {
            if let q = indexOf[victim] { disconnect(p, from: q) }
        }
    }
}
