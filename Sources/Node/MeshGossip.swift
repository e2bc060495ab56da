import Gossipsub
import HTTPAPI
import Identity
import Libp2p
import Libp2pNIO
import Logging
import Registry
import RegistryGossip
import Synchronization

/// The shell around the Gossipsub router and the set reconciliation sessions: it owns the
/// gossip streams of every connected peer, feeds the router, and carries out its actions
/// (STYLE.md §1). All protocol decisions are in `GossipRouter` and `SetSyncSession`.
///
/// Topics and replicated sets are pluggable: each topic is a validator whose accepted messages
/// carry their own sink (`addTopic`), each set a snapshot, a merge and a sync protocol
/// (`addReplicatedSet`). The registry's topic and set are registered at construction; QoS adds
/// `drtc/qos/1` and `/drtc/qos-sync/1.0.0` (Specs/qos.md).
public final class MeshGossip: Sendable {
    static let topic = RegistryGossip.topic

    /// A topic's validator: the verdict on a message and, when accepted, what to do once the
    /// router delivers it (merge it into a store, …).
    public typealias TopicHandler = @Sendable (GossipMessage, _ nowMs: UInt64) -> (ValidationResult, (@Sendable () -> Void)?)

    /// A replicated set reconciled with `SetSyncSession` on its own protocol.
    public struct ReplicatedSet: Sendable {
        public var protocolID: String
        /// Prefix of its metrics (`<prefix>_sessions_total`, …).
        public var metricsPrefix: String
        public var snapshot: @Sendable () -> SyncSnapshot
        /// Verifies and merges received items; returns how many verified and how many of those
        /// are news (`SyncPolicy.isNews`: they start a wave of syncs, Specs/gossip.md "Partitions").
        public var merge: @Sendable ([[UInt8]]) async throws -> SetMerge
        /// What a busy responder hands out instead of reconciling.
        public var busySample: @Sendable () -> [[UInt8]]
        public var limits: SyncLimits

        public init(protocolID: String, metricsPrefix: String, snapshot: @escaping @Sendable () -> SyncSnapshot,
                    merge: @escaping @Sendable ([[UInt8]]) async throws -> SetMerge, busySample: @escaping @Sendable () -> [[UInt8]],
                    limits: SyncLimits = SyncLimits()) {
            self.protocolID = protocolID
            self.metricsPrefix = metricsPrefix
            self.snapshot = snapshot
            self.merge = merge
            self.busySample = busySample
            self.limits = limits
        }
    }

    /// What merging a batch of synced items did.
    public struct SetMerge: Sendable {
        public var verified: Int
        public var news: Int
        public init(verified: Int, news: Int) {
            self.verified = verified
            self.news = news
        }
    }

    final class SetState: Sendable {
        let set: ReplicatedSet
        /// Which sync sessions run (`RegistryGossip.SyncPolicy`, shared with the simulator).
        let policy = Mutex(SyncPolicy())
        /// The last finished session: (items received, bytes in, bytes out).
        let lastSync = Mutex<(records: Int, bytesIn: Int, bytesOut: Int)?>(nil)
        init(_ set: ReplicatedSet) { self.set = set }
    }
    /// Frames queued for one peer beyond which further RPCs to it are dropped (the peer is not
    /// reading; gossip and anti-entropy repair what it misses).
    static let maxQueuedBytes = 8 << 20

    let host: Libp2pHost
    let registry: RegistryService
    let metrics: DrtcMetrics
    let logger: Logger
    /// The router's clock: local durations (production: the monotonic clock).
    let clock: @Sendable () -> UInt64
    /// The registry's clock, which records are judged by (production: `MeshClock`), and
    /// whether it agrees with the peers' (`RegistryGossip.validate(clockSettled:)`).
    let recordClock: @Sendable () -> UInt64
    let clockSettled: @Sendable () -> Bool
    let heartbeatMs: UInt64

