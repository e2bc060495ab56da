import Foundation
import Identity
import Registry
import Testing
@testable import Orchestrator

let tallinn = GeoPoint(latitude: 59.44, longitude: 24.75)
let tokyo = GeoPoint(latitude: 35.68, longitude: 139.69)
let newYork = GeoPoint(latitude: 40.71, longitude: -74.01)
let helsinki = GeoPoint(latitude: 60.17, longitude: 24.94)
let riga = GeoPoint(latitude: 56.95, longitude: 24.11)
let osaka = GeoPoint(latitude: 34.69, longitude: 135.50)

func candidate(_ seed: UInt8, _ geo: GeoPoint?, region: String = "EU", version: String = "0.1.0", max: Int = 0,
               sessions: Int = 0, cpu: Int = 0, qos: Double? = nil, healthy: Bool = true) -> NodeCandidate {
    let key = try! Ed25519KeyPair(seed: [UInt8](repeating: seed, count: 32))
    return NodeCandidate(id: key.peerID, url: "http://n\(seed)", region: region, geo: geo, version: version, maxSessions: max,
                         sessions: sessions, cpuPermille: cpu, qosScore: qos, healthy: healthy)
}

@Suite struct PlannerTests {
    let policy = PlannerPolicy(version: "0.1.0")
    let owner = "owner"

    func plan(_ r: AllocationRequest, _ c: [NodeCandidate], _ p: RoomPlacement? = nil, recent: RecentAllocations = RecentAllocations(),
              seed: UInt64 = 1) throws -> Decision {
        let d = try Planner.plan(r, candidates: c, placement: p, recent: recent, policy: policy, owner: owner, nowMs: t0, seed: seed)
        try d.placement.validate()
        return d
    }

    @Test func proximityPlacesEachParticipantOnItsNearestNodeAndLinksThem() throws {
        let nodes = [candidate(1, tallinn), candidate(2, tokyo, region: "ASI"), candidate(3, newYork, region: "NAM")]
        let pub = try plan(AllocationRequest(room: "r", role: .publish, position: GeoPoint(latitude: 59.4, longitude: 24.7)), nodes)
        #expect(pub.node.id == nodes[0].id)
        #expect(pub.strategy == .proximity)
        #expect(pub.newPipe == nil)
        let view = try plan(AllocationRequest(room: "r", role: .view, position: GeoPoint(latitude: 35.7, longitude: 139.7)), nodes, pub.placement)
        #expect(view.node.id == nodes[1].id)
        #expect(view.newPipe == .init(parent: nodes[0].id, child: nodes[1].id))
        #expect(view.placement.nodes.count == 2)
        // A second viewer in Tokyo joins the room's Tokyo node: no new pipe.
        let again = try plan(AllocationRequest(room: "r", role: .view, position: tokyo), nodes, view.placement)
        #expect(again.node.id == nodes[1].id && again.newPipe == nil && again.placement.version == view.placement.version)
    }

    /// A peer that takes over a room whose owner died writes the next version under its own
    /// name even when the allocation changes nothing else, so replicas (newer versions only)
    /// and `GET /rooms/{room}` learn the new owner.
    @Test func aPlacementContinuedByAnotherOwnerGetsTheNextVersion() throws {
        let nodes = [candidate(1, tallinn), candidate(2, tokyo, region: "ASI")]
        let pub = try plan(AllocationRequest(room: "r", role: .publish, position: tallinn), nodes)
        let taken = try Planner.plan(AllocationRequest(room: "r", role: .view, position: tallinn), candidates: nodes, placement: pub.placement,
                                     recent: RecentAllocations(), policy: policy, owner: "successor", nowMs: t0, seed: 1)
        #expect(taken.node.id == nodes[0].id && taken.newPipe == nil)
        #expect(taken.placement.owner == "successor" && taken.placement.version == pub.placement.version + 1)
        #expect(taken.placement.nodes == pub.placement.nodes)
    }

    @Test func aRoomNodeWithinSlackIsPreferredOverAnUnusedNearerOne() throws {
        let nodes = [candidate(1, tallinn), candidate(2, helsinki)]
        let first = try plan(AllocationRequest(room: "r", role: .publish, position: tallinn), nodes)
        // Helsinki is nearer to this viewer, but Tallinn (80 km further) already hosts the room.
        let v = try plan(AllocationRequest(room: "r", role: .view, position: helsinki), nodes, first.placement)
        #expect(v.node.id == nodes[0].id)
    }

