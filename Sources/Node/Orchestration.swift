// The orchestrator on every peer (Specs/orchestrator.md) and the media node's side of the signed
// RPC (Specs/rpc.md): allocation, placement ownership and replication, health probes, pipe set-up
// and track announcements, media tokens on WHIP/WHEP. Decisions come from the pure
// `Orchestrator` core; this file only gathers inputs (registry, health, time) and carries out
// the results over RPC and the media engine.
import HTTPAPI
import HTTPTypes
import Identity
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Orchestrator
import Registry
import Rewards
import SFU
import ServiceLifecycle
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

final class Orchestration: Service, OrchestratorBackend, MediaAccessControl {
    struct Health {
        var lastOK: UInt64 = 0
        var failures = 0
        /// Not allocated to (and not asked to own rooms) until then.
        var downUntil: UInt64 = 0
        var sessions: Int?
        var rooms: Set<String> = []
        /// The pipes the node had (ids), and when the status that said so was asked for.
        var pipes: Set<String> = []
        var statusAt: UInt64 = 0
    }

    struct RoomNode: Hashable {
        var room: String
        var node: PeerID
    }

    struct State {
        /// Rooms this peer owns: the authoritative placement.
        var owned: [String: RoomPlacement] = [:]
        /// Copies of placements owned elsewhere (or formerly here).
        var replicas: [String: RoomPlacement] = [:]
        /// When each (room, node) entered a placement owned here.
        var joinedAt: [RoomNode: UInt64] = [:]
        var recent = RecentAllocations()
        var health: [PeerID: Health] = [:]
        var replay = ReplayCache()
        var seed: UInt64 = 0
        /// Placements to push to their replica holders.
        var toReplicate: [String: RoomPlacement] = [:]
        /// Announcements that failed, to retry: pipe → attempts.
        var announceRetries: [String: Int] = [:]
        /// Per pipe: a node status asked for after this time that lacks the pipe means it was
        /// lost. Set when the pipe was dialled (it was connected then), and 5 s ahead after a
        /// failed repair, so a repair that keeps failing is retried (and logged) every 5 s.
        var pipeCheckAfter: [String: UInt64] = [:]
        var texts = PeerIDTexts()
    }

    static let maxReplicas = 2
    static let candidateCount = 16
    static let downForMs: UInt64 = 30_000

    let node: DrtcNode
    let media: MediaService
    let rpc: RPCClient
    let policy: PlannerPolicy
    let state = Mutex(State())
    let ring = Mutex<(ring: OwnerRing, checkedAt: UInt64)?>(nil)
    let locks = RoomLocks()
    let logger: Logger
    let allowlist: Set<PeerID>
    /// Session receipts: tokens issued and rooms seen (orchestrator), admissions and the
    /// accumulator (media node). `Orchestration+Receipts.swift`.
    let receipts: Mutex<ReceiptBook>

    init(node: DrtcNode, media: MediaService) {
        self.node = node
        self.media = media
        self.logger = node.logger
        meText = node.peerID.description
        rpc = RPCClient(identity: node.identity, group: MultiThreadedEventLoopGroup.singleton, clock: node.registry.clock)
        policy = PlannerPolicy(version: DrtcNode.version)
        allowlist = Set(node.config.trustedOrchestrators)
        state.withLock { $0.seed = UInt64.random(in: 0...UInt64.max) }
        receipts = Mutex(ReceiptBook(accumulator: ReceiptAccumulator(node: node.identity.publicKeyBytes, epochSeconds: node.config.qosSchedule.epochSeconds)))
        media.onPipeEvent { [weak self] event in self?.pipeEvent(event) }
    }

    var me: PeerID { node.peerID }
    /// Its text form, made once (base58 costs microseconds, and every token names the issuer).
    let meText: String
    var now: UInt64 { node.registry.clock() }

    // MARK: key policy

    /// Which keys may command this node and sign its media tokens (Specs/rpc.md "Accepted
    /// keys"): its own; on an allowlist when the operator set one; else any with a live record.
    func accepts(_ id: PeerID) -> Bool {
        if id == me { return true }
        if !allowlist.isEmpty { return allowlist.contains(id) }
        let now = self.now
        return node.registry.withReplica { $0.table[id] }?.isLive(nowMs: now) ?? false
    }

    func authenticate(payload: String?, signature: String?, method: String, path: String, body: [UInt8]) throws(RPCAuthError) -> RPCCaller {
        let now = self.now
        do {
            let caller = try SignedRPC.verify(
                payload: payload, signature: signature, method: method, path: path, body: body, audience: me, nowMs: now,
                accepts: accepts, remember: { id, nonce, until in self.state.withLock { $0.replay.insert(caller: id, nonce: nonce, until: until, nowMs: now) } })
            node.metrics.counter("drtc_rpc_requests_total", "result", "accepted").increment()
            return caller
        } catch {
            node.metrics.counter("drtc_rpc_rejections_total", "code", error.code.rawValue).increment()
            logger.info("RPC call refused", metadata: ["path": "\(path)", "code": "\(error.code)"])
            throw error
        }
    }