    private let router: Mutex<GossipRouter>
    private let writers = Mutex<[PeerID: PeerWriter]>([:])
    private let topics = Mutex<[String: TopicHandler]>([:])
    private let sets = Mutex<[SetState]>([])
    private let started = Mutex(false)
    /// Sinks of messages accepted by their topic's validator, waiting for `.deliver`.
    private let verified = Mutex<[MessageID: @Sendable () -> Void]>([:])
    private let exported = Mutex(GossipCounters())
    private let exportedTraffic = Mutex<(out: Int, in: Int)>((0, 0))
    let discovered = Mutex<[PeerID]>([])

    /// Bytes of RPC frames written and read (without Noise/Yamux overhead).
    private let traffic = Mutex<(out: Int, in: Int)>((0, 0))
    /// Observability hook (benchmarks, tests): called for every record accepted from gossip.
    private let deliveryHook = Mutex<(@Sendable (SignedRecord) -> Void)?>(nil)
    /// The registry set's last finished sync session: (records received, bytes in, bytes out).
    public func lastSync() -> (records: Int, bytesIn: Int, bytesOut: Int)? { sets.withLock { $0[0] }.lastSync.withLock { $0 } }

    public init(host: Libp2pHost, identity: Ed25519KeyPair, registry: RegistryService, metrics: DrtcMetrics, logger: Logger,
                heartbeatMs: UInt64, parameters base: GossipParameters = MeshGossip.defaultParameters(), clock: @escaping @Sendable () -> UInt64,
                recordClock: (@Sendable () -> UInt64)? = nil, clockSettled: @escaping @Sendable () -> Bool = { true }) {
        self.host = host
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
        self.recordClock = recordClock ?? clock
        self.clockSettled = clockSettled
        self.heartbeatMs = heartbeatMs
        var parameters = base
        parameters.heartbeatIntervalMs = heartbeatMs
        router = Mutex(GossipRouter(
            localPeer: identity.peerID, signer: identity, parameters: parameters, score: Self.scoreParameters(),
            seed: UInt64.random(in: .min ... .max), seqnoStart: self.recordClock() &* 1_000_000))
        addTopic(Self.topic) { [weak self] message, now in
            guard let self else { return (.ignore("shutting_down"), nil) }
            return self.validateRecord(message, now: now)
        }
        addReplicatedSet(ReplicatedSet(
            protocolID: RegistrySyncSession.protocolID, metricsPrefix: "drtc_registry_sync",
            snapshot: { [registry] in registry.withReplica { SyncSnapshot(records: $0.table.records) } },
            merge: { [weak self] items in try await self?.mergeSynced(items) ?? SetMerge(verified: 0, news: 0) },
            busySample: { [registry, recordClock = self.recordClock] in
                let now = recordClock()
                return registry.withReplica { replica in
                    Array(replica.table.liveRecords(nowMs: now).shuffled().prefix(SyncPolicy.busySample)).map(\.encoded)
                }
            }))
    }

    /// Adds a topic: subscribes to it (now, or when the mesh starts) and validates its
    /// messages with `handler`.
    public func addTopic(_ name: String, handler: @escaping TopicHandler) {
        topics.withLock { $0[name] = handler }
        if started.withLock({ $0 }) { execute(router.withLock { $0.subscribe(name, now: clock()) }) }
    }

    /// Adds a replicated set: its sync protocol is served, and every sync request (new outbound
    /// connection, anti-entropy) reconciles it too. Register before `start`.
    public func addReplicatedSet(_ set: ReplicatedSet) {
        sets.withLock { $0.append(SetState(set)) }
    }

    /// The registry's router parameters (`RegistryGossip.defaultParameters`, Specs/gossip.md).
    public static func defaultParameters() -> GossipParameters { RegistryGossip.defaultParameters() }

    static func scoreParameters() -> ScoreParameters { RegistryGossip.scoreParameters() }

    // MARK: wiring

    public func onDeliver(_ hook: @escaping @Sendable (SignedRecord) -> Void) { deliveryHook.withLock { $0 = hook } }