    @Test func loadHealthVersionCapacityAndQoSAreHonoured() throws {
        let near = GeoPoint(latitude: 59.44, longitude: 24.75)
        func pick(_ c: [NodeCandidate]) throws -> PeerID { try plan(AllocationRequest(room: "r", role: .publish, position: near), c).node.id }
        let far = candidate(2, riga)
        #expect(try pick([candidate(1, tallinn, healthy: false), far]) == far.id)
        #expect(try pick([candidate(1, tallinn, version: "0.2.0"), far]) == far.id)
        #expect(try pick([candidate(1, tallinn, max: 10, sessions: 10), far]) == far.id)
        #expect(try pick([candidate(1, tallinn, cpu: 990), far]) == far.id, "a saturated CPU costs more than 280 km")
        #expect(try pick([candidate(1, tallinn, cpu: 1000)]) == candidate(1, tallinn).id, "but does not exclude the node")
        #expect(try pick([candidate(1, tallinn, qos: 0.1), far]) == far.id)
        // Riga is 280 km (≈ 3 ms) away: a heavily loaded Tallinn loses to it, a lightly loaded one wins.
        #expect(try pick([candidate(1, tallinn, max: 100, sessions: 90), far]) == far.id)
        #expect(try pick([candidate(1, tallinn, max: 100, sessions: 10), far]) != far.id)
        // QoS: a poorly scored node loses to a well scored one at a similar distance.
        #expect(try pick([candidate(1, tallinn, qos: 0.3), candidate(2, riga, qos: 0.95)]) == far.id)
        // Without any score, QoS plays no part.
        #expect(try pick([candidate(1, tallinn), far]) != far.id)
        #expect(throws: PlanError.self) { try pick([candidate(1, tallinn, healthy: false)]) }
        #expect(throws: PlanError.self) { try pick([]) }
    }

    @Test func aBurstOfJoinsSpreadsOverEquivalentNodes() throws {
        // Eight idle nodes in one city: a burst of 400 publishers of different rooms.
        let nodes = (1...8).map { candidate(UInt8($0), GeoPoint(latitude: 52.52 + Double($0) * 0.001, longitude: 13.40)) }
        var recent = RecentAllocations()
        var counts: [PeerID: Int] = [:]
        for i in 0..<400 {
            let d = try Planner.plan(AllocationRequest(room: "room\(i)", role: .publish, position: GeoPoint(latitude: 52.52, longitude: 13.40)),
                                     candidates: nodes, placement: nil, recent: recent, policy: policy, owner: owner, nowMs: t0 + UInt64(i), seed: UInt64(i))
            recent.record(d.node.id, nowMs: t0 + UInt64(i))
            counts[d.node.id, default: 0] += 1
        }
        #expect(counts.count == 8)
        #expect(counts.values.max()! - counts.values.min()! <= 20, "\(counts.values.sorted())")
    }

    @Test func recentAllocationsCountAsLoadUntilTheWindowPasses() throws {
        var recent = RecentAllocations(windowMs: 10_000)
        let n = candidate(1, tallinn, max: 3)
        for k in 0..<3 { recent.record(n.id, nowMs: t0 + UInt64(k)) }
        #expect(!Planner.eligible(n, recent: recent, policy: policy, nowMs: t0 + 5))
        #expect(Planner.eligible(n, recent: recent, policy: policy, nowMs: t0 + 10_003))
    }

    @Test func fanoutIngestsOnOneOriginAndServesViewersFromEdges() throws {
        let origin = candidate(1, tallinn)
        let edges = [candidate(2, tokyo, region: "ASI", max: 2), candidate(3, newYork, region: "NAM", max: 2), candidate(4, riga, max: 2)]
        let all = [origin] + edges
        var d = try plan(AllocationRequest(room: "live", role: .publish, position: tallinn, strategy: .fanout), all)
        #expect(d.node.id == origin.id && d.placement.origin?.nodeId == origin.id.description)
        // A viewer next to the origin still watches an edge.
        d = try plan(AllocationRequest(room: "live", role: .view, position: tallinn), all, d.placement)
        #expect(d.node.id == edges[2].id)
        #expect(d.strategy == .fanout)
        #expect(d.newPipe == .init(parent: origin.id, child: edges[2].id))
        d = try plan(AllocationRequest(room: "live", role: .view, position: tokyo), all, d.placement)
        #expect(d.node.id == edges[0].id && d.newPipe?.parent == origin.id)
        // A second publisher of the stream goes to the origin too.
        let p2 = try plan(AllocationRequest(room: "live", role: .publish, position: tokyo), all, d.placement)
        #expect(p2.node.id == origin.id)
        // The Tokyo edge is full: the next Tokyo viewer goes to the nearest edge with room (Riga).
        var full = all
        full[1].sessions = 2
        var next = try plan(AllocationRequest(room: "live", role: .view, position: tokyo), full, d.placement)
        #expect(next.node.id == edges[2].id && next.newPipe == nil)
        // Riga full too: the room grows a new edge (New York) instead of refusing the viewer.
        full[3].sessions = 2
        next = try plan(AllocationRequest(room: "live", role: .view, position: tokyo), full, d.placement)
        #expect(next.node.id == edges[1].id)
        #expect(next.newPipe == .init(parent: origin.id, child: edges[1].id))
        #expect(next.placement.nodes.count == 4)
    }

