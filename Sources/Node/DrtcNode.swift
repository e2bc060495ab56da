import HTTPAPI
import Hummingbird
import Identity
import Libp2p
import Libp2pNIO
import Logging
import NIOCore
import NIOPosix
import QoS
import Registry
import RegistryGossip
import Rewards
import ServiceLifecycle
import Store
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// A drtc node: identity, registry, HTTP API, wired together as a ServiceGroup.
public final class DrtcNode: Sendable {
    public static let version = RegistryAPI.version

    public let config: NodeConfig
    public let identity: Ed25519KeyPair
    public let registry: RegistryService
    public let metrics: DrtcMetrics
    public let host: Libp2pHost
    /// The registry's clock: the wall clock corrected by the offset against the peers
    /// (Specs/registry.md "Clocks").
    public let meshClock: MeshClock
    /// The replicated QoS report set and its aggregation (Specs/qos.md).
    public let qos: QoSService
    let gossip: MeshGossip
    /// The replicated set of countersigned session receipts (Specs/rewards.md "Data supplied").
    let receipts: ReceiptService
    let rewards: RewardsService
    /// When this node started (Unix ms): the dashboard's uptime.
    let startedAtMs: UInt64
    let logger: Logger
    /// Media sessions now, published in the record's load (the orchestrator's input).
    let liveSessions = Mutex<UInt32>(0)
    private let dataDirLock: DataDirLock
    /// Set by `run` once the media service exists; `/health` reports it.
    let media = Synchronization.Mutex<MediaService?>(nil)

    public var peerID: PeerID { identity.peerID }

    /// Opens the identity (creating it on first start) and the registry.
    public init(config: NodeConfig, logger: Logger, clock: @escaping @Sendable () -> UInt64 = wallClockMs) throws {
        self.config = config
        self.logger = logger
        startedAtMs = clock()
        let loaded = try KeyFile.loadOrCreate(dataDir: config.dataDir)
        // One process per data dir: two nodes sharing an identity would overwrite each
        // other's records and tombstones.
        dataDirLock = try DataDirLock(directory: config.dataDir)
        if case .created = loaded {
            logger.notice("created a new identity", metadata: ["path": "\(KeyFile.path(inDataDir: config.dataDir))"])
        }
        identity = loaded.keyPair
        metrics = DrtcMetrics()
        let meshClock = MeshClock(wall: clock)
        self.meshClock = meshClock
        let registryDir = config.dataDir + "/registry"
        do {
            registry = try RegistryService(directory: registryDir, metrics: metrics, logger: logger, clock: meshClock.now)
        } catch {
            let full = (error as? LMDBError)?.isNoSpace == true
            throw NodeStartError("--data-dir \(config.dataDir): cannot open the registry store \(registryDir): \(error)"
                + (full ? "; the disk is full: free some space (or choose another --data-dir) and start again" : ""))
        }
        var hostConfig = Libp2pHost.Configuration()
        hostConfig.agentVersion = "drtc/\(Self.version)"
        hostConfig.maxConnections = max(hostConfig.maxConnections, config.maxPeers * 4)
        host = Libp2pHost(identity: identity, configuration: hostConfig, logger: logger, metricsFactory: metrics.factory)
        var gossipParameters = MeshGossip.defaultParameters()
        gossipParameters.forwardDelayMs = config.gossipForwardDelayMs
        // The router times local durations on the monotonic clock; records go by the registry's.
        gossip = MeshGossip(host: host, identity: identity, registry: registry, metrics: metrics, logger: logger,
                            heartbeatMs: config.gossipHeartbeatMs, parameters: gossipParameters, clock: monotonicMs,
                            recordClock: meshClock.now, clockSettled: { meshClock.estimate.isSettled })
        ClockService.serve(on: host, clock: meshClock)
        // QoS epochs, tickets and bundles are timed like records: on the registry clock.
        let qos = try QoSService(directory: config.dataDir + "/qos", schedule: config.qosSchedule, metrics: metrics, logger: logger, clock: meshClock.now)
        self.qos = qos
        QoSWiring.attach(qos, to: gossip, metrics: metrics, logger: logger)
        // Receipts are kept as long as QoS bundles, in epochs of the same length.
        let receipts = try ReceiptService(directory: config.dataDir + "/receipts", epochSeconds: config.qosSchedule.epochSeconds,
                                          horizonEpochs: qos.parameters.horizonEpochs, metrics: metrics, logger: logger, clock: meshClock.now)
        self.receipts = receipts
        receipts.attach(to: gossip)
        rewards = RewardsService(schedule: config.qosSchedule, horizonEpochs: qos.parameters.horizonEpochs, parameters: config.rewardParameters,
                                 registry: registry, metrics: metrics, logger: logger, me: identity.peerID,
                                 qos: { (qos.digest(), qos.aggregate()) }, receipts: receipts)
    }