    // MARK: allocation (public)

    func allocate(_ request: AllocateRequestJSON) async throws -> AllocationJSON {
        var request = request
        if request.lat == nil, let geo = node.config.geo {
            // The client did not say where it is: it asked this peer, so it is probably near it.
            request.lat = geo.latitude
            request.lon = geo.longitude
        }
        for owner in owners(of: request.room) {
            if owner == me { return try await allocateAsOwner(request) }
            guard let record = record(owner) else { continue }
            do {
                let response = try await rpc.call(owner, baseURL: record.record.url, method: .POST, path: "/rpc/v1/allocate",
                                                  body: try APIJSON.encode(request))
                if response.ok { return try JSONDecoder().decode(AllocationJSON.self, from: Data(response.body)) }
                // The owner decided (no capacity, bad input): its answer is the answer.
                throw Self.relay(response)
            } catch let error as RPCTransportError {
                markDown(owner, why: "allocate forward: \(error)")
            }
        }
        // Every owner candidate is down: this peer plans the room itself (and replicates it).
        return try await allocateAsOwner(request)
    }

    func allocateAsOwner(_ request: AllocateRequestJSON, caller: RPCCaller) async throws -> AllocationJSON {
        try await allocateAsOwner(request)
    }

    func allocateAsOwner(_ request: AllocateRequestJSON) async throws -> AllocationJSON {
        try await locks.withLock(request.room) {
            var placement = await self.currentPlacement(request.room)
            // Versions only grow: a room planned afresh after every node left it still follows
            // the versions its replicas hold, or they would refuse it as stale.
            let versionFloor = placement?.version ?? 0
            if var p = placement {
                await self.prune(&p)
                placement = p.nodes.isEmpty ? nil : p
            }
            let position = request.lat.flatMap { lat in request.lon.map { GeoPoint(latitude: lat, longitude: $0) } }
            let want = AllocationRequest(room: request.room, role: request.role, position: position, region: request.region,
                                         strategy: request.strategy ?? .auto)
            var lastError: (any Error)?
            for _ in 0..<3 {
                let (candidates, recent, seed) = self.candidates(for: want, placement: placement)
                var decision: Decision
                do {
                    decision = try Planner.plan(want, candidates: candidates, placement: placement, recent: recent, policy: self.policy,
                                                owner: self.meText, nowMs: self.now, seed: seed)
                } catch let error as PlanError {
                    self.node.metrics.counter("drtc_orchestrator_allocations_total", "result", "no_capacity").increment()
                    var api = APIError(.serviceUnavailable, code: error.code.rawValue, "no media node can take this client now: \(error.message)")
                    api.headers[.retryAfter] = "2"
                    throw api
                }
                if decision.placement.version <= versionFloor { decision.placement.version = versionFloor + 1 }
                do {
                    try await self.prepare(decision, room: request.room)
                } catch {
                    lastError = error
                    self.markDown(decision.node.id, why: "allocation: \(error)")
                    if var p = placement, p.node(decision.node.id) != nil {
                        _ = p.remove(decision.node.id)
                        placement = p.nodes.isEmpty ? nil : p
                    }
                    continue  // re-plan without it (it is marked down)
                }
                return self.commit(decision, request: request)
            }
            var api = APIError(.serviceUnavailable, code: "no_capacity", "the chosen media nodes did not answer: \(lastError.map { "\($0)" } ?? "?")")
            api.headers[.retryAfter] = "2"
            throw api
        }
    }

    /// Makes the chosen node ready: a pipe to its parent when it joins the room, the room
    /// reserved when it starts it, a health check when it is already in the room and quiet.
    func prepare(_ d: Decision, room: String) async throws {
        let id = d.node.id
        if let pipe = d.newPipe, let parent = d.placement.node(pipe.parent) {
            let body = try APIJSON.encode(PipeRequestJSON(room: room, pipeId: pipe.id(room: room), peer: pipe.parent.description, peerUrl: parent.url))
            try await call(id, url: d.node.url, method: .POST, path: "/rpc/v1/pipes", body: body, timeout: .seconds(8))
            state.withLock { $0.pipeCheckAfter[pipe.id(room: room)] = now }
        } else if d.placement.node(id) != nil, state.withLock({ $0.owned[room]?.node(id) == nil }) {
            try await call(id, url: d.node.url, method: .POST, path: "/rpc/v1/rooms", body: try APIJSON.encode(RoomRequestJSON(room: room)))
        } else if now > (state.withLock { $0.health[id]?.lastOK } ?? 0) + 5_000 {
            try await call(id, url: d.node.url, method: .GET, path: "/rpc/v1/status", timeout: .seconds(2))
        }
        state.withLock { $0.health[id, default: Health()].lastOK = now }
    }