    @Test func regionalSpreadsARegionsParticipantsByLoad() throws {
        let eu = (1...4).map { candidate(UInt8($0), GeoPoint(latitude: 50 + Double($0), longitude: 10), max: 100) }
        let asia = candidate(9, tokyo, region: "ASI", max: 100)
        var placement: RoomPlacement?
        var recent = RecentAllocations()
        var used = Set<PeerID>()
        for i in 0..<40 {
            let d = try Planner.plan(AllocationRequest(room: "r", role: .view, position: GeoPoint(latitude: 51, longitude: 10), region: "EU", strategy: .regional),
                                     candidates: eu + [asia], placement: placement, recent: recent, policy: policy, owner: owner, nowMs: t0, seed: UInt64(i))
            try d.placement.validate()
            placement = d.placement
            recent.record(d.node.id, nowMs: t0)
            used.insert(d.node.id)
        }
        #expect(used == Set(eu.map(\.id)), "all four EU nodes share the region's participants, none goes to Asia")
        #expect(placement!.nodes.count == 4 && placement!.pipes.count == 3)
    }

    @Test func placementsValidateAsTreesAndRepairAfterANodeDies() throws {
        let (a, b, c, d, e, zz) = (candidate(1, nil).id, candidate(2, nil).id, candidate(3, nil).id, candidate(4, nil).id,
                                   candidate(5, nil).id, candidate(6, nil).id)
        func n(_ id: PeerID, _ parent: PeerID?) -> RoomPlacement.Node { .init(nodeID: id, role: .member, parent: parent, url: "", geo: nil) }
        var p = RoomPlacement(room: "r", strategy: .proximity, nodes: [n(a, nil), n(b, a), n(c, b), n(d, b)], owner: "o")
        try p.validate()
        var bad = p
        bad.nodes[0].parent = d
        #expect(throws: RoomPlacement.ValidationError.self) { try bad.validate() }
        bad = p
        bad.nodes.append(n(b, a))
        #expect(throws: RoomPlacement.ValidationError.duplicateNode(b)) { try bad.validate() }
        bad = p
        bad.nodes.append(n(e, nil))
        #expect(throws: RoomPlacement.ValidationError.notOneRoot(2)) { try bad.validate() }
        bad = p
        bad.nodes[3].parent = zz
        #expect(throws: RoomPlacement.ValidationError.unknownParent(node: d, parent: zz)) { try bad.validate() }

        // Round trip through JSON (replicas travel as JSON).
        let json = try JSONEncoder().encode(p)
        #expect(try JSONDecoder().decode(RoomPlacement.self, from: json) == p)
        #expect(String(decoding: json, as: UTF8.self).contains("\"nodeId\":\"\(a)\""))

        // An inner node dies: its children re-attach to its parent.
        let built = p.remove(b)
        try p.validate()
        #expect(Set(built) == [.init(parent: a, child: c), .init(parent: a, child: d)])
        // The root dies: its first child becomes the root, the other attaches to it.
        let rebuilt = p.remove(a)
        try p.validate()
        #expect(rebuilt == [.init(parent: c, child: d)])
        #expect(p.nodes.count == 2)
    }

    @Test func everyPeerFindsTheSameOwnersAndAPeerLeavingMovesOnlyItsRooms() {
        let peers = (1...20).map { try! Ed25519KeyPair(seed: [UInt8](repeating: UInt8($0), count: 32)).peerID }
        let ring = OwnerRing(peers: peers)
        let a = ring.owners(of: "room-1", count: 3)
        #expect(a.count == 3 && Set(a).count == 3)
        #expect(OwnerRing(peers: peers.reversed()).owners(of: "room-1", count: 3) == a)
        // Skipping the owner (down) makes the first replica holder the owner.
        #expect(ring.owners(of: "room-1", count: 3, skip: { $0 == a[0] }).first == a[1])
        // A peer leaving moves only the rooms it owned.
        let rooms = (0..<500).map { "room-\($0)" }
        let before = Dictionary(uniqueKeysWithValues: rooms.map { ($0, ring.owners(of: $0, count: 1)[0]) })
        let gone = peers[7]
        let smaller = OwnerRing(peers: peers.filter { $0 != gone })
        for room in rooms where before[room] != gone {
            #expect(smaller.owners(of: room, count: 1)[0] == before[room])
        }
        // Rooms spread over owners.
        let counts = Dictionary(grouping: before.values, by: { $0 }).mapValues(\.count)
        #expect(counts.count == 20 && counts.values.max()! <= 75, "\(counts.values.sorted())")
    }

    @Test func versionsAreCompatibleWithinAMinorForZeroMajors() {
        let p = PlannerPolicy(version: "0.1.0")
        #expect(p.compatible("0.1.7") && !p.compatible("0.2.0") && !p.compatible("1.1.0") && !p.compatible("garbage"))
        #expect(PlannerPolicy(version: "1.2.0").compatible("1.9.1"))
    }
}