    /// The refresh interval and TTL this node promises now (Specs/gossip.md "Liveness").
    func livenessSchedule() -> (interval: UInt32, ttl: UInt32) {
        let now = registry.clock()
        let live = registry.withReplica { $0.table.liveCount(nowMs: now) }
        return LivenessRule.schedule(baseInterval: config.refreshIntervalSeconds, baseTTL: config.ttlSeconds, liveRecords: live)
    }

    /// The addresses this node listens on (bound: a port 0 is resolved), each ending in
    /// `/p2p/<peerId>`.
    public var announcedMultiaddrs: [String] {
        host.listenAddresses.map(\.description)
    }

    /// This node's own record as of `hlc`.
    func ownRecord(hlc: HLC, status: NodeStatus, apiPort: Int, schedule: (interval: UInt32, ttl: UInt32)) -> MediaNodeRecord {
        let base = config.publicURL ?? "http://\(HostPort(host: config.api.host, port: apiPort))"
        var load = Load(activeSessions: liveSessions.withLock { $0 })
        var avg = [0.0, 0.0, 0.0]
        if getloadavg(&avg, 3) == 3, config.capacity.cpuCores > 0 {
            load.cpuPermille = UInt32(min(1000, max(0, avg[0] / Double(config.capacity.cpuCores) * 1000)))
        }
        return MediaNodeRecord(
            publicKey: identity.publicKey, region: config.region.rawValue, geo: config.geo, url: base,
            discoveryURL: base, ip: config.api.host, metricsURL: base + "/metrics", version: Self.version,
            multiaddrs: announcedMultiaddrs, capacity: config.capacity, load: load, status: status, hlc: hlc,
            refreshIntervalSeconds: schedule.interval, ttlSeconds: schedule.ttl)
    }

    func health() -> HealthReport {
        let now = registry.clock()
        let (live, digest) = registry.withReplica { ($0.table.liveCount(nowMs: now), $0.table.liveDigest(nowMs: now)) }
        let storage = registry.storageStatus()
        var registryHealth = RegistryHealth(deferredRecords: storage.deferredRecords)
        if let d = storage.degraded {
            registryHealth.status = "degraded"
            (registryHealth.code, registryHealth.reason, registryHealth.error, registryHealth.sinceMs) = (d.code, d.reason, d.detail, d.sinceMs)
        }
        let estimate = meshClock.estimate
        let clockHealth = ClockHealth(
            status: estimate.status.rawValue, offsetMs: estimate.offsetMs, correctionMs: estimate.correctionMs,
            peers: estimate.peers, toleranceMs: ClockSkew.toleranceMs)
        let media = media.withLock { $0 }?.health()
        let degraded = registryHealth.isDegraded || media?.isAvailable == false || clockHealth.isRefused
        return HealthReport(
            status: degraded ? "degraded" : "ok", peerId: peerID.description, multiaddrs: announcedMultiaddrs,
            peers: host.connectedPeers.count, records: live, tableDigest: Hex.encode(digest), version: Self.version,
            registry: registryHealth, clockOffsetMs: estimate.offsetMs, clock: clockHealth, media: media, qosDigest: qos.digest(),
            receiptsDigest: receipts.digest())
    }

