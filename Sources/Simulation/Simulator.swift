import Gossipsub
import Identity
import QoS
import Registry
import RegistryGossip

/// A record update being followed: who published it, when, and when each peer held it.
///
/// The per-peer slots are plain memory: partitions running on separate threads write the
/// slots of their own peers.
final class TrackedUpdate: @unchecked Sendable {
    static let notExpected = UInt32.max
    static let pending = UInt32.max - 1

    let origin: Int32
    let publishedAt: SimTime
    /// Per peer index (peers that existed at publication): µs until the update was live there,
    /// `pending`, or `notExpected` (the origin, attackers, peers down at publication).
    let liveAfter: UnsafeMutableBufferPointer<UInt32>
    /// Copies of the gossip message each peer received.
    let copies: UnsafeMutableBufferPointer<UInt8>

    init(origin: Int32, publishedAt: SimTime, liveAfter: [UInt32]) {
        self.origin = origin
        self.publishedAt = publishedAt
        self.liveAfter = .allocate(capacity: liveAfter.count)
        _ = self.liveAfter.initialize(from: liveAfter)
        self.copies = .allocate(capacity: liveAfter.count)
        self.copies.initialize(repeating: 0)
    }

    deinit {
        liveAfter.deallocate()
        copies.deallocate()
    }
}

/// Runs `body(0)`, …, `body(count - 1)`, possibly on separate threads, and returns when all
/// have returned. The simulator itself starts no threads: the CLI passes one that does.
public typealias PartitionExecutor = @Sendable (_ count: Int, _ body: (Int) -> Void) -> Void

/// The discrete-event simulator: thousands of drtc peers, each running the production
/// `GossipRouter`, `RegistryReplica` and `RegistrySyncSession`, over simulated links and a
/// virtual clock (Specs/simulation.md). Pure: no sockets, clocks or tasks; a run depends on
/// its configuration only — not on the number of partitions, nor on the threads running them.
public final class Simulator {
    public let config: SimConfig
    /// Wall-clock epoch the virtual clock starts at (ms): records carry realistic timestamps.
    public static let epochMs: UInt64 = 1_700_000_000_000

    var peers: [SimPeer] = []
    var indexOf: [PeerID: Int32] = [:]
    let partitions: [Partition]
    /// Scenario actions and samples: they run between windows, with every partition stopped.
    var globalQueue = EventQueue()
    var globalSeq: UInt64 = 0
    /// The earliest event waiting in a partition's inbox (`endWindow`), .max when none.
    var inboxEarliest: SimTime = .max
    /// True while partitions run a window: peers' handlers may then touch their own peer only.
    var inWindow = false
    /// The smallest delay between an event at one peer and an event it causes at another (µs).
    let lookahead: SimTime
    /// Virtual time of the scenario code (setup, scenario actions, samples, the report).
    private var clock: SimTime = 0
    private var globalRng: SplitMix64
    let memo = VerificationMemo()
    let snapshots = SnapshotMemo()
    var updates: [TrackedUpdate] = []
    var updateHLC: [HLC] = []
    var updateByMessage: [MessageID: Int32] = [:]
    /// Tracked updates by node, oldest first: a newer version being live makes an older one live.
    var updatesByNode: [PeerID: [Int32]] = [:]
    var bootstrap: [Int32] = []
    var partitioned = false
    /// Measurement window start (after the warm-up).
    var measureFrom: SimTime = 0
    var endAt: SimTime = 0
    var samples: [AgreementSample] = []
    /// QoS (Specs/simulation.md "QoS"): every bundle published (what a converged replica
    /// holds), the aggregation the duties come from, verified bundles by item ID, the gossip
    /// message IDs of bundles (for the byte accounting), and per-epoch figures.
    var qosLedger = QoSLedger()
    var qosAggregate: QoSAggregate?
    let qosMemo = QoSMemo()
    var qosMessageIDs = Set<MessageID>()
    var qosEpochs: [QoSEpochFigures] = []
    var qosFirstEpoch: UInt64 = 0
    var scenarioActions: [(SimTime, ScenarioAction)] = []
    var scenarioLog = ScenarioLog()
    /// join-storm: time after the last join when every peer held every record.
    var fullTableAt: SimTime?
    /// Progress hook (virtual ms, events processed); the CLI turns it into stderr lines.
    public var progress: ((_ virtualMs: UInt64, _ endMs: UInt64, _ events: UInt64) -> Void)?

    /// - Parameter partitions: how many partitions the peers are split into (at most one thread
    ///   each; `partitionCount` gives the fastest). The report is the same for any count.
    public init(config: SimConfig, partitions: Int = 1) {
        self.config = config
        self.globalRng = SplitMix64(seed: config.seed ^ 0x5D1A_7E57_0000_0001)
        let count = max(1, partitions)
        self.partitions = (0..<count).map { Partition(number: $0, of: count) }
        self.lookahead = Self.minimumLinkDelay(config.link)
    }

    /// How many partitions to split `peers` into for `threads` threads: about
    /// `peersPerPartition` each, and at least one per thread. A thread runs a window
    /// one partition at a time, so a partition's few peers keep their routers in cache through
    /// its events, and its event queue stays small: 10,000 peers in 66 partitions instead of 2
    /// took a fifth less CPU for the same events (Specs/simulation.md "Parallel windows"). At
    /// most `maxPartitions`: every window hands over one outbox per pair of partitions.
    public static func partitionCount(peers: Int, threads: Int) -> Int {
        max(max(1, threads), min(maxPartitions, peers / peersPerPartition))
    }

