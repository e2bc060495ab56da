import HTTPAPI
import Hummingbird
import Identity
import Libp2p
import Libp2pNIO
import Logging
import Registry
import RegistryGossip
import ServiceLifecycle

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Keeps the node in the mesh: runs the gossip heartbeat and anti-entropy, dials peers (the
/// bootstrap list, peers learned by PX, and nodes in the table) while it has fewer than
/// `minPeers` connections, trims above `maxPeers`, and closes everything on shutdown.
struct MeshService: Service {
    let node: DrtcNode

    func run() async throws {
        let gossip = node.gossip
        gossip.start()
        try? await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await heartbeats() }
                group.addTask { await antiEntropy() }
                group.addTask { await maintainConnections() }
                await group.waitForAll()
            }
        }
        // Give the tombstone (gossiped during the registry's shutdown) a moment on the wire.
        try? await Task.sleep(for: .milliseconds(300))
        gossip.stop()
        await node.host.shutdown()
    }

    private func heartbeats() async {
        let interval = Duration.milliseconds(Int64(node.config.gossipHeartbeatMs))
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            node.gossip.heartbeat()
        }
    }

    private func antiEntropy() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: .seconds(Int64(node.config.syncIntervalSeconds))) } catch { return }
            await node.gossip.requestSync(with: nil)
        }
    }

    private func maintainConnections() async {
        // Backoffs, connection ages and the exploration interval are local durations: they run
        // on the monotonic clock, so a wall clock stepped backwards (NTP, a VM resumed) neither
        // traps on an unsigned subtraction nor freezes dialling until it catches up. The wall
        // clock only judges records' liveness.
        var planner = DialPlanner()
        var lastExplore = monotonicMs()
        /// When each connection was first seen (its age for the trim grace period).
        var since: [PeerID: UInt64] = [:]
        while !Task.isCancelled {
            let now = monotonicMs()
            let connected = Set(node.host.connectedPeers)
            since = since.filter { connected.contains($0.key) }
            for peer in connected where since[peer] == nil {
                since[peer] = now
                // Inbound too: a peer that was out of reach and now reaches us ends the backoffs.
                planner.succeeded(peer)
            }
            Task { await node.gossip.syncTick() }
            if connected.count < node.config.minPeers {
                await dialMore(node.config.minPeers - connected.count, connected: connected, planner: &planner, now: now)
            } else if connected.count > node.config.maxPeers {
                trim(since: since, now: now)
            } else if connected.count < node.config.maxPeers && now &- lastExplore >= node.config.syncIntervalSeconds * 1000 {
                // Exploration: one extra random peer per sync interval keeps the graph random
                // and reconnects the two sides of a healed partition, whose nodes each still
                // have enough peers on their own side never to dial otherwise.
                lastExplore = now
                await dialMore(1, connected: connected, planner: &planner, now: now, preferLive: false)
            }
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
        }
    }

    /// `now` is monotonic milliseconds (the planner's backoffs).
    private func dialMore(_ missing: Int, connected: Set<PeerID>, planner: inout DialPlanner, now: UInt64, preferLive: Bool = true) async {
        let denied = node.host.deniedPeers
        var addresses: [PeerID: Multiaddr] = [:]
        var candidates: [(peer: PeerID, region: String)] = []
        // The table: every active record carries its owner's multiaddrs. Expired ones count
        // too (a partition expires the other side's records; dial backoff covers dead nodes),
        // but live ones are preferred.
        let wallNow = node.registry.clock()
        let (live, expired) = node.registry.withReplica { r in
            let all = r.table.records.filter { $0.record.status == .active }
            return (all.filter { $0.isLive(nowMs: wallNow) }, all.filter { !$0.isLive(nowMs: wallNow) })
        }
        func collect(_ records: [SignedRecord]) {
            for record in records {
                let peer = record.nodeID
                guard peer != node.peerID, !connected.contains(peer), !denied.contains(peer), planner.mayDial(peer, now: now),
                      let address = record.record.multiaddrs.lazy.compactMap({ try? Multiaddr($0) }).first(where: { $0.tcpEndpoint != nil })
                else { continue }
                addresses[peer] = address
                candidates.append((peer, record.record.region))
            }
        }
        collect(live)
        if candidates.count < missing || !preferLive { collect(expired) }
        // Peer exchange: PX names peers; the table supplies their addresses.
        let exchanged = node.gossip.discovered.withLock { d -> [PeerID] in
            defer { d = [] }
            return d
        }
        // The bootstrap peers, when the table cannot fill the gap (first start, partition).
        var bootstrap: [PeerID] = []
        for address in node.config.bootstrap {
            guard let peer = address.peerID, !connected.contains(peer), !denied.contains(peer), planner.mayDial(peer, now: now),
                  addresses[peer] == nil else { continue }
            addresses[peer] = address
            bootstrap.append(peer)
        }
        var rng = SystemRandomNumberGenerator()
        let targets = DialPlanner.targets(missing: missing, exchanged: exchanged, candidates: candidates, bootstrap: bootstrap, using: &rng)
        await withTaskGroup(of: (PeerID, Bool).self) { group in
            for peer in targets {
                guard let address = addresses[peer] else { continue }
                let full = address.peerID == nil ? (try? Multiaddr(address.description + "/p2p/\(peer)")) ?? address : address
                group.addTask {
                    do {
                        try await node.host.dial(full)
                        return (peer, true)
                    } catch {
                        node.logger.debug("dial failed", metadata: ["address": "\(full)", "error": "\(error)"])
                        return (peer, false)
                    }
                }
            }
            for await (peer, ok) in group {
                if ok { planner.succeeded(peer) } else { planner.failed(peer, now: now) }
            }
        }
    }

    /// Closes what `DialPlanner.connectionsToClose` picks: settled connections above
    /// `--max-peers` (inbound and non-mesh first) and surplus young inbound ones.
    private func trim(since: [PeerID: UInt64], now: UInt64) {
        let mesh = node.gossip.meshPeers()
        var rng = SystemRandomNumberGenerator()
        let connections = node.host.connections.map { ($0.peer, $0.outbound, now &- (since[$0.peer] ?? now)) }
        for peer in DialPlanner.connectionsToClose(connections, mesh: mesh, maxPeers: node.config.maxPeers, using: &rng) {
            node.logger.debug("trimming connection", metadata: ["peer": "\(peer)"])
            node.host.disconnect(peer)
        }
    }
}

/// `/admin/deny` and `/admin/allow` (only with `--admin-api true`, which the configuration
/// accepts only for a loopback `--api`): the connection gater, which tests use to cut and heal
/// the mesh. Specs/gossip.md documents them.
enum AdminAPI {
    static func add(to router: Router<BasicRequestContext>, host: Libp2pHost, logger: Logger) {
        router.post("/admin/deny") { request, context in try gate(request, context, host: host, logger: logger, deny: true) }
        router.post("/admin/allow") { request, context in try gate(request, context, host: host, logger: logger, deny: false) }
    }

    static func gate(_ request: Request, _ context: BasicRequestContext, host: Libp2pHost, logger: Logger, deny: Bool) throws -> Response {
        guard let text = request.uri.queryParameters.get("peer") else {
            throw APIError.badParameter("peer", "required, a PeerID (12D3KooW…)")
        }
        guard let peer = try? PeerID(text) else { throw APIError.badParameter("peer", "not a PeerID: '\(text)'") }
        if deny { host.deny(peer) } else { host.allow(peer) }
        logger.notice(deny ? "peer denied by admin request" : "peer allowed by admin request", metadata: ["peer": "\(peer)"])
        return Response(status: .noContent)
    }
}