    /// Runs until SIGTERM/SIGINT (graceful: tombstone, LMDB closed) or cancellation.
    /// `onListening` receives the bound API address.
    public func run(onListening: @escaping @Sendable (HostPort) async -> Void = { _ in }) async throws {
        let boundPort = PortBox()
        let router = RegistryAPI.router(backend: Backend(node: self), metrics: metrics)
        if config.adminAPI { AdminAPI.add(to: router, host: host, logger: logger) }
        let media = MediaService(config: config, metrics: metrics, logger: logger, nodeTag: peerID.description)
        await media.start()
        self.media.withLock { $0 = media }
        let orchestration = Orchestration(node: self, media: media)
        OrchestratorAPI.add(to: router, backend: orchestration)
        // --open-media true: today's open WHIP/WHEP; else tokens and redirects (Specs/orchestrator.md).
        MediaAPI.add(to: router, media: media, access: config.openMedia ? nil : orchestration)
        let backend = Backend(node: self)
        RewardsAPI.add(to: router, backend: backend)
        DashboardAPI.add(to: router, backend: backend)
        QoSAPI.add(to: router, backend: backend)
        let qosGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let qosScheduler = QoSScheduler(QoSRuntime(
            config: config, identity: identity, host: host, registry: registry, qos: qos, gossip: gossip, media: media,
            metrics: metrics, logger: logger, clock: registry.clock, group: qosGroup))
        let app = Application(
            router: router,
            // Idle keep-alive connections (and requests that never complete) are closed.
            server: .http1(configuration: .init(idleTimeout: .seconds(60))),
            configuration: .init(address: .hostname(config.api.host, port: config.api.port), serverName: "drtc/\(Self.version)"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? self.config.api.port
                boundPort.set(port)
                let bound = HostPort(host: self.config.api.host, port: port)
                self.logger.notice("API listening", metadata: ["url": "http://\(bound)", "peerId": "\(self.peerID)"])
                await onListening(bound)
            },
            logger: logger)
        let lifecycle = RegistryLifecycle(node: self, apiPort: boundPort)
        let mesh = MeshService(node: self)
        let clockService = ClockService(host: host, clock: meshClock, metrics: metrics, logger: logger)
        // Listen before anything announces addresses.
        do {
            try await host.listen(config.listen)
        } catch {
            throw NodeStartError("--listen \(config.listen.map(\.description).joined(separator: " ")): \(error)")
        }
        // Shutdown runs in reverse order: the API stops first, then the registry writes the
        // tombstone and closes LMDB, then the QoS scheduler ends its tests and closes its store,
        // then the mesh closes its connections.
        let group = ServiceGroup(configuration: .init(
            services: [mesh, clockService, media, qosScheduler, lifecycle, orchestration, rewards, app],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        defer { Task { try? await qosGroup.shutdownGracefully() } }
        do {
            try await group.run()
        } catch where boundPort.get() == nil {
            throw NodeStartError("--api \(config.api): cannot serve the HTTP API: \(error)")
        }
    }
}

final class PortBox: Sendable {
    private let value = Synchronization.Mutex<Int?>(nil)
    func set(_ p: Int) { value.withLock { $0 = p } }
    func get() -> Int? { value.withLock { $0 } }
}

import Synchronization

/// Publishes the node's record at start and every refresh interval, collects garbage, and on
/// graceful shutdown publishes the signed tombstone and closes the store.
struct RegistryLifecycle: Service {
    let node: DrtcNode
    let apiPort: PortBox

    /// Signs, stores and gossips the node's record; returns the interval until the next one.
    @discardableResult
    func publish(_ status: NodeStatus) async throws -> UInt32 {
        let port = apiPort.get() ?? node.config.api.port
        let schedule = node.livenessSchedule()
        let signed = try await node.registry.publishOwn(
            { node.ownRecord(hlc: $0, status: status, apiPort: port, schedule: schedule) }, key: node.identity)
        node.gossip.publish(signed)
        return schedule.interval
    }

    func run() async throws {
        // Wait for the API to be bound, so the record's URL names the real port. A node whose
        // API never came up announces nothing.
        while apiPort.get() == nil && !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: .milliseconds(10))
        }
        guard apiPort.get() != nil else {
            node.registry.close()
            return
        }
        let first = try await publish(.active)
        node.logger.info("published own record", metadata: ["peerId": "\(node.peerID)", "refreshIntervalSeconds": "\(first)"])
        try? await cancelWhenGracefulShutdown {
            // Ticks every second: refresh when the interval has passed, and announce at once
            // when the gossip mesh goes from empty to non-empty (AnnouncePolicy); retry
            // writes a full disk refused. A failed tick is logged and the next one runs.
            // Local durations: on the monotonic clock, which neither the registry clock's
            // correction nor a stepped wall clock moves.
            var nextRefresh = monotonicMs() + UInt64(first) * 1000
            var nextGC = monotonicMs() + 600_000
            var announce = AnnouncePolicy()
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                let now = monotonicMs()
                await node.registry.retryDeferredWrites()
                if announce.shouldAnnounce(meshPeers: node.gossip.meshSize) || now >= nextRefresh {
                    do {
                        nextRefresh = now + UInt64(try await publish(.active)) * 1000
                    } catch {
                        node.logger.error("could not refresh own record; retrying in 5 s", metadata: ["error": "\(error)"])
                        nextRefresh = now + 5_000
                    }
                }
                if now >= nextGC {
                    nextGC = now + 600_000
                    node.registry.collectGarbage()
                    node.receipts.collectGarbage()
                }
            }
        }
        var tombstoned = false
        do {
            try await publish(.leaving)
            tombstoned = true
        } catch {
            node.logger.error("could not write the tombstone", metadata: ["error": "\(error)"])
        }
        let degraded = node.registry.storageStatus().degraded
        // Closing makes a last attempt at writing what a full disk refused.
        let unwritten = node.registry.close()
        if tombstoned && unwritten == 0 {
            node.logger.notice("left gracefully: tombstone written", metadata: ["peerId": "\(node.peerID)"])
        } else if tombstoned {
            node.logger.error("left: tombstone gossiped, but not written to disk (the store refuses writes)", metadata: [
                "peerId": "\(node.peerID)", "reason": "\(degraded?.reason ?? "?")", "error": "\(degraded?.detail ?? "?")"])
        }
    }
}