    func commit(_ d: Decision, request: AllocateRequestJSON) -> AllocationJSON {
        let now = self.now
        let nodeText = state.withLock { s in
            s.owned[request.room] = d.placement
            s.replicas[request.room] = nil
            s.recent.record(d.node.id, nowMs: now)
            let key = RoomNode(room: request.room, node: d.node.id)
            if s.joinedAt[key] == nil { s.joinedAt[key] = now }
            s.toReplicate[request.room] = d.placement
            return s.texts.text(d.node.id)
        }
        node.metrics.counter("drtc_orchestrator_allocations_total", "result", "allocated").increment()
        noteIssued(room: request.room, node: d.node.id, role: request.role, atMs: now)
        let exp = now + MediaToken.defaultValidityMs
        let token = MediaToken.issue(MediaTokenClaims(iss: meText, aud: nodeText, room: request.room,
                                                      role: request.role, iat: now, exp: exp), key: node.identity)
        let path = request.role == .publish ? "/whip/" : "/whep/"
        return AllocationJSON(room: request.room, role: request.role, nodeId: nodeText, url: d.node.url + path + request.room,
                              token: token, expiresAtMs: exp, strategy: d.strategy)
    }

    /// Candidates for one request: the nearest live records (in the request's region for the
    /// regional strategy) and the room's own nodes, with what health probes learned.
    func candidates(for r: AllocationRequest, placement: RoomPlacement?) -> ([NodeCandidate], RecentAllocations, UInt64) {
        let now = self.now
        let region = (placement?.strategy ?? r.strategy) == .regional ? r.region : nil
        var records = node.registry.withReplica { replica -> [SignedRecord] in
            func query(_ region: String?) -> [SignedRecord] {
                if let p = r.position { return replica.nearest(p, k: Self.candidateCount, region: region, nowMs: now) }
                return replica.getMediaNodes(NodeQuery(region: region, limit: Self.candidateCount), nowMs: now).map(\.record)
            }
            var out = query(region)
            if out.isEmpty, region != nil { out = query(nil) }
            for n in placement?.nodes ?? [] {
                if let rec = replica.table[n.nodeID], rec.isLive(nowMs: now), !out.contains(where: { $0.nodeID == n.nodeID }) {
                    out.append(rec)
                }
            }
            return out
        }
        records.removeAll { !$0.isLive(nowMs: now) }
        let scores = node.qos.aggregate().measuredScores()
        return state.withLock { s in
            s.seed &+= 0x9E37_79B9_7F4A_7C15
            let candidates = records.map { rec -> NodeCandidate in
                let h = s.health[rec.nodeID]
                var c = NodeCandidate(record: rec, qosScore: scores[rec.nodeID], healthy: (h?.downUntil ?? 0) <= now)
                if let probed = h?.sessions { c.sessions = max(c.sessions, probed) }
                return c
            }
            return (candidates, s.recent, s.seed)
        }
    }

    // MARK: ownership and replicas

    /// The peers that may own `room`, best first: the room's owner on the ring of live peers
    /// running a compatible version, then its two replica holders, skipping peers marked down.
    func owners(of room: String) -> [PeerID] {
        let now = self.now
        let ring = ownerRing(now: now)
        return state.withLock { s in
            ring.owners(of: room, count: Self.maxReplicas + 1, skip: { $0 != self.me && (s.health[$0]?.downUntil ?? 0) > now })
        }
    }

    /// The ring, rebuilt when the set of live compatible peers changes (looked at once a second).
    func ownerRing(now: UInt64) -> OwnerRing {
        if let cached = ring.withLock({ $0 }), now < cached.checkedAt + 1000 { return cached.ring }
        var peers = node.registry.withReplica { r in
            r.table.records.filter { $0.isLive(nowMs: now) && policy.compatible($0.record.version) }.map(\.nodeID)
        }
        peers.append(me)
        let members = Set(peers)
        return ring.withLock { cache in
            if let cached = cache, cached.ring.peers == members {
                cache!.checkedAt = now
                return cached.ring
            }
            let built = OwnerRing(peers: members)
            cache = (built, now)
            return built
        }
    }