    public var counters: GossipCounters { router.withLock { $0.counters } }
    public var meshSize: Int { router.withLock { $0.mesh[Self.topic]?.count ?? 0 } }
    public var trafficBytes: (out: Int, in: Int) { traffic.withLock { $0 } }

    public func start() {
        for proto in GossipProtocol.preference {
            host.setStreamHandler(proto.rawValue) { [weak self] stream in await self?.readGossip(stream, protocol: proto) }
        }
        for state in sets.withLock({ $0 }) {
            host.setStreamHandler(state.set.protocolID) { [weak self] stream in
                await self?.respondToSync(stream, state)
            }
        }
        host.addConnectionObserver(.init(
            connected: { [weak self] info in self?.peerConnected(info) },
            disconnected: { [weak self] peer in self?.peerDisconnected(peer) }))
        started.withLock { $0 = true }
        for name in topics.withLock({ $0.keys.sorted() }) { execute(router.withLock { $0.subscribe(name, now: clock()) }) }
        metrics.onScrape { [weak self] in self?.exportMetrics() }
    }

    public func stop() {
        let all = writers.withLock { w -> [PeerWriter] in
            defer { w = [:] }
            return Array(w.values)
        }
        for writer in all { writer.finish() }
    }

    private func peerConnected(_ info: Libp2pHost.ConnectionInfo) {
        let now = clock()
        let writer = PeerWriter()
        let previous = writers.withLock { w -> PeerWriter? in
            defer { w[info.peer] = writer }
            return w[info.peer]
        }
        if let previous {
            // A replaced connection (simultaneous dial): start the peer afresh.
            previous.finish()
            router.withLock { $0.removePeer(info.peer, now: now) }
        }
        Task { await self.openGossipStream(info, writer: writer) }
        if info.outbound {
            // The dialler reconciles: a new or returning peer gets the whole difference now,
            // not at the next refresh (or, while another session runs, on a later tick).
            Task { await self.requestSync(with: info.peer) }
        }
    }

    private func peerDisconnected(_ peer: PeerID) {
        writers.withLock { $0.removeValue(forKey: peer) }?.finish()
        router.withLock { $0.removePeer(peer, now: clock()) }
    }

    private func openGossipStream(_ info: Libp2pHost.ConnectionInfo, writer: PeerWriter) async {
        let stream: Libp2pStream
        do {
            stream = try await host.newStream(to: info.peer, protocols: GossipProtocol.preference.map(\.rawValue))
        } catch {
            logger.debug("peer does not speak gossipsub", metadata: ["peer": "\(info.peer)", "error": "\(error)"])
            return
        }
        guard let proto = GossipProtocol(rawValue: stream.protocolID) else { return stream.reset() }
        execute(router.withLock { $0.addPeer(info.peer, protocol: proto, outbound: info.outbound, ip: info.remoteIP, now: clock()) })
        for await queued in writer.rpcs {
            writer.wrote(queued.size)
            var rpc = queued.rpc
            // Late deduplication: what the peer told us while this RPC waited is honoured now.
            guard router.withLock({ $0.filterOutgoing(&rpc, to: info.peer, now: clock()) }) else { continue }
            let frame = LengthPrefixedDecoder.frame(rpc.encoded)
            traffic.withLock { $0.out += frame.count }
            do { try await stream.write(frame) } catch {
                logger.debug("gossip stream write failed", metadata: ["peer": "\(info.peer)", "error": "\(error)"])
                break
            }
        }
        await stream.closeWrite()
    }