/// Adapts the node to the HTTP API's backend protocols.
struct Backend: RegistryBackend, QoSBackend {
    let node: DrtcNode

    func health() -> HealthReport { node.health() }

    func getMediaNodes(_ query: NodeQuery) -> [(record: SignedRecord, distanceKm: Double?)] {
        let now = node.registry.clock()
        let agg = node.qos.aggregate()
        // Ranking by quality only once someone is measured (Specs/qos.md "Aggregation").
        let quality: ((PeerID) -> Double?)? = agg.nodes.isEmpty ? nil : { id in NodeKey(peerID: id).flatMap { agg.nodes[$0]?.score } }
        return node.registry.withReplica { $0.getMediaNodes(query, nowMs: now, quality: quality) }
    }

    func qos(of id: PeerID) -> NodeQoS? { NodeKey(peerID: id).map { node.qos.aggregate().qos(of: $0) } }

    var qosSchedule: QoSSchedule { node.qos.schedule }
    func qosAggregate() -> QoSAggregate { node.qos.aggregate() }
    func qosBundles(epoch: UInt64?) -> [SignedQoSBundle] {
        node.qos.withLedger { l in epoch.map { l.bundles(epoch: $0) } ?? l.epochs.flatMap { l.bundles(epoch: $0) } }
    }
    func qosSamples(hash: [UInt8]) -> SampleSeries? { node.qos.samples(hash: hash) }
    func apiURL(of node: PeerID) -> String? { self.node.registry.withReplica { $0.table[node]?.record.url } }

    func record(for id: PeerID) -> SignedRecord? {
        node.registry.withReplica { $0.table[id] }
    }

    func listMediaNodes(after cursor: String?, limit: Int) -> (page: [SignedRecord], next: String?) {
        let now = node.registry.clock()
        return node.registry.withReplica { $0.listMediaNodes(after: cursor, limit: limit, nowMs: now) }
    }

    /// Registration (whitepaper 4.2.3.1): a record that wins the merge is gossiped to the mesh
    /// like any update; the owner's signature, not ours, is what every peer checks.
    func submit(encodedRecord: [UInt8]) async throws -> SubmitResult {
        let result: SubmitResult
        do {
            result = try await node.registry.submit(encoded: encodedRecord)
        } catch let e as RegistryStorageError {
            throw APIError.storage(e)
        } catch is RegistryClosedError {
            throw APIError(.serviceUnavailable, code: "shutting_down", "the node is shutting down; submit the record to another node")
        }
        if case .merged(let record, .accepted) = result, record.isLive(nowMs: node.registry.clock()) || record.record.status == .leaving {
            node.gossip.publish(record)
        }
        return result
    }

    func nowMs() -> UInt64 { node.registry.clock() }
}