    public static let peersPerPartition = 150
    public static let maxPartitions = 256

    /// Scenario code's clock and random numbers. Peers' handlers use their partition's clock and
    /// their own generator instead; these trap inside a window, where using them would make the
    /// run depend on how peers are partitioned.
    var now: SimTime {
        get { precondition(!inWindow, "scenario clock used inside a window"); return clock }
        set { clock = newValue }
    }

    var rng: SplitMix64 {
        get { precondition(!inWindow, "scenario RNG used inside a window"); return globalRng }
        set { globalRng = newValue }
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
                           router: router, replica: replica, joinedAt: now, partition: partitions[Int(index) % partitions.count],
                           seed: config.seed ^ 0xD1CE_5EED_0000_0000 &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        peer.fingerprint = fingerprint
        // A random phase, as nodes started at different times have: in step, every peer
        // explored at the same tick of each sync interval.
        peer.lastExploreMs = nowMs &- peer.rng.next() % (config.syncIntervalSeconds * 1000)
        peer.knownEarlier = 0
        peers.append(peer)
        indexOf[peer.id] = index
        _ = peer.router.subscribe(RegistryGossip.topic, now: nowMs)
        if qos != nil { _ = peer.router.subscribe(QoSGossip.topic, now: nowMs) }
        return peer
    }

    func parametersFor(_ role: PeerRole) -> GossipParameters {
        var p = config.gossip
        p.heartbeatIntervalMs = config.heartbeatMs
        return p
    }

    /// Starts a peer's timers (heartbeat, connection maintenance, anti-entropy) at random phases.
    func startTimers(_ p: SimPeer, publishNow: Bool) {
        let i = p.index, now = p.partition.now
        schedule(now + p.rng.next() % (config.heartbeatMs * 1000), .heartbeat(i), by: p)
        schedule(now, .maintain(i), by: p)
        schedule(now + config.syncIntervalSeconds * 1_000_000 / 2 + p.rng.next() % (config.syncIntervalSeconds * 1_000_000), .antiEntropy(i), by: p)
        if publishNow { schedule(now, .refresh(i), by: p) }
    }

    /// The position a simulated peer declares in its record.
    public static func position(of index: Int32) -> GeoPoint {
        GeoPoint(latitude: Double(Int(index) * 37 % 150) - 60, longitude: Double(Int(index) * 91 % 360) - 180)
    }

    /// The record a node publishes (like `DrtcNode.ownRecord`).
    func makeRecord(_ peer: SimPeer, hlc: HLC, status: NodeStatus, schedule: (interval: UInt32, ttl: UInt32)) -> SignedRecord {
        let i = Int(peer.index)
        let ip = "10.\(i >> 16 & 255).\(i >> 8 & 255).\(i & 255)"
        let base = "http://\(ip):8080"
        let record = MediaNodeRecord(
            publicKey: peer.key.publicKey, region: Region.allCases[peer.region].rawValue,
            geo: Self.position(of: peer.index), url: base, discoveryURL: base, ip: ip,
            metricsURL: base + "/metrics", version: "sim", multiaddrs: ["/ip4/\(ip)/tcp/4001/p2p/\(peer.id)"],
            capacity: Capacity(bandwidthUpKbps: 1_000_000, maxSessions: 500),
            load: Load(activeSessions: UInt32(truncatingIfNeeded: peer.rng.next() % 500)), status: status, hlc: hlc,
            refreshIntervalSeconds: schedule.interval, ttlSeconds: schedule.ttl)
        let signed = try! record.signed(with: peer.key)
        memo.remember(signed)
        return signed
    }

    // MARK: - scheduling

    /// Schedules `event` (which belongs to peer `event.peer`, or to the scenario). `creator` is
    /// the peer whose handler schedules it (nil: setup and scenario code). Events of one instant
    /// run in the order of their sequence numbers, which come from the creator's own counter:
    /// the order does not depend on how peers are partitioned.
    ///
    /// Inside a window, an event for another peer waits in the creator's partition's outbox
    /// until the window ends; it is due after the window anyway (`lookahead`).
    func schedule(_ time: SimTime, _ event: consuming SimEvent, by creator: SimPeer?) {
        let seq: UInt64
        if let creator {
            creator.eventCounter &+= 1
            seq = UInt64(UInt32(bitPattern: creator.index) + 1) << 40 | creator.eventCounter
        } else {
            globalSeq &+= 1
            seq = globalSeq
        }
        guard let target = event.peer else {
            precondition(!inWindow, "scenario event scheduled inside a window")
            globalQueue.push(time, seq: seq, consume event)
            return
        }
        if inWindow, let creator, target != creator.index {
            precondition(time >= creator.partition.now + lookahead, "an event crosses peers within the lookahead")
            let part = creator.partition
            part.outbox[Int(target) % partitions.count].append(Partition.Scheduled(target: target, time: time, seq: seq, event: consume event))
            part.outboxEarliest = min(part.outboxEarliest, time)
        } else {
            partitions[Int(target) % partitions.count].queue.push(time, seq: seq, consume event)
        }
    }