    /// Reads the RPCs a peer sends on the stream it opened to us.
    private func readGossip(_ stream: Libp2pStream, protocol proto: GossipProtocol) async {
        let peer = stream.remotePeer
        let info = host.connections.first { $0.peer == peer }
        execute(router.withLock { $0.addPeer(peer, protocol: proto, outbound: info?.outbound ?? false, ip: info?.remoteIP, now: clock()) })
        var decoder = LengthPrefixedDecoder(maxMessageSize: GossipParameters().limits.maxRPCSize)
        while true {
            let chunk: [UInt8]?
            do { chunk = try await stream.read() } catch {
                return  // the connection or stream went away: nothing to blame the peer for
            }
            guard let chunk else { return }
            traffic.withLock { $0.in += chunk.count }
            decoder.append(chunk)
            do {
                while let frame = try decoder.next() {
                    // The router times on the monotonic clock; topics judge messages on the
                    // registry clock (records' and QoS bundles' timestamps).
                    let now = clock(), recordNow = recordClock()
                    let handlers = topics.withLock { $0 }
                    let actions = router.withLock { r in
                        r.handle(frame: frame, from: peer, now: now) { message, _ in self.validate(message, now: recordNow, handlers) }
                    }
                    execute(actions)
                }
            } catch {
                // Oversize or malformed framing: the stream is unusable.
                metrics.counter("drtc_gossip_rejected_total", "reason", "bad_framing").increment()
                logger.info("gossip stream closed: bad framing", metadata: ["peer": "\(peer)", "error": "\(error)"])
                router.withLock { $0.penalise(peer, 10) }
                stream.reset()
                return
            }
        }
    }

    /// Hands a message to its topic's validator and keeps the sink of an accepted one for the
    /// router's `.deliver`.
    private func validate(_ message: GossipMessage, now: UInt64, _ handlers: [String: TopicHandler]) -> ValidationResult {
        guard let topic = message.topic, let handler = handlers[topic] else { return .ignore("unsubscribed_topic") }
        let (result, sink) = handler(message, now)
        if let sink { verified.withLock { $0[StrictSign.messageID(message)] = sink } }
        return result
    }

    /// The `drtc/registry/1` validation pipeline (`RegistryGossip.validate`, shared with the
    /// simulator) against this node's table; the sink merges the record.
    private func validateRecord(_ message: GossipMessage, now: UInt64) -> (ValidationResult, (@Sendable () -> Void)?) {
        let (result, record) = RegistryGossip.validate(message, nowMs: now, clockSettled: clockSettled()) { record in
            registry.withReplica { $0.table.outcome(of: record, nowMs: now) }
        }
        guard let record else { return (result, nil) }
        return (result, { [weak self] in
            guard let self else { return }
            self.deliveryHook.withLock { $0 }?(record)
            Task {
                // Deferrable: on a full disk the record is still merged in memory (and was
                // already forwarded); the registry logs the failed commit, rate-bounded.
                do { _ = try await self.registry.merge([record], durability: .deferrable) } catch {
                    self.logger.debug("gossiped record not merged", metadata: ["error": "\(error)"])
                }
            }
        })
    }

    // MARK: actions

    func execute(_ actions: [GossipAction]) {
        scheduleForwards()
        for action in actions {
            switch action {
            case .send(let peer, let rpc):
                let queued = writers.withLock { $0[peer] }?.enqueue(rpc, limit: Self.maxQueuedBytes) ?? false
                if !queued { metrics.counter("drtc_gossip_dropped_total", "reason", "send_queue_full").increment() }
            case .deliver(_, let id, _):
                verified.withLock({ $0.removeValue(forKey: id) })?()
            case .discovered(let peers):
                discovered.withLock { list in
                    list += peers
                    if list.count > 256 { list.removeFirst(list.count - 256) }
                }
            }
        }
    }

    private let forwardTimerArmed = Mutex(false)