    /// This peer's placement of `room`, or else the newest copy among the room's replica holders.
    func currentPlacement(_ room: String) async -> RoomPlacement? {
        if let owned = state.withLock({ $0.owned[room] }) { return owned }
        var best = state.withLock { $0.replicas[room] }
        await withTaskGroup(of: RoomPlacement?.self) { group in
            for peer in owners(of: room) where peer != me {
                guard let rec = record(peer) else { continue }
                group.addTask {
                    guard let r = try? await self.rpc.call(peer, baseURL: rec.record.url, method: .GET, path: "/rpc/v1/placements/\(room)",
                                                           timeout: .seconds(1)), r.ok else { return nil }
                    return try? JSONDecoder().decode(RoomPlacement.self, from: Data(r.body))
                }
            }
            for await p in group {
                if let p, p.version > (best?.version ?? 0), (try? p.validate()) != nil { best = p }
            }
        }
        return best.flatMap { $0.nodes.isEmpty ? nil : $0 }
    }

    func placement(_ room: String, caller: RPCCaller) async throws -> RoomPlacement {
        guard let p = state.withLock({ $0.owned[room] ?? $0.replicas[room] }), !p.nodes.isEmpty else {
            throw APIError(.notFound, code: "unknown_room", "no placement of room \(room) here")
        }
        return p
    }

    func storePlacement(_ p: RoomPlacement, caller: RPCCaller) async throws -> Bool {
        state.withLock { s in
            let have = max(s.owned[p.room]?.version ?? 0, s.replicas[p.room]?.version ?? 0)
            guard p.version > have else { return false }
            s.replicas[p.room] = p
            s.owned[p.room] = nil  // a newer version was written by another owner
            return true
        }
    }

    /// Pushes changed placements to the room's other owner candidates.
    func replicate() async {
        let batch = state.withLock { s -> [RoomPlacement] in
            defer { s.toReplicate.removeAll() }
            return Array(s.toReplicate.values)
        }
        await withTaskGroup(of: Void.self) { group in
            for p in batch {
                guard let body = try? APIJSON.encode(p) else { continue }
                for peer in owners(of: p.room) where peer != me {
                    guard let rec = record(peer) else { continue }
                    group.addTask {
                        _ = try? await self.rpc.call(peer, baseURL: rec.record.url, method: .PUT, path: "/rpc/v1/placements/\(p.room)",
                                                     body: body, timeout: .seconds(1))
                    }
                }
            }
        }
    }

    // MARK: failures

    func markDown(_ id: PeerID, why: String) {
        guard id != me else { return }
        let now = self.now
        let first = state.withLock { s -> Bool in
            let wasUp = (s.health[id]?.downUntil ?? 0) <= now
            s.health[id, default: Health()].downUntil = now + Self.downForMs
            s.health[id, default: Health()].failures += 1
            return wasUp
        }
        if first {
            node.metrics.counter("drtc_orchestrator_nodes_marked_down_total", "reason", "rpc").increment()
            logger.notice("media node marked down", metadata: ["node": "\(id)", "why": "\(why)"])
        }
    }