    /// The smallest one-way link delay `linkDelay` can return (µs).
    static func minimumLinkDelay(_ link: LinkModel) -> SimTime {
        let base = link.regionLatencyMs.flatMap { $0.flatMap { $0 }.min() } ?? link.latencyMs
        return UInt64(max(0.05, base - link.jitterMs) * 1000)
    }

    // MARK: - running

    /// Runs the scenario to its end and returns the report.
    ///
    /// Time advances in windows: from the earliest pending peer event `t`, every partition runs
    /// its events before `t + lookahead` (and before the next scenario event) — on separate
    /// threads if `executor` provides them — then the windows' cross-peer events and followed
    /// updates are merged in a fixed order.
    public func run(executor: PartitionExecutor = PartitionExecutors.sequential) -> SimReport {
        setUpScenario()
        endAt = measureFrom + UInt64(config.durationSeconds * 1_000_000)
        schedule(measureFrom, .sample, by: nil)
        for (i, action) in scenarioActions.enumerated() { schedule(action.0, .scenario(i), by: nil) }
        var lastProgress: UInt64 = 0
        while true {
            let nextPeer = (partitions.compactMap { $0.queue.nextTime } + [inboxEarliest]).min()
            let nextGlobal = globalQueue.nextTime
            guard let next = [nextPeer, nextGlobal].compactMap({ $0 }).min(), next <= endAt else { break }
            if let g = nextGlobal, g == next {
                // Scenario actions and samples run before peer events of the same instant.
                let (time, event) = globalQueue.pop()!
                setClock(time)
                handleGlobal(event)
                continue
            }
            let windowEnd = min(next + lookahead, nextGlobal ?? .max, endAt + 1)
            inWindow = true
            executor(partitions.count) { k in self.runWindow(self.partitions[k], until: windowEnd) }
            inWindow = false
            endWindow()
            let events = eventsProcessed
            if events - lastProgress >= 1 << 16 {
                lastProgress = events
                progress?(next / 1000, endAt / 1000, events)
            }
        }
        setClock(endAt)
        return makeReport()
    }

    var eventsProcessed: UInt64 { partitions.reduce(0) { $0 + $1.events } }
    var busyReplies: Int { partitions.reduce(0) { $0 + $1.busyReplies } }

    func setClock(_ time: SimTime) {
        clock = time
        for part in partitions { part.now = time }
    }

    func runWindow(_ part: Partition, until end: SimTime) {
        takeInbox(part)
        while let t = part.queue.nextTime, t < end {
            let (time, event) = part.queue.pop()!
            part.now = time
            handle(event)
            part.events += 1
        }
    }

    /// Between windows: follow the updates published in the window (in time order, whatever
    /// partition published them), then hand each cross-peer event to its peer's partition.
    func endWindow() {
        snapshots.endWindow()
        if qos != nil { collectPublishedQoS() }
        var pending: [(track: PendingTrack, partition: Int, slot: Int)] = []
        for part in partitions {
            for (slot, t) in part.pendingTracks.enumerated() { pending.append((t, part.number, slot)) }
        }
        var provisional: [[Int32]] = partitions.map { _ in [] }
        if !pending.isEmpty {
            for part in partitions { provisional[part.number] = [Int32](repeating: -1, count: part.pendingTracks.count) }
            pending.sort { $0.track.at != $1.track.at ? $0.track.at < $1.track.at : $0.track.origin < $1.track.origin }
            for p in pending {
                provisional[p.partition][p.slot] = follow(p.track)
            }
        }
        // Each partition's outbox for another becomes that one's inbox (its storage, emptied
        // when taken in, goes back as the outbox): the receiving thread pushes the events into
        // its queue when its next window starts, so no thread waits for this.
        inboxEarliest = .max
        for part in partitions {
            part.pendingTracks.removeAll(keepingCapacity: true)
            part.trackedSlots = provisional[part.number]
            inboxEarliest = min(inboxEarliest, part.outboxEarliest)
            part.outboxEarliest = .max
            for target in partitions {
                precondition(target.inbox[part.number].isEmpty, "an inbox not taken in")
                swap(&target.inbox[part.number], &part.outbox[target.number])
            }
        }
    }

    /// Pushes the events other partitions sent `part` in the last window into its queue, naming
    /// the updates they carry by their followed index. Runs on `part`'s thread.
    func takeInbox(_ part: Partition) {
        for sender in partitions where !part.inbox[sender.number].isEmpty {
            let slots = sender.trackedSlots
            // Moved out from the end (iterating copied every event, retaining its payload): the
            // queue orders events by (time, sequence), whatever order they are pushed in.
            var inbox: [Partition.Scheduled] = []
            swap(&inbox, &part.inbox[sender.number])
            while var item = inbox.popLast() {
                // Swapped out, so that the queue takes the event without a copy (retaining its
                // frame's buffers) while `item` still holds it.
                var event = SimEvent.sample
                swap(&event, &item.event)
                if !slots.isEmpty, case .frame(let to, let from, let conn, let size, let payload, let tracked) = event, tracked.contains(where: { $0 < 0 }) {
                    event = .frame(to: to, from: from, conn: conn, size: size, payload: payload,
                                   tracked: tracked.map { $0 < 0 ? slots[Int(-$0 - 1)] : $0 })
                }
                part.queue.push(item.time, seq: item.seq, event)
            }
            swap(&inbox, &part.inbox[sender.number])
        }
    }