    /// Arms one timer for the router's held-back forwards (if any and none armed).
    private func scheduleForwards() {
        guard let due = router.withLock({ $0.nextForwardDue }) else { return }
        guard forwardTimerArmed.withLock({ armed in
            defer { armed = true }
            return !armed
        }) else { return }
        // One reading of the clock: reading it twice let `due - clock()` underflow (and trap)
        // when the clock passed `due` between the comparison and the subtraction.
        let now = clock()
        let wait = due > now ? due - now : 0
        Task {
            if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait))) }
            forwardTimerArmed.withLock { $0 = false }
            execute(router.withLock { $0.flushForwards(now: clock()) })
        }
    }

    public func publish(_ record: SignedRecord) {
        publish(record.encoded, topic: Self.topic)
    }

    public func publish(_ data: [UInt8], topic: String) {
        do {
            let (_, actions) = try router.withLock { try $0.publish(data, topic: topic, now: clock()) }
            execute(actions)
        } catch {
            logger.error("could not publish", metadata: ["topic": "\(topic)", "error": "\(error)"])
        }
    }

    public func heartbeat() {
        // The links' round-trip times set how long forwards are held (Specs/gossip.md "Duplicates").
        let roundTrips = host.roundTripTimesMs()
        execute(router.withLock { r in
            for (peer, ms) in roundTrips { r.setRoundTripTime(peer, ms: ms) }
            return r.heartbeat(now: clock())
        })
    }

    /// Gossip-level view for `/health` and tests.
    func meshPeers() -> Set<PeerID> { router.withLock { $0.mesh[Self.topic] ?? [] } }

    // MARK: sync

    /// A sync is wanted (new outbound connection, anti-entropy): for every replicated set, runs
    /// a session with `peer` (nil: a random connected peer) if that set's `SyncPolicy` grants
    /// it, else remembers it for `syncTick`.
    public func requestSync(with peer: PeerID?) async {
        for state in sets.withLock({ $0 }) where state.policy.withLock({ $0.request() }) {
            await runGrantedSync(state, with: peer)
        }
    }

    /// Called every second by the connection maintenance: runs a remembered request (one that
    /// had to wait, or whose session failed or was cut) with a random connected peer.
    public func syncTick() async {
        for state in sets.withLock({ $0 }) {
            await spreadNews(state)
            if state.policy.withLock({ $0.retryDue() }) { await runGrantedSync(state, with: nil) }
        }
    }

    private func runGrantedSync(_ state: SetState, with peer: PeerID?) async {
        var completed = false
        if let peer = peer ?? host.connectedPeers.randomElement() { completed = await syncWith(peer, state) }
        state.policy.withLock { $0.initiatorEnded(completed: completed) }
        await spreadNews(state)
    }

    /// Runs one registry initiator session with `peer` now, outside `SyncPolicy` (benchmarks,
    /// tests). Returns whether it completed.
    @discardableResult
    public func syncWith(_ peer: PeerID) async -> Bool {
        await syncWith(peer, sets.withLock { $0[0] })
    }

    func syncWith(_ peer: PeerID, _ state: SetState) async -> Bool {
        do {
            let stream = try await host.newStream(to: peer, protocols: [state.set.protocolID])
            return await runSync(.initiator, stream: stream, state)
        } catch {
            logger.debug("sync not started", metadata: ["peer": "\(peer)", "protocol": "\(state.set.protocolID)", "error": "\(error)"])
            return false
        }
    }

    /// An inbound sync stream: reconciles, or — beyond `SyncPolicy.maxInbound` sessions —
    /// answers with a sample (Specs/registry-sync.md "Busy responders").
    private func respondToSync(_ stream: Libp2pStream, _ state: SetState) async {
        guard state.policy.withLock({ $0.acceptInbound() }) else {
            let sample = state.set.busySample()
            logger.debug("sync busy: answered with a sample", metadata: ["peer": "\(stream.remotePeer)", "protocol": "\(state.set.protocolID)", "items": "\(sample.count)"])
            metrics.counter("\(state.set.metricsPrefix)_sessions_total", "result", "busy").increment()
            do {
                for frame in SetSyncSession.busyReply(items: sample, limits: state.set.limits) { try await stream.write(frame) }
                await stream.closeWrite()
            } catch {
                stream.reset()
            }
            return
        }
        let completed = await runSync(.responder, stream: stream, state)
        state.policy.withLock { $0.inboundEnded(completed: completed) }
        await spreadNews(state)
    }

    @discardableResult
    private func runSync(_ role: SetSyncSession.Role, stream: Libp2pStream, _ state: SetState) async -> Bool {
        let started = ContinuousClock.now
        let prefix = state.set.metricsPrefix
        var session = SetSyncSession(role: role, snapshot: state.set.snapshot(), limits: state.set.limits)
        var decoder = LengthPrefixedDecoder(maxMessageSize: state.set.limits.maxFrameSize)
        var received = 0, bytesIn = 0, bytesOut = 0
        do {
            if role == .initiator {
                for frame in session.start().frames {
                    bytesOut += frame.count
                    try await stream.write(frame)
                }
            }
            reading: while let chunk = try await stream.read() {
                bytesIn += chunk.count
                decoder.append(chunk)
                while let frame = try decoder.next() {
                    let step = try session.receive(frame: frame)
                    if !step.records.isEmpty {
                        received += step.records.count
                        // Individual invalid items are counted by the set; a peer that sends
                        // nothing but garbage ends the session.
                        let merged = try await state.set.merge(step.records)
                        if merged.verified == 0 {
                            throw SyncError(.protocolViolation, "peer sent only invalid items")
                        }
                        noteNews(merged.news, from: stream.remotePeer, state)
                    }
                    for out in step.frames {
                        bytesOut += out.count
                        try await stream.write(out)
                    }
                    if step.done { break reading }
                }
            }
            await stream.closeWrite()
            state.lastSync.withLock { $0 = (received, bytesIn, bytesOut) }
            metrics.counter("\(prefix)_sessions_total", "result", "ok").increment()
            metrics.counter("\(prefix)_records_total", "direction", "in").increment(by: received)
            metrics.counter("\(prefix)_bytes_total", "direction", "in").increment(by: bytesIn)
            metrics.counter("\(prefix)_bytes_total", "direction", "out").increment(by: bytesOut)
            if received > 0 {
                logger.info("synced", metadata: [
                    "peer": "\(stream.remotePeer)", "protocol": "\(state.set.protocolID)", "role": "\(role)", "itemsReceived": "\(received)",
                    "bytesIn": "\(bytesIn)", "bytesOut": "\(bytesOut)", "ms": "\((ContinuousClock.now - started) / .milliseconds(1))"])
            }
            return true
        } catch {
            metrics.counter("\(prefix)_sessions_total", "result", "error").increment()
            logger.info("sync aborted", metadata: ["peer": "\(stream.remotePeer)", "protocol": "\(state.set.protocolID)", "error": "\(error)"])
            stream.reset()
            return false
        }
    }

    /// Verifies and merges synced records: how many verified, and how many of them are news
    /// (`SyncPolicy.isNews`, judged on the registry clock). Invalid ones are counted by the
    /// registry.
    private func mergeSynced(_ encoded: [[UInt8]]) async throws -> SetMerge {
        let now = recordClock()
        var good: [SignedRecord] = []
        for bytes in encoded {
            do { good.append(try SignedRecord.verify(encoded: bytes, nowMs: now)) } catch {
                metrics.mergeRejected(error)
            }
        }
        if good.isEmpty && !encoded.isEmpty { return SetMerge(verified: 0, news: 0) }
        let outcomes = try await registry.merge(good, durability: .deferrable)
        let news = zip(good, outcomes).filter { SyncPolicy.isNews(accepted: $1 == .accepted, recordWallMs: $0.hlc.wallMs, nowMs: now) }.count
        return SetMerge(verified: good.count, news: news)
    }

    // MARK: metrics

    private func exportMetrics() {
        let now = clock()
        let (counters, meshSize, scores, peers) = router.withLock { r in
            (r.counters, r.mesh[Self.topic]?.count ?? 0, r.connectedPeers.map { r.score(of: $0, now: now) }.sorted(), r.connectedPeers.count)
        }
        let previous = exported.withLock { e -> GossipCounters in
            defer { e = counters }
            return e
        }
        func add(_ label: String, _ dim: String, _ value: String, _ delta: Int) {
            if delta > 0 { metrics.counter(label, dim, value).increment(by: delta) }
        }
        let deltas: [(String, String, String, Int)] = [
            ("drtc_gossip_messages_total", "kind", "in", counters.messagesIn - previous.messagesIn),
            ("drtc_gossip_messages_total", "kind", "out", counters.messagesOut - previous.messagesOut),
            ("drtc_gossip_messages_total", "kind", "delivered", counters.messagesDelivered - previous.messagesDelivered),
            ("drtc_gossip_messages_total", "kind", "published", counters.messagesPublished - previous.messagesPublished),
            ("drtc_gossip_messages_total", "kind", "duplicate", counters.duplicates - previous.duplicates),
            ("drtc_gossip_rpcs_total", "direction", "in", counters.rpcsIn - previous.rpcsIn),
            ("drtc_gossip_rpcs_total", "direction", "out", counters.rpcsOut - previous.rpcsOut),
            ("drtc_gossip_control_total", "type", "graft", counters.graftsIn - previous.graftsIn),
            ("drtc_gossip_control_total", "type", "prune", counters.prunesIn - previous.prunesIn),
            ("drtc_gossip_control_total", "type", "ihave", counters.ihaveIn - previous.ihaveIn),
            ("drtc_gossip_control_total", "type", "iwant", counters.iwantIn - previous.iwantIn),
            ("drtc_gossip_control_total", "type", "idontwant", counters.idontwantIn - previous.idontwantIn),
        ]
        for (label, dim, value, delta) in deltas { add(label, dim, value, delta) }
        let bytes = traffic.withLock { $0 }
        let previousBytes = exportedTraffic.withLock { e -> (out: Int, in: Int) in
            defer { e = bytes }
            return e
        }
        add("drtc_gossip_bytes_total", "direction", "out", bytes.out - previousBytes.out)
        add("drtc_gossip_bytes_total", "direction", "in", bytes.in - previousBytes.in)
        add("drtc_gossip_broken_promises_total", "topic", Self.topic, counters.brokenPromises - previous.brokenPromises)
        for (reason, n) in counters.rejected { add("drtc_gossip_rejected_total", "reason", reason, n - (previous.rejected[reason] ?? 0)) }
        for (reason, n) in counters.ignored { add("drtc_gossip_ignored_total", "reason", reason, n - (previous.ignored[reason] ?? 0)) }
        metrics.gauge("drtc_gossip_mesh_peers", topic: Self.topic).set(meshSize)
        metrics.gauge("drtc_gossip_peers", topic: Self.topic).set(peers)
        metrics.gauge("drtc_gossip_peer_score_min", topic: Self.topic).set(scores.first ?? 0)
        metrics.gauge("drtc_gossip_peer_score_median", topic: Self.topic).set(scores.isEmpty ? 0 : scores[scores.count / 2])
        metrics.gauge("drtc_gossip_peer_score_max", topic: Self.topic).set(scores.last ?? 0)
        metrics.gauge("drtc_gossip_graylisted_peers", topic: Self.topic).set(scores.filter { $0 < ScoreThresholds().graylist }.count)
    }
}

/// The outgoing queue of one peer's gossip stream. RPCs are queued decoded, so that what the
/// peer says while they wait (IDONTWANT) can still remove messages from them.
final class PeerWriter: Sendable {
    struct Queued: Sendable {
        var rpc: GossipRPC
        var size: Int
    }

    let rpcs: AsyncStream<Queued>
    private let continuation: AsyncStream<Queued>.Continuation
    private let queued = Mutex(0)

    init() {
        (rpcs, continuation) = AsyncStream.makeStream(of: Queued.self)
    }

    /// False when the queue already holds `limit` bytes of messages (the RPC is dropped: the
    /// peer is not reading, and gossip plus anti-entropy repair what it misses).
    func enqueue(_ rpc: GossipRPC, limit: Int) -> Bool {
        let size = rpc.publish.reduce(64) { $0 + $1.data.count + 160 }
        let ok = queued.withLock { q -> Bool in
            guard q + size <= limit else { return false }
            q += size
            return true
        }
        if ok { continuation.yield(Queued(rpc: rpc, size: size)) }
        return ok
    }

    func wrote(_ size: Int) { queued.withLock { $0 -= size } }

    func finish() { continuation.finish() }
}