    /// Removes from a placement the nodes that are gone (no live record, marked down, or no
    /// longer hosting the room well after joining it), and rebuilds the pipes of their children
    /// and the pipes a node lost (it hosts the room but its status no longer lists the pipe:
    /// the pipe's socket failed, consent or DTLS was lost).
    func prune(_ p: inout RoomPlacement) async {
        let now = self.now
        var gone: [PeerID] = []
        for n in p.nodes {
            let id = n.nodeID
            let (down, hosts, joined) = state.withLock { s in
                // A node of a placement continued from a replica joined before this peer knew of
                // it: its grace period starts now, not at the epoch (which once dropped a live
                // node from the room it served, because the probe of it predated the room).
                let key = RoomNode(room: p.room, node: id)
                if s.joinedAt[key] == nil { s.joinedAt[key] = now }
                return ((s.health[id]?.downUntil ?? 0) > now, s.health[id].map { $0.lastOK > 0 && $0.rooms.contains(p.room) }, s.joinedAt[key]!)
            }
            let live = record(id) != nil
            let abandoned = hosts == false && now > joined + 90_000
            if !live || down || abandoned { gone.append(id) }
        }
        let lost = lostPipes(p, gone: gone)
        guard !gone.isEmpty || !lost.isEmpty else { return }
        var rebuild: [RoomPlacement.Pipe] = []
        var orphaned: [RoomPlacement.Pipe] = []
        for g in gone {
            // The gone node's parent stops sending to it (consent would take 30 s).
            if let parent = p.node(g)?.parent, !gone.contains(parent) { orphaned.append(.init(parent: parent, child: g)) }
            rebuild += p.remove(g)
            rebuild.removeAll { $0.parent == g || $0.child == g }
            logger.notice("node removed from room", metadata: ["room": "\(p.room)", "node": "\(g)"])
        }
        let room = p.room
        for pipe in lost {
            // The parent's end may still wait for consent: closed first, so the new dial with the
            // same id is accepted.
            orphaned.append(pipe)
            rebuild.append(pipe)
            logger.notice("pipe lost: dialling it again", metadata: [
                "room": "\(room)", "pipe": "\(pipe.id(room: room))", "child": "\(pipe.child)", "parent": "\(pipe.parent)"])
        }
        if !gone.isEmpty {
            let updated = p
            state.withLock { s in
                if s.owned[room] != nil {
                    s.owned[room] = updated.nodes.isEmpty ? nil : updated
                    s.toReplicate[room] = updated
                }
            }
        }
        for pipe in orphaned {
            guard let parent = p.node(pipe.parent) else { continue }
            _ = try? await call(parent.nodeID, url: parent.url, method: .DELETE, path: "/rpc/v1/pipes/\(pipe.id(room: room))", timeout: .seconds(1))
        }
        for pipe in rebuild {
            guard let child = p.node(pipe.child), let parent = p.node(pipe.parent) else { continue }
            let id = pipe.id(room: room)
            let body = (try? APIJSON.encode(PipeRequestJSON(room: room, pipeId: id, peer: parent.nodeId, peerUrl: parent.url))) ?? []
            let repair = lost.contains(pipe)
            do {
                try await call(child.nodeID, url: child.url, method: .POST, path: "/rpc/v1/pipes", body: body, timeout: .seconds(8))
                state.withLock { $0.pipeCheckAfter[id] = self.now }
                if repair { node.metrics.counter("drtc_orchestrator_pipe_repairs_total", "result", "redialled").increment() }
            } catch {
                if repair {
                    node.metrics.counter("drtc_orchestrator_pipe_repairs_total", "result", "failed").increment()
                    state.withLock { $0.pipeCheckAfter[id] = self.now + 5_000 }
                }
                logger.warning("could not rebuild a pipe", metadata: ["room": "\(room)", "child": "\(child.nodeId)", "error": "\(error)"])
            }
        }
    }

    /// The placement's pipes whose child, by a status asked for after the pipe was last
    /// dialled, hosts the room without it (both ends staying in the room).
    func lostPipes(_ p: RoomPlacement, gone: [PeerID]) -> [RoomPlacement.Pipe] {
        state.withLock { s in
            p.pipes.filter { pipe in
                guard !gone.contains(pipe.child), !gone.contains(pipe.parent), let h = s.health[pipe.child] else { return false }
                let id = pipe.id(room: p.room)
                return h.statusAt > (s.pipeCheckAfter[id] ?? 0) && h.rooms.contains(p.room) && !h.pipes.contains(id)
            }
        }
    }

    /// Probes every node of the rooms owned here once a second and repairs placements.
    func probe() async {
        let now = self.now
        let owned = state.withLock { s -> [RoomPlacement] in
            // Forget the pipes no room owned here has any more (a pipe dialled for an allocation
            // not committed yet is recent).
            let pipes = Set(s.owned.values.flatMap { p in p.pipes.map { $0.id(room: p.room) } })
            s.pipeCheckAfter = s.pipeCheckAfter.filter { pipes.contains($0.key) || $0.value + 60_000 > now }
            return Array(s.owned.values)
        }
        let nodes = Set(owned.flatMap { $0.nodes.map(\.nodeID) })
        await withTaskGroup(of: Void.self) { group in
            for id in nodes where id != me {
                guard let rec = record(id) else { continue }
                group.addTask { await self.probe(id, url: rec.record.url) }
            }
        }
        if nodes.contains(me) {
            let asked = self.now
            let status = await media.roomStatus(nil)
            let answered = self.now
            noteSightings(status, node: me, atMs: answered)
            state.withLock { s in
                s.health[me, default: Health()].lastOK = answered
                s.health[me, default: Health()].rooms = Set(status.map(\.room))
                s.health[me, default: Health()].pipes = Set(status.flatMap { $0.pipes.map(\.id) })
                s.health[me, default: Health()].statusAt = asked
            }
        }
        for room in owned.map(\.room) {
            await locks.withLock(room) {
                guard var p = self.state.withLock({ $0.owned[room] }) else { return }
                await self.prune(&p)
            }
        }
    }