    func handleGlobal(_ event: SimEvent) {
        switch event {
        case .scenario(let i):
            perform(scenarioActions[i].1)
        case .sample:
            sampleAgreement()
            if now + config.sampleIntervalMs * 1000 <= endAt { schedule(now + config.sampleIntervalMs * 1000, .sample, by: nil) }
        default:
            preconditionFailure("a peer event in the scenario queue")
        }
    }

    /// Handles one peer's event: it reads and writes that peer's state only (and shared state
    /// that changes between windows only: liveness, partition sides, the peer list).
    func handle(_ event: consuming SimEvent) {
        // Consumed: binding a frame's buffers out of a borrowed event copied them.
        switch consume event {
        case .frame(let to, let from, let conn, let size, let payload, let tracked):
            receiveFrame(to: to, from: from, conn: conn, size: size, payload: payload, tracked: tracked)
        case .heartbeat(let i):
            let p = peers[Int(i)]
            guard p.alive else { return }
            execute(p, p.router.heartbeat(now: p.partition.nowMs), accepted: [:])
            if p.role == .flooder && p.partition.now >= measureFrom { floodAttack(p) }
            if p.role == .honest && !p.leaving && p.announce.shouldAnnounce(meshPeers: Self.read(&p.router) { $0.mesh[RegistryGossip.topic]?.count ?? 0 }) {
                publishOwn(p, status: .active)
            }
            schedule(p.partition.now + config.heartbeatMs * 1000, .heartbeat(i), by: p)
        case .forwards(let i):
            let p = peers[Int(i)]
            p.forwardTimer = nil
            guard p.alive else { return }
            execute(p, p.router.flushForwards(now: p.partition.nowMs), accepted: [:])
        case .refresh(let i):
            let p = peers[Int(i)]
            guard p.alive, !p.leaving, p.role == .honest, p.partition.now >= p.nextRefreshAt else { return }
            publishOwn(p, status: .active)
        case .maintain(let i):
            let p = peers[Int(i)]
            guard p.alive, !p.leaving else { return }
            maintainConnections(p)
            schedule(p.partition.now + 1_000_000, .maintain(i), by: p)
        case .antiEntropy(let i):
            let p = peers[Int(i)]
            guard p.alive, !p.leaving else { return }
            if p.role == .honest, p.syncPolicy.request() { syncWithRandomPeer(p) }
            schedule(p.partition.now + config.syncIntervalSeconds * 1_000_000, .antiEntropy(i), by: p)
        case .dialArrive(let to, let from, let conn):
            dialArrive(peers[Int(to)], from: from, conn: conn)
        case .dialDone(let from, let to, let conn, let result):
            dialDone(peers[Int(from)], to: to, conn: conn, result: result)
        case .handshakeDone(let to, let from, let conn):
            handshakeDone(peers[Int(to)], from: from, conn: conn)
        case .closed(let i, let remote, let conn):
            let p = peers[Int(i)]
            guard p.alive, p.connections[remote]?.id == conn else { return }
            dropConnection(p, remote: remote)
        case .uplink(let i):
            let p = peers[Int(i)]
            p.uplinkArmed = false
            guard p.alive else { return }
            drainUplink(p)
        case .qosPublish(let i, let epoch):
            let p = peers[Int(i)]
            guard p.alive, !p.leaving else { return }
            publishQoS(p, epoch: epoch)
        case .scenario, .sample:
            preconditionFailure("a scenario event in a partition queue")
        }
    }

    // MARK: - publishing and merging

    func publishOwn(_ p: SimPeer, status: NodeStatus) {
        let now = p.partition.now, nowMs = p.partition.nowMs
        let live = p.replica.table.liveCount(nowMs: nowMs)
        let schedule = LivenessRule.schedule(baseInterval: config.refreshIntervalSeconds, baseTTL: config.ttlSeconds, liveRecords: live)
        p.refreshIntervalMs = UInt64(schedule.interval) * 1000
        if status == .active {
            p.nextRefreshAt = now + p.refreshIntervalMs * 1000
            self.schedule(p.nextRefreshAt, .refresh(p.index), by: p)
        }
        let hlc = p.replica.nextTimestamp(nowMs: nowMs)
        let record = makeRecord(p, hlc: hlc, status: status, schedule: schedule)
        merge(record, into: p)
        guard let (id, actions) = try? p.router.publish(record.encoded, topic: RegistryGossip.topic, now: nowMs) else { return }
        if now >= measureFrom {
            track(PendingTrack(record: record, message: id, origin: p.index, at: now), partition: p.partition)
        }
        execute(p, actions, accepted: [:])
    }

    /// Follows an update from its publication. Inside a window it is only noted (no other peer
    /// can receive it before the window ends) and followed in `endWindow`; frames sent in the
    /// meantime name it by a provisional negative index.
    func track(_ t: PendingTrack, partition: Partition) {
        if inWindow {
            partition.pendingTracks.append(t)
        } else {
            _ = follow(t)
        }
    }