extension Backend: RewardsBackend, DashboardBackend {
    func sessionReceipts(node id: PeerID?, epoch: UInt64?) -> [SignedSessionReceipt] {
        node.receipts.withSet { $0.receipts(epoch: epoch, node: id) }
    }

    var streamBitrateKbps: Double { node.config.rewardParameters.streamBitrateKbps }

    func rewardLedger(epoch: UInt64?) throws(RewardsLookupError) -> RewardsReport {
        try node.rewards.report(epoch: epoch)
    }

    func dashboardOverview() async -> DashboardOverview {
        let health = node.health()
        let now = node.registry.clock()
        let epochs = node.rewards.epochs
        let e = epochs.epoch(atMs: now)
        let media = await node.media.withLock({ $0 })?.dashboardMedia()
            ?? DashboardOverview.Media(status: "unavailable", sessions: 0, producers: 0, consumers: 0, rooms: [])
        let own = node.registry.withReplica { $0.table[node.peerID] }
        let ownQoS = NodeKey(peerID: node.peerID).map { node.qos.aggregate().qos(of: $0) }
        return DashboardOverview(
            peerId: health.peerId, region: node.config.region.rawValue,
            position: node.config.geo.map { .init(latitude: $0.latitude, longitude: $0.longitude) },
            version: health.version, status: health.status, url: own?.record.url ?? "", multiaddrs: health.multiaddrs,
            startedAtMs: node.startedAtMs, nowMs: now, peers: health.peers, records: health.records, tableDigest: health.tableDigest,
            qos: .init(score: ownQoS?.score, measured: ownQoS?.measured ?? false,
                       source: "QoS set: \(ownQoS?.reports ?? 0) counted reports in the last measured epoch (Specs/qos.md \"Aggregation\")"),
            epoch: .init(epoch: e, epochSeconds: epochs.epochSeconds, startMs: epochs.startMs(e), endMs: epochs.endMs(e)),
            rewards: node.rewards.ownHistory(count: 6), rewardSources: RewardsService.sources, media: media)
    }

    func dashboardNodesVersion() -> String {
        let generation = node.registry.withReplica { $0.table.generation }
        // Liveness changes with time alone (a record expires): the second is part of the version.
        return "\(generation)-\(node.registry.clock() / 1000)"
    }

    func dashboardNodes() -> [DashboardNodeRow] {
        let now = node.registry.clock()
        let scores = node.qos.aggregate().measuredScores()
        return node.registry.withReplica { replica in
            replica.table.liveRecords(nowMs: now).map { signed in
                let r = signed.record
                return DashboardNodeRow(
                    nodeId: r.nodeID.description, region: r.region, latitude: r.geo?.latitude, longitude: r.geo?.longitude,
                    load: 1 - r.loadHeadroom, sessions: Int(r.load.activeSessions), maxSessions: Int(r.capacity.maxSessions),
                    qos: scores[signed.nodeID], version: r.version, expiresAtMs: signed.expiresAtMs, url: r.url)
            }
        }
    }
}

extension APIError {
    /// A write the registry did not commit (Specs/registry.md "A full disk"): 507
    /// `storage_full` when the disk (or the database's size limit) has no room, else 503
    /// `storage_error`. Either way nothing was acknowledged.
    static func storage(_ e: RegistryStorageError) -> APIError {
        if e.code == "storage_full" {
            return APIError(.init(code: 507, reasonPhrase: "Insufficient Storage"), code: e.code,
                            "the node's storage is full (\(e.reason)): the record was not stored; registry commit failed, merge not acknowledged. Retry later or submit to another node")
        }
        var error = APIError(.serviceUnavailable, code: e.code,
                             "the node's storage failed (\(e.reason)): the record was not stored; registry commit failed, merge not acknowledged. Retry later or submit to another node")
        error.headers[.retryAfter] = "10"
        return error
    }
}

public struct NodeStartError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

/// An exclusive `flock` on `<data-dir>/drtc.lock`, held for the node's lifetime (the kernel
/// releases it if the process dies, so a crash never leaves the directory locked).
final class DataDirLock: Sendable {
    private let fd: Int32

    init(directory: String) throws {
        let path = directory + "/drtc.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw NodeStartError("--data-dir \(directory): cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(fd)
            throw NodeStartError("--data-dir \(directory) is in use by another drtc process (pid \(holder)); stop it or choose another --data-dir")
        }
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    deinit { close(fd) }
}