    func probe(_ id: PeerID, url: String) async {
        let asked = self.now
        do {
            let r = try await rpc.call(id, baseURL: url, method: .GET, path: "/rpc/v1/status", timeout: .seconds(1))
            guard r.ok, let status = try? JSONDecoder().decode(NodeStatusJSON.self, from: Data(r.body)) else {
                throw RPCTransportError(description: "status \(r.status) \(r.errorCode ?? "")")
            }
            let now = self.now
            noteSightings(status.rooms, node: id, atMs: now)
            state.withLock { s in
                var h = s.health[id] ?? Health()
                h.lastOK = now
                h.failures = 0
                h.downUntil = 0
                h.sessions = status.sessions
                h.rooms = Set(status.rooms.map(\.room))
                h.pipes = Set(status.rooms.flatMap { $0.pipes.map(\.id) })
                h.statusAt = asked
                s.health[id] = h
            }
        } catch {
            markDown(id, why: "status probe: \(error)")
        }
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var tick = 0
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(200))
                tick += 1
                await self.replicate()
                await self.retryAnnouncements()
                if tick % 5 == 0 {
                    await self.probe()
                    self.node.liveSessions.withLock { $0 = UInt32(clamping: self.media.sessionCount) }
                    await self.tickReceipts()
                }
            }
        }
        // Graceful shutdown: the open parts end now; their receipts get one try.
        await tickReceipts(closing: true)
        node.receipts.close()
    }

    // MARK: rooms

    func roomView(_ room: String) async throws -> RoomViewJSON {
        guard let p = await currentPlacement(room) else {
            throw APIError(.notFound, code: "unknown_room", "no peer knows a placement of room \(room); POST /allocate creates one")
        }
        var statuses: [String: RoomStatus] = [:]
        await withTaskGroup(of: (String, RoomStatus?).self) { group in
            for n in p.nodes {
                group.addTask {
                    let id = n.nodeID
                    if id == self.me { return (n.nodeId, await self.media.roomStatus(room).first) }
                    guard let r = try? await self.rpc.call(id, baseURL: n.url, method: .GET, path: "/rpc/v1/rooms/\(room)", timeout: .seconds(1)), r.ok
                    else { return (n.nodeId, nil) }
                    return (n.nodeId, try? JSONDecoder().decode(RoomStatus.self, from: Data(r.body)))
                }
            }
            for await (id, status) in group { statuses[id] = status }
        }
        let nodes = p.nodes.map { n in
            RoomViewJSON.Node(nodeId: n.nodeId, role: n.role, url: n.url, publishers: statuses[n.nodeId]?.publishers ?? 0,
                              viewers: statuses[n.nodeId]?.viewers ?? 0, reachable: statuses[n.nodeId] != nil)
        }
        var pipes: [RoomViewJSON.Pipe] = []
        for edge in p.pipes {
            let (parent, child) = (edge.parent.description, edge.child.description)
            let down = statuses[parent]?.pipes.first { $0.peer == child }
            let up = statuses[child]?.pipes.first { $0.peer == parent }
            pipes.append(.init(from: parent, to: child, tracks: down?.tracksOut ?? 0, packets: down?.rtpOut ?? 0))
            if let up, up.tracksOut > 0 { pipes.append(.init(from: child, to: parent, tracks: up.tracksOut, packets: up.rtpOut)) }
        }
        return RoomViewJSON(room: room, strategy: p.strategy, version: p.version, owner: p.owner, nodes: nodes, pipes: pipes)
    }

    // MARK: RPC: the media node's side

    func status(caller: RPCCaller) async throws -> NodeStatusJSON {
        NodeStatusJSON(nodeId: me.description, version: DrtcNode.version, sessions: media.sessionCount,
                       maxSessions: Int(node.config.capacity.maxSessions), pipes: media.pipeCount, rooms: await media.roomStatus(nil))
    }

    func roomStatus(_ room: String, caller: RPCCaller) async throws -> RoomStatus {
        guard let s = await media.roomStatus(room).first else {
            throw APIError(.notFound, code: "unknown_room", "this node hosts no room \(room)")
        }
        return s
    }

    func openRoom(_ room: String, caller: RPCCaller) async throws {
        try await media.engineOrThrow(serving: true).reserveRoom(room, forMs: 60_000)
    }

    func closeRoom(_ room: String, caller: RPCCaller) async throws -> Int {
        let engine = try media.engineOrThrow()
        return await engine.closeRoom(room)
    }

    /// Dials `request.peer` for a pipe (this node is the ICE-controlling DTLS client) and waits
    /// until DTLS is up.
    func dialPipe(_ request: PipeRequestJSON, caller: RPCCaller) async throws -> PipeStatus {
        let engine = try media.engineOrThrow(serving: true)
        guard let peer = try? PeerID(request.peer), peer != me else {
            throw APIError(.badRequest, code: "invalid_parameter", "peer: expected another node's PeerID", parameter: "peer")
        }
        guard RPCClient.parse(request.peerUrl) != nil else {
            throw APIError(.badRequest, code: "invalid_parameter", "peerUrl: expected http://HOST:PORT", parameter: "peerUrl")
        }
        if let existing = await engine.roomStatus(request.room).first?.pipes.first(where: { $0.id == request.pipeId }) { return existing }
        let (socket, local) = try await engine.preparePipe()
        let offer = PipeOfferJSON(room: request.room, pipeId: request.pipeId, parameters: local, tracks: [], version: 0)
        let response: RPCResponse
        do {
            response = try await rpc.call(peer, baseURL: request.peerUrl, method: .POST, path: "/rpc/v1/pipes/accept",
                                          body: try APIJSON.encode(offer), timeout: .seconds(3))
        } catch {
            await engine.releasePipeSocket(socket)
            throw APIError(.badGateway, code: "peer_unreachable", "the pipe's far node \(peer) did not answer: \(error)")
        }
        guard response.ok, let answer = try? JSONDecoder().decode(PipeOfferJSON.self, from: Data(response.body)) else {
            await engine.releasePipeSocket(socket)
            throw APIError(.badGateway, code: "peer_refused", "the pipe's far node \(peer) answered \(response.status) \(response.errorCode ?? "")")
        }
        do {
            try await engine.openPipe(room: request.room, id: request.pipeId, peer: peer.description, remote: answer.parameters,
                                      local: local, socket: socket, tracks: [])
        } catch let error as MediaServerError {
            throw MediaService.apiError(error)
        }
        _ = await engine.setPipeTracks(id: request.pipeId, version: answer.version, tracks: answer.tracks)
        let deadline = now + 5_000
        while now < deadline {
            if let p = await engine.roomStatus(request.room).first?.pipes.first(where: { $0.id == request.pipeId }), p.connected {
                logger.info("pipe dialled", metadata: ["pipe": "\(request.pipeId)", "room": "\(request.room)", "peer": "\(peer)", "tracksIn": "\(p.tracksIn)"])
                return p
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        _ = await engine.closePipe(id: request.pipeId, reason: "no DTLS connection within 5 s")
        throw APIError(.gatewayTimeout, code: "pipe_timeout", "the pipe to \(peer) did not connect within 5 s")
    }

    func acceptPipe(_ offer: PipeOfferJSON, caller: RPCCaller) async throws -> PipeOfferJSON {
        let engine = try media.engineOrThrow(serving: true)
        let ours: PipeParameters
        do {
            ours = try await engine.openPipe(room: offer.room, id: offer.pipeId, peer: caller.peerID.description, remote: offer.parameters, tracks: [])
        } catch let error as MediaServerError {
            throw MediaService.apiError(error)
        }
        if !offer.tracks.isEmpty { _ = await engine.setPipeTracks(id: offer.pipeId, version: offer.version, tracks: offer.tracks) }
        let announcement = await engine.pipeAnnouncement(id: offer.pipeId)
        return PipeOfferJSON(room: offer.room, pipeId: offer.pipeId, parameters: ours, tracks: announcement?.tracks ?? [],
                             version: announcement?.version ?? 0)
    }

    func setPipeTracks(_ pipe: String, _ tracks: PipeTracksJSON, caller: RPCCaller) async throws {
        let engine = try media.engineOrThrow()
        guard let owner = await engine.pipePeer(pipe) else {
            throw APIError(.notFound, code: "unknown_pipe", "no pipe \(pipe) on this node")
        }
        guard owner == caller.peerID.description else {
            throw APIError(.forbidden, code: "not_pipe_peer", "only the pipe's far node (\(owner)) announces its tracks")
        }
        _ = await engine.setPipeTracks(id: pipe, version: tracks.version, tracks: tracks.tracks)
    }

    func closePipe(_ pipe: String, caller: RPCCaller) async throws {
        let engine = try media.engineOrThrow()
        guard await engine.closePipe(id: pipe, reason: "closed by \(caller.peerID) over RPC") else {
            throw APIError(.notFound, code: "unknown_pipe", "no pipe \(pipe) on this node")
        }
    }

    /// Engine events: announce a pipe's tracks to its far node when they change.
    func pipeEvent(_ event: MediaServer.Event) {
        guard case .pipeTracksChanged(let id) = event else { return }
        Task { await self.announce(id) }
    }

    func announce(_ pipe: String) async {
        guard let engine = media.current, let (version, tracks, peer) = await engine.pipeAnnouncement(id: pipe) else { return }
        guard let peerID = try? PeerID(peer), let rec = record(peerID) else { return }
        do {
            let body = try APIJSON.encode(PipeTracksJSON(version: version, tracks: tracks))
            try await call(peerID, url: rec.record.url, method: .PUT, path: "/rpc/v1/pipes/\(pipe)/tracks", body: body, timeout: .seconds(2))
            state.withLock { $0.announceRetries[pipe] = nil }
        } catch {
            let again = state.withLock { s -> Bool in
                s.announceRetries[pipe, default: 0] += 1
                if s.announceRetries[pipe]! > 10 { s.announceRetries[pipe] = nil; return false }
                return true
            }
            if !again { logger.warning("gave up announcing a pipe's tracks", metadata: ["pipe": "\(pipe)", "error": "\(error)"]) }
        }
    }

    func retryAnnouncements() async {
        for pipe in state.withLock({ Array($0.announceRetries.keys) }) { await announce(pipe) }
    }

    // MARK: media access (WHIP/WHEP)

    func admit(room: String, role: MediaRole, token: String?, hints: PlacementHints) async throws -> MediaAdmission {
        let clientRole: ClientRole = role == .publisher ? .publish : .view
        if token == nil, !hints.isEmpty {
            // A plain WHIP/WHEP client with placement hints: allocate and send it there.
            let allocation = try await allocate(AllocateRequestJSON(room: room, role: clientRole, lat: hints.lat, lon: hints.lon,
                                                                    region: hints.region, strategy: hints.strategy))
            node.metrics.counter("drtc_media_access_total", "result", "redirected").increment()
            return .redirect(allocation.url + "?access_token=" + allocation.token)
        }
        do {
            let claims = try MediaToken.verify(token, audience: me, room: room, role: clientRole, nowMs: now, accepts: accepts)
            if let token { noteAdmission(room: room, issuer: claims.iss, token: token) }
            node.metrics.counter("drtc_media_access_total", "result", "admitted").increment()
            return .admit
        } catch {
            // A valid token for another node: that node should serve this client.
            if error.code == .wrongAudience, let claims = try? MediaToken.decodeVerified(token, nowMs: now),
               let issuer = try? PeerID(claims.iss), accepts(issuer), claims.room == room, claims.role == clientRole,
               let aud = try? PeerID(claims.aud), let rec = record(aud), let token {
                node.metrics.counter("drtc_media_access_total", "result", "redirected").increment()
                return .redirect(rec.record.url + "/\(role.rawValue)/\(room)?access_token=" + token)
            }
            node.metrics.counter("drtc_media_access_total", "result", "rejected_\(error.code.rawValue)").increment()
            var message = error.message
            if error.code == .missingToken {
                message += "; or add ?lat=&lon= (or ?region=, ?strategy=) to be redirected to the node allocated to you"
            }
            var api = APIError(.unauthorized, code: error.code.rawValue, message)
            api.headers[.wwwAuthenticate] = "Bearer error=\"invalid_token\""
            throw api
        }
    }

    // MARK: helpers

    func record(_ id: PeerID) -> SignedRecord? {
        let now = self.now
        return node.registry.withReplica { $0.table[id] }.flatMap { $0.isLive(nowMs: now) ? $0 : nil }
    }

    /// A signed call that must succeed (2xx); self-calls go through HTTP too, so one path is tested.
    @discardableResult
    func call(_ id: PeerID, url: String, method: HTTPMethod, path: String, body: [UInt8] = [], timeout: TimeAmount = .seconds(3)) async throws -> RPCResponse {
        let r = try await rpc.call(id, baseURL: url, method: method, path: path, body: body, timeout: timeout)
        guard r.ok else { throw Self.relay(r) }
        state.withLock { $0.health[id, default: Health()].lastOK = now }
        return r
    }

    /// A peer's error answer as ours.
    static func relay(_ r: RPCResponse) -> APIError {
        struct Body: Decodable { var error: String; var code: String }
        let body = try? JSONDecoder().decode(Body.self, from: Data(r.body))
        var api = APIError(HTTPResponse.Status(code: r.status), code: body?.code ?? "peer_error", body?.error ?? "a peer answered \(r.status)")
        if let retry = r.headers.first(where: { $0.0.lowercased() == "retry-after" }) { api.headers[.retryAfter] = retry.1 }
        return api
    }
}

/// Serialises the owner's work per room (allocations, repairs): one plan at a time per room.
actor RoomLocks {
    private var busy: Set<String> = []
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func withLock<T: Sendable>(_ room: String, _ body: @Sendable () async throws -> T) async rethrows -> T {
        while busy.contains(room) {
            await withCheckedContinuation { waiters[room, default: []].append($0) }
        }
        busy.insert(room)
        defer {
            busy.remove(room)
            if var w = waiters[room], !w.isEmpty {
                let next = w.removeFirst()
                waiters[room] = w.isEmpty ? nil : w
                next.resume()
            }
        }
        return try await body()
    }
}

extension Data {
    var bytes: [UInt8] { Array(self) }
}