    @discardableResult
    func follow(_ t: PendingTrack) -> Int32 {
        let u = Int32(updates.count)
        var live = [UInt32](repeating: TrackedUpdate.pending, count: peers.count)
        for p in peers where !p.alive || p.leaving || p.role != .honest || p.index == t.origin {
            live[Int(p.index)] = TrackedUpdate.notExpected
        }
        updates.append(TrackedUpdate(origin: t.origin, publishedAt: t.at, liveAfter: live))
        updateByMessage[t.message] = u
        updatesByNode[t.record.nodeID, default: []].append(u)
        updateHLC.append(t.record.hlc)
        return u
    }

    /// The followed update a published message carries, if any (a provisional index for one
    /// published in the current window).
    func trackedUpdate(_ message: GossipMessage, at p: SimPeer) -> Int32? {
        let id = StrictSign.messageID(message)
        if let u = updateByMessage[id] { return u }
        if let slot = p.partition.pendingTracks.firstIndex(where: { $0.message == id }) { return -Int32(slot) - 1 }
        return nil
    }

    /// Merges a verified record into a peer's replica and keeps the measurements. Returns
    /// whether the record won.
    @discardableResult
    func merge(_ record: SignedRecord, into p: SimPeer) -> Bool {
        let now = p.partition.now, nowMs = p.partition.nowMs
        let previous = p.replica.table[record.nodeID]
        guard p.replica.merge(record, nowMs: nowMs) == .accepted else { return false }
        if let previous { p.fingerprint.remove(previous.syncID) } else { noteNewNode(record.nodeID, at: p) }
        p.fingerprint.add(record.syncID)
        if record.hlc.wallMs + Self.settleMs > nowMs {
            p.recent.append(RecentMerge(wallMs: record.hlc.wallMs, added: record.syncID, removed: previous?.syncID))
        }
        if let tracked = updatesByNode[record.nodeID] {
            let i = Int(p.index)
            for u in tracked.reversed() {
                guard updateHLC[Int(u)] <= record.hlc else { continue }
                let update = updates[Int(u)]
                guard i < update.liveAfter.count, update.liveAfter[i] == TrackedUpdate.pending else { break }
                update.liveAfter[i] = UInt32(min(now - update.publishedAt, UInt64(UInt32.max - 2)))
            }
        }
        return true
    }

    func noteNewNode(_ node: PeerID, at p: SimPeer) {
        guard p.caughtUpAt == nil, let owner = indexOf[node], owner < p.index else { return }
        p.knownEarlier += 1
        if p.knownEarlier >= Int(p.index) { p.caughtUpAt = p.partition.now }
    }

    /// Reads a peer's router or replica in place. A plain `p.router.x` on a class property
    /// copies the whole struct first (retaining every table in it), once per frame.
    @inline(__always)
    static func read<T, R>(_ value: inout T, _ body: (inout T) -> R) -> R { body(&value) }

    // MARK: - router actions

    func execute(_ p: SimPeer, _ actions: consuming [GossipAction], accepted: [MessageID: Delivery]) {
        // Moved out in order, each swapped for an empty placeholder (iterating copied every
        // action, retaining its RPC; so did popping from a copy of the consumed array).
        var index = 0
        while index < actions.count {
            var action = GossipAction.discovered([])
            swap(&action, &actions[index])
            index += 1
            switch consume action {
            case .send(let peer, let rpc):
                guard let q = indexOf[peer] else { continue }
                send(p, .gossip(to: q, rpc))
            case .deliver(_, let id, _):
                switch accepted[id] {
                case .record(let record)?: merge(record, into: p)
                case .bundle(let bundle)?: holdQoS(bundle, at: p)
                case nil: break
                }
            case .discovered(let found):
                p.exchanged += found
                if p.exchanged.count > 256 { p.exchanged.removeFirst(p.exchanged.count - 256) }
            }
        }
        if let due = Self.read(&p.router, { $0.nextForwardDue }) {
            let at = max(p.partition.now, (due - Self.epochMs) * 1000)
            if p.forwardTimer.map({ $0 > at }) ?? true {
                p.forwardTimer = at
                schedule(at, .forwards(p.index), by: p)
            }
        }
    }

    // MARK: - links

    /// A frame that would wait less than this for its peer's uplink is written at once (its
    /// late IDONTWANT check runs then); longer waits queue, and the check runs when the frame
    /// reaches the wire, as in production. Writing at once saves an event per frame of a burst.
    static let uplinkSlackUs: SimTime = 1_000

    func send(_ p: SimPeer, _ frame: consuming OutgoingFrame) {
        if p.outgoingHead == p.outgoing.count && p.uplinkFreeAt <= p.partition.now + Self.uplinkSlackUs {
            transmit(p, frame)
        } else {
            p.outgoing.append(frame)
            armUplink(p)
        }
    }

    func armUplink(_ p: SimPeer) {
        guard !p.uplinkArmed else { return }
        p.uplinkArmed = true
        schedule(max(p.partition.now, p.uplinkFreeAt &- min(p.uplinkFreeAt, Self.uplinkSlackUs)), .uplink(p.index), by: p)
    }

    func drainUplink(_ p: SimPeer) {
        while p.outgoingHead < p.outgoing.count && p.uplinkFreeAt <= p.partition.now + Self.uplinkSlackUs {
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
    func transmit(_ p: SimPeer, _ frame: consuming OutgoingFrame) {
        let to: Int32
        switch frame {
        case .gossip(let q, _): to = q
        case .sync(let q, _, _): to = q
        }
        // One probe of the connection table (it was probed three times per frame).
        guard let slot = p.connections.index(forKey: to) else { return }
        let payload: FramePayload, size: Int
        var tracked: [Int32] = []
        switch consume frame {
        case .gossip(let q, var rpc):
            // Late deduplication at write time, as the production writer does.
            guard p.router.filterOutgoing(&rpc, to: peers[Int(q)].id, now: p.partition.nowMs) else { return }
            let encodedSize = rpc.encodedSize
            size = encodedSize + varintSize(encodedSize) + config.link.framingOverheadBytes
            for message in rpc.publish {
                if let u = trackedUpdate(message, at: p) { tracked.append(u) }
            }
            if qos != nil { p.qosBytesOut += qosShare(rpc) }
            payload = .gossip(rpc)
        case .sync(_, let toResponder, let frameBytes):
            size = frameBytes.count + config.link.framingOverheadBytes
            payload = .sync(toResponder: toResponder, frameBytes)
        }
        p.bytesOut += size
        let start = max(p.partition.now, p.uplinkFreeAt)
        let serialisation = config.link.uplinkBytesPerSecond > 0 ? UInt64(Double(size) / config.link.uplinkBytesPerSecond * 1e6) : 0
        p.uplinkFreeAt = start + serialisation
        var arrival = p.uplinkFreeAt + linkDelay(p, peers[Int(to)])
        arrival = max(arrival, p.connections.values[slot].lastArrival)
        p.connections.values[slot].lastArrival = arrival
        let connID = p.connections.values[slot].id
        schedule(arrival, .frame(to: to, from: p.index, conn: connID, size: size, payload: payload, tracked: tracked), by: p)
    }

    /// Tells `p`'s router the round-trip time it would measure to `q`: production keeps the
    /// least of the last 4 Yamux pings, sent in the first 3 s of a connection and then every
    /// 15 s (`Libp2pNIO.RoundTripEstimate`); here, the least of 4 round trips drawn from the
    /// link model (latency, jitter and retransmissions both ways), from `p`'s generator.
    func measureRoundTrip(_ p: SimPeer, _ q: SimPeer) {
        var best = UInt64.max
        for _ in 0..<4 { best = min(best, linkDelay(p, q) + linkDelay(p, q)) }
        p.router.setRoundTripTime(q.id, ms: best / 1000)
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

    /// One-way delay of a frame from `a` to `b` in µs: latency ± uniform jitter, plus an RTO
    /// (≥ 200 ms, Linux TCP_RTO_MIN; doubling) for each lost transmission. Drawn from `a`'s
    /// generator.
    func linkDelay(_ a: SimPeer, _ b: SimPeer) -> SimTime {
        let base = oneWayLatencyMs(a, b)
        let jitter = config.link.jitterMs
        var ms = base
        if jitter > 0 { ms += (a.unitRandom() * 2 - 1) * jitter }
        if config.link.loss > 0 {
            var rto = max(200, 4 * base)
            while a.unitRandom() < config.link.loss {
                ms += rto
                rto *= 2
            }
        }
        return UInt64(max(0.05, ms) * 1000)
    }

    // MARK: - receiving

    func receiveFrame(to: Int32, from: Int32, conn: UInt64, size: Int, payload: consuming FramePayload, tracked: [Int32]) {
        let q = peers[Int(to)]
        guard q.alive, let c = q.connections[from], c.id == conn else { return }
        let p = peers[Int(from)]
        if partitioned && p.side != q.side { return }  // blackholed until the connection times out
        q.bytesIn += size
        let rpc: GossipRPC
        switch consume payload {
        case .sync(let toResponder, let body):
            receiveSync(q, from: from, toResponder: toResponder, body: body)
            return
        case .gossip(let value):
            rpc = value
        }
        for u in tracked {
            let update = updates[Int(u)]
            guard Int(to) < update.copies.count else { continue }
            let c = update.copies[Int(to)]
            if c < 255 { update.copies[Int(to)] = c + 1 }
        }
        let now = q.partition.nowMs
        var accepted: [MessageID: Delivery] = [:]
        let memo = self.memo
        let validating = q.role == .eclipser
        let actions = q.router.handle(rpc, from: p.id, now: now) { message, _ in
            if validating { return .ignore("eclipser") }
            // One validator per topic, as MeshGossip dispatches them.
            if message.topic == QoSGossip.topic {
                let (result, bundle) = validateQoS(message, at: q, nowMs: now)
                if let bundle { accepted[StrictSign.messageID(message)] = .bundle(bundle) }
                return result
            }
            let (result, record) = RegistryGossip.validate(
                message, nowMs: now, verify: { bytes, t throws(RecordRejection) in try memo.verifyRecord(bytes, nowMs: t) },
                outcome: { record in Self.read(&q.replica) { $0.outcome(of: record, nowMs: now) } })
            if let record { accepted[StrictSign.messageID(message)] = .record(record) }
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
        startSync(p, with: connected[Int(p.rng.next() % UInt64(connected.count))])
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
                q.partition.busyReplies += 1
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
        // News (records gossip never brought) starts a wave of syncs (`SyncPolicy`).
        var news = 0
        for bytes in step.records {
            if let record = try? memo.verifyRecord(bytes, nowMs: q.partition.nowMs) {
                let won = merge(record, into: q)
                if SyncPolicy.isNews(accepted: won, recordWallMs: record.hlc.wallMs, nowMs: q.partition.nowMs) { news += 1 }
            }
        }
        if news > 0 {
            q.syncPolicy.sessionBrought(news: news, from: peers[Int(p)].id, connected: q.sortedConnections.map { peers[Int($0)].id },
                                        nowMs: q.partition.nowMs, using: &q.rng)
        }
        for frame in step.frames { send(q, .sync(to: p, toResponder: !toResponder, frame)) }
        q.syncs[key] = step.done ? nil : session
        if step.done { endSync(q, key, completed: true) }
    }

    func endSync(_ p: SimPeer, _ key: SyncKey, completed: Bool) {
        if key.initiator { p.syncPolicy.initiatorEnded(completed: completed) } else { p.syncPolicy.inboundEnded(completed: completed) }
        spreadNews(p)
    }

    /// The next session of a wave of news, if one is due and the initiator slot is free.
    func spreadNews(_ p: SimPeer) {
        guard p.role == .honest, p.alive,
              let next = p.syncPolicy.spreadDue(isConnected: { indexOf[$0].map { p.connections[$0] != nil } ?? false }) else { return }
        startSync(p, with: indexOf[next]!)
    }

    // MARK: - connections

    func reachable(_ a: SimPeer, _ b: SimPeer) -> Bool { !(partitioned && a.side != b.side) }

    func maintainConnections(_ p: SimPeer) {
        spreadNews(p)
        if p.role == .honest && p.syncPolicy.retryDue() { syncWithRandomPeer(p) }
        guard p.dialing.isEmpty else { return }
        if p.role == .eclipser {
            eclipseDial(p)
            return
        }
        let count = p.connections.count
        let nowMs = p.partition.nowMs
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
            let i = Int32(truncatingIfNeeded: p.rng.next() % UInt64(peers.count))
            guard probed.insert(i).inserted, let record = Self.read(&p.replica, { $0.table[peers[Int(i)].id] }) else { continue }
            visit(record)
        }
    }

    /// Up to `count` distinct live records of `p`'s table, drawn uniformly by probing random
    /// peers (a whole-table scan when that comes back short).
    func liveSample(_ p: SimPeer, count: Int) -> [SignedRecord] {
        let nowMs = p.partition.nowMs
        var out: [SignedRecord] = []
        probeTable(p, attempts: 8 * count, while: { out.count < count }) { record in
            if record.isLive(nowMs: nowMs) { out.append(record) }
        }
        if out.count < count {
            var all = p.replica.table.records.filter { $0.isLive(nowMs: nowMs) }.sorted { $0.nodeID < $1.nodeID }
            all.shuffle(using: &p.rng)
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
        let nowMs = p.partition.nowMs
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
            bootstrap: boot.map { peers[Int($0)].id }, using: &p.rng)
        for target in targets {
            guard let q = indexOf[target] else { continue }
            dial(p, q)
        }
    }

    /// `p` dials `q`, as TCP plus a three-message security handshake (Noise XX) do: the
    /// handshake's first message reaches `q` after three one-way delays (SYN, SYN-ACK, then
    /// the message), `q`'s answer reaches `p` after a fourth — `p` is connected and sends its
    /// last message — and that message reaches `q` after a fifth. A dead address refuses after
    /// one round trip; an unreachable one times out.
    func dial(_ p: SimPeer, _ q: Int32) {
        guard p.dialing.insert(q).inserted else { return }
        let target = peers[Int(q)], now = p.partition.now
        p.connectionCounter &+= 1
        let conn = UInt64(UInt32(bitPattern: p.index)) << 32 | UInt64(p.connectionCounter)
        if !reachable(p, target) {
            schedule(now + config.dialTimeoutMs * 1000, .dialDone(from: p.index, to: q, conn: conn, result: .refused), by: p)
        } else if !target.alive {
            schedule(now + linkDelay(p, target) + linkDelay(p, target), .dialDone(from: p.index, to: q, conn: conn, result: .refused), by: p)
        } else {
            let delay = linkDelay(p, target) + linkDelay(p, target) + linkDelay(p, target)
            schedule(now + delay, .dialArrive(to: q, from: p.index, conn: conn), by: p)
        }
    }

    /// The handshake's first message reaches `q`: it goes on unless it is gone, leaving, full
    /// or already connected to the dialler, and answers.
    func dialArrive(_ q: SimPeer, from: Int32, conn: UInt64) {
        let p = peers[Int(from)], now = q.partition.now
        guard reachable(q, p) else {
            // Cut off while the handshake was under way: the dialler times out.
            schedule(now + config.dialTimeoutMs * 1000, .dialDone(from: from, to: q.index, conn: conn, result: .refused), by: q)
            return
        }
        let result: DialResult
        if !q.alive || q.leaving || q.connections.count >= 256 {
            result = .refused
        } else if q.connections[from] != nil {
            result = .duplicate
        } else {
            result = .connected
        }
        schedule(now + linkDelay(q, p), .dialDone(from: from, to: q.index, conn: conn, result: result), by: q)
    }

    /// The dialler learns how its dial ended. Connected: it opens its gossip stream and sends
    /// the handshake's last message, which reaches the remote ahead of every frame after it.
    func dialDone(_ p: SimPeer, to q: Int32, conn: UInt64, result: DialResult) {
        p.dialing.remove(q)
        let target = peers[Int(q)], now = p.partition.now
        guard p.alive else { return }
        switch result {
        case .refused:
            p.planner.failed(target.id, now: p.partition.nowMs)
        case .duplicate:
            break
        case .connected:
            guard reachable(p, target) else {
                p.planner.failed(target.id, now: p.partition.nowMs)
                return
            }
            p.planner.succeeded(target.id)
            let arrival = now + linkDelay(p, target)
            schedule(arrival, .handshakeDone(to: q, from: p.index, conn: conn), by: p)
            guard keepConnection(p, remote: q, conn: conn, outbound: true, arrival: arrival) else { return }
            if p.role == .honest && p.syncPolicy.request() { startSync(p, with: q) }
        }
    }

    /// The dialler's last handshake message reaches `q`: the connection is up on its side too.
    func handshakeDone(_ q: SimPeer, from: Int32, conn: UInt64) {
        guard q.alive else {
            // The dialler holds a connection to a peer that died meanwhile: it times out there.
            schedule(q.partition.now + config.crashDetectionMs * 1000, .closed(peer: from, remote: q.index, conn: conn), by: q)
            return
        }
        keepConnection(q, remote: from, conn: conn, outbound: false, arrival: 0)
    }

    /// Adds a connection that came up, and its peer to the router. If the two peers dialled
    /// each other and both dials got through, both keep the connection with the lower ID and
    /// close the other. Returns whether the peer is new (false: one of two connections).
    @discardableResult
    func keepConnection(_ p: SimPeer, remote q: Int32, conn: UInt64, outbound: Bool, arrival: SimTime) -> Bool {
        let target = peers[Int(q)], now = p.partition.now
        if let existing = p.connections[q] {
            let close: UInt64
            if existing.id < conn {
                close = conn
            } else {
                close = existing.id
                p.connections[q] = SimConnection(id: conn, outbound: outbound, openedAt: existing.openedAt,
                                                 lastArrival: max(existing.lastArrival, arrival))
            }
            // Behind the handshake's last message and every frame sent so far.
            schedule(max(now + linkDelay(p, target), arrival, p.connections[q]!.lastArrival), .closed(peer: q, remote: p.index, conn: close), by: p)
            return false
        }
        p.connections[q] = SimConnection(id: conn, outbound: outbound, openedAt: now, lastArrival: arrival)
        if !outbound { p.planner.succeeded(target.id) }
        execute(p, p.router.addPeer(target.id, protocol: .v12, outbound: outbound, now: p.partition.nowMs), accepted: [:])
        measureRoundTrip(p, target)
        return true
    }

    /// Setup only: a connection that is up at once on both sides (the dialler reconciles).
    func connectNow(_ p: SimPeer, _ q: SimPeer) {
        precondition(!inWindow)
        p.connectionCounter &+= 1
        let id = UInt64(UInt32(bitPattern: p.index)) << 32 | UInt64(p.connectionCounter)
        p.connections[q.index] = SimConnection(id: id, outbound: true, openedAt: now)
        q.connections[p.index] = SimConnection(id: id, outbound: false, openedAt: now)
        execute(p, p.router.addPeer(q.id, protocol: .v12, outbound: true, now: nowMs), accepted: [:])
        execute(q, q.router.addPeer(p.id, protocol: .v12, outbound: false, now: nowMs), accepted: [:])
        measureRoundTrip(p, q)
        measureRoundTrip(q, p)
        if p.role == .honest && p.syncPolicy.request() { startSync(p, with: q.index) }
    }

    /// `p` closes its connection to `remote`; the remote notices one latency later.
    func disconnect(_ p: SimPeer, from remote: Int32, noticeAfter: SimTime? = nil) {
        guard let c = p.connections[remote] else { return }
        dropConnection(p, remote: remote)
        let r = peers[Int(remote)]
        schedule(p.partition.now + (noticeAfter ?? linkDelay(p, r)), .closed(peer: remote, remote: p.index, conn: c.id), by: p)
    }

    func dropConnection(_ p: SimPeer, remote: Int32) {
        p.connections[remote] = nil
        for key in [SyncKey(remote: remote, initiator: true), SyncKey(remote: remote, initiator: false)]
        where p.syncs.removeValue(forKey: key) != nil {
            endSync(p, key, completed: false)
        }
        p.router.removePeer(peers[Int(remote)].id, now: p.partition.nowMs)
    }

    /// Like `MeshService.trim` (`DialPlanner.connectionsToClose`).
    func trim(_ p: SimPeer) {
        let mesh = p.router.mesh[RegistryGossip.topic] ?? []
        let now = p.partition.now
        let connections = p.sortedConnections.map { i in
            (peer: peers[Int(i)].id, outbound: p.connections[i]!.outbound, ageMs: (now - p.connections[i]!.openedAt) / 1000)
        }
        for victim in DialPlanner.connectionsToClose(connections, mesh: mesh, maxPeers: config.maxPeers, using: &p.rng) {
            if let q = indexOf[victim] { disconnect(p, from: q) }
        }
    }
}
