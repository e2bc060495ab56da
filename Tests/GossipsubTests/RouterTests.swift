import Identity
import Testing

@testable import Gossipsub

/// Scripted inputs against one router ("us"), with remote peers played by the test.
struct Harness {
    static let topic = "drtc/registry/1"
    let key = Ed25519KeyPair.generate()
    var router: GossipRouter
    var now: Millis = 1_000_000
    var peerKeys: [Ed25519KeyPair] = []
    var delivered: [MessageID] = []

    init(peers: Int, parameters: GossipParameters = GossipParameters(), outbound: Bool = true, proto: GossipProtocol = .v12) {
        var score = ScoreParameters()
        score.topics[Self.topic] = TopicScoreParameters()
        router = GossipRouter(localPeer: key.peerID, signer: key, parameters: parameters, score: score, seed: 1)
        _ = router.subscribe(Self.topic, now: now)
        for _ in 0..<peers { addPeer(outbound: outbound, proto: proto) }
    }

    @discardableResult
    mutating func addPeer(outbound: Bool = true, proto: GossipProtocol = .v12, subscribed: Bool = true) -> PeerID {
        let k = Ed25519KeyPair.generate()
        peerKeys.append(k)
        _ = router.addPeer(k.peerID, protocol: proto, outbound: outbound, now: now)
        if subscribed {
            _ = receive(GossipRPC(subscriptions: [SubscriptionOption(subscribe: true, topic: Self.topic)]), from: k.peerID)
        }
        return k.peerID
    }

    var peerIDs: [PeerID] { peerKeys.map(\.peerID) }

    mutating func receive(_ rpc: GossipRPC, from peer: PeerID, validate: GossipRouter.Validator = { _, _ in .accept }) -> [GossipAction] {
        let actions = router.handle(rpc, from: peer, now: now, validate: validate)
        for case .deliver(_, let id, _) in actions { delivered.append(id) }
        return actions
    }

    mutating func heartbeat(advance: Millis = 1_000) -> [GossipAction] {
        now += advance
        return router.heartbeat(now: now)
    }

    func mesh() -> Set<PeerID> { router.mesh[Self.topic] ?? [] }

    func message(from key: Ed25519KeyPair, seqno: UInt64, data: [UInt8] = [1, 2, 3]) -> GossipMessage {
        StrictSign.sign(data: data, topic: Self.topic, seqno: seqno, key: key)
    }

    /// A message signed by the connected peer `author`.
    func message(by author: PeerID, seqno: UInt64) -> GossipMessage {
        message(from: peerKeys.first { $0.peerID == author }!, seqno: seqno)
    }

    /// `peer` says IDONTWANT for `id`.
    mutating func receiveIDontWant(_ id: MessageID, from peer: PeerID) {
        var c = ControlMessage()
        c.idontwant = [id]
        _ = receive(GossipRPC(control: c), from: peer)
    }
}

func sent(_ actions: [GossipAction]) -> [PeerID: GossipRPC] {
    var out: [PeerID: GossipRPC] = [:]
    for case .send(let peer, let rpc) in actions { out[peer] = rpc }
    return out
}

func graftRPC(_ topic: String = Harness.topic) -> GossipRPC {
    var c = ControlMessage()
    c.graft = [topic]
    return GossipRPC(control: c)
}

@Suite struct MeshTests {
    @Test func heartbeatFillsMeshToD() {
        var h = Harness(peers: 10)
        let actions = h.heartbeat()
        #expect(h.mesh().count == 6)
        let grafts = sent(actions).filter { $0.value.control.graft.contains(Harness.topic) }
        #expect(grafts.count == 6)
        #expect(Set(grafts.keys) == h.mesh())
    }

    @Test func graftIntoFullMeshIsPrunedWithPeerExchange() {
        var h = Harness(peers: 0)
        for _ in 0..<12 {
            let p = h.addPeer(outbound: false)
            _ = h.receive(graftRPC(), from: p)
        }
        #expect(h.mesh().count == 12)
        let extra = h.addPeer(outbound: false)
        let reply = sent(h.receive(graftRPC(), from: extra))[extra]
        #expect(!h.mesh().contains(extra))
        let prune = reply?.control.prune.first
        #expect(prune?.topic == Harness.topic)
        #expect(prune?.backoffSeconds == 60)
        #expect((prune?.peers.count ?? 0) > 0)
        #expect(prune?.peers.contains(extra) == false)
    }

    @Test func oversizedMeshIsPrunedToDAtHeartbeat() {
        var h = Harness(peers: 0)
        var params = GossipParameters()
        params.dHigh = 8
        h = Harness(peers: 0, parameters: params)
        for _ in 0..<9 {
            let p = h.addPeer()
            _ = h.receive(graftRPC(), from: p)
        }
        // The 9th GRAFT came from an outbound peer, so it was accepted above D_hi.
        #expect(h.mesh().count == 9)
        let actions = h.heartbeat()
        #expect(h.mesh().count == 6)
        #expect(sent(actions).values.filter { !$0.control.prune.isEmpty }.count == 3)
    }

    @Test func pruneBackoffIsHonouredAndGraftDuringBackoffIsPenalised() {
        var h = Harness(peers: 5)
        _ = h.heartbeat()
        let victim = h.mesh().sorted()[0]
        var c = ControlMessage()
        c.prune = [PruneInfo(topic: Harness.topic, backoffSeconds: 30)]
        _ = h.receive(GossipRPC(control: c), from: victim)
        #expect(!h.mesh().contains(victim))
        // Mesh below D_lo (4 of 5 left); heartbeats within the backoff must not re-graft it.
        for _ in 0..<5 { _ = h.heartbeat() }
        #expect(!h.mesh().contains(victim))
        // The victim grafts us during its own backoff: PRUNE back and a behaviour penalty.
        let before = h.router.score(of: victim, now: h.now)
        let reply = sent(h.receive(graftRPC(), from: victim))[victim]
        #expect(reply?.control.prune.first?.topic == Harness.topic)
        #expect(!h.mesh().contains(victim))
        #expect(h.router.counters.rejected["graft_backoff"] == 1)
        // P7 is quadratic above its threshold: repeated violations drive the score negative.
        for _ in 0..<4 { _ = h.receive(graftRPC(), from: victim) }
        #expect(h.router.score(of: victim, now: h.now) < before)
        #expect(h.router.score(of: victim, now: h.now) < 0)
        // After the backoff expires and P7 has decayed, the peer's GRAFT is accepted again.
        for _ in 0..<400 { _ = h.heartbeat() }
        #expect(h.router.score(of: victim, now: h.now) >= 0)
        _ = h.receive(graftRPC(), from: victim)
        #expect(h.mesh().contains(victim))
    }

    @Test func graftForUnknownTopicIsPrunedWithoutPeerExchange() {
        var h = Harness(peers: 3)
        let p = h.peerIDs[0]
        let reply = sent(h.receive(graftRPC("other/topic"), from: p))[p]
        #expect(reply?.control.prune.first?.topic == "other/topic")
        #expect(reply?.control.prune.first?.peers.isEmpty == true)
    }

    @Test func unsubscribeRemovesFromMesh() {
        var h = Harness(peers: 5)
        _ = h.heartbeat()
        let p = h.mesh().sorted()[0]
        _ = h.receive(GossipRPC(subscriptions: [SubscriptionOption(subscribe: false, topic: Harness.topic)]), from: p)
        #expect(!h.mesh().contains(p))
    }
}

@Suite struct MessageFlowTests {
    @Test func validMessageIsDeliveredOnceAndForwardedToMeshExceptSenderAndOrigin() {
        var h = Harness(peers: 8)
        _ = h.heartbeat()
        let mesh = h.mesh().sorted()
        let sender = mesh[0]
        let originKey = h.peerKeys.first { $0.peerID == mesh[1] }!
        let m = h.message(from: originKey, seqno: 1)
        let actions = h.receive(GossipRPC(publish: [m]), from: sender)
        #expect(h.delivered.count == 1)
        let forwardedTo = Set(sent(actions).filter { !$0.value.publish.isEmpty }.keys)
        #expect(forwardedTo == Set(mesh).subtracting([sender, originKey.peerID]))
        // The duplicate is counted, not delivered or forwarded.
        let again = h.receive(GossipRPC(publish: [m]), from: mesh[2])
        #expect(h.delivered.count == 1)
        #expect(h.router.counters.duplicates == 1)
        #expect(sent(again).values.allSatisfy { $0.publish.isEmpty })
    }

    @Test func badSignatureIsRejectedAndDoesNotPoisonTheSeenCache() {
        var h = Harness(peers: 6)
        _ = h.heartbeat()
        let attacker = h.peerIDs[0]
        let author = h.peerKeys[1]
        var forged = h.message(from: author, seqno: 9)
        forged.data = [6, 6, 6]
        _ = h.receive(GossipRPC(publish: [forged]), from: attacker)
        #expect(h.router.counters.rejected["bad_signature"] == 1)
        #expect(h.delivered.isEmpty)
        // The genuine message with the same ID still gets through.
        _ = h.receive(GossipRPC(publish: [h.message(from: author, seqno: 9)]), from: h.peerIDs[2])
        #expect(h.delivered.count == 1)
    }

    @Test func invalidMessagesDriveTheSenderToTheGraylist() {
        var h = Harness(peers: 6)
        _ = h.heartbeat()
        let attacker = h.peerKeys[0]
        var seq: UInt64 = 0
        while !h.router.isGraylisted(attacker.peerID, now: h.now) && seq < 100 {
            seq += 1
            _ = h.receive(GossipRPC(publish: [h.message(from: attacker, seqno: seq)]), from: attacker.peerID) { _, _ in .reject("invalid_record") }
        }
        #expect(seq == 3)  // P4 = -10·n²: -10, -40, -90 < -80
        #expect(h.router.counters.rejected["invalid_record"] == 3)
        // Graylisted: even valid messages from it are ignored.
        _ = h.receive(GossipRPC(publish: [h.message(from: attacker, seqno: 50)]), from: attacker.peerID)
        #expect(h.delivered.isEmpty)
        #expect(h.router.counters.ignored["graylisted"] == 1)
        // An honest peer's message still flows.
        _ = h.receive(GossipRPC(publish: [h.message(from: h.peerKeys[1], seqno: 1)]), from: h.peerIDs[1])
        #expect(h.delivered.count == 1)
        // Rejected messages were never forwarded, and nothing is forwarded to the graylisted peer.
        #expect(h.router.counters.messagesOut == 4)
    }

    @Test func ignoredMessagesAreNotForwardedNorPenalised() {
        var h = Harness(peers: 6)
        _ = h.heartbeat()
        let p = h.peerKeys[0]
        let actions = h.receive(GossipRPC(publish: [h.message(from: p, seqno: 1)]), from: p.peerID) { _, _ in .ignore("stale") }
        #expect(sent(actions).values.allSatisfy { $0.publish.isEmpty })
        #expect(h.router.counters.ignored["stale"] == 1)
        #expect(h.router.score(of: p.peerID, now: h.now) == 0)
    }

    @Test func messagesOnUnsubscribedTopicsAreIgnored() {
        var h = Harness(peers: 3)
        let m = StrictSign.sign(data: [1], topic: "not/ours", seqno: 1, key: h.peerKeys[0])
        _ = h.receive(GossipRPC(publish: [m]), from: h.peerIDs[0])
        #expect(h.delivered.isEmpty)
        #expect(h.router.counters.ignored["unsubscribed_topic"] == 1)
    }

    @Test func floodPublishReachesEverySubscribedPeer() throws {
        var h = Harness(peers: 10)
        _ = h.heartbeat()
        let (_, actions) = try h.router.publish([1], topic: Harness.topic, now: h.now)
        #expect(Set(sent(actions).filter { !$0.value.publish.isEmpty }.keys) == Set(h.peerIDs))
    }
}

@Suite struct GossipTests {
    @Test func ihaveForUnseenMessagesGetsIWantAndBrokenPromisesArePenalised() {
        var h = Harness(peers: 3)
        let p = h.peerIDs[0]
        var c = ControlMessage()
        let id = MessageID(Array(repeating: 1, count: 46))
        c.ihave = [(Harness.topic, [id])]
        let reply = sent(h.receive(GossipRPC(control: c), from: p))[p]
        #expect(reply?.control.iwant == [id])
        // The peer never delivers: after the follow-up time it is a broken promise (P7).
        _ = h.heartbeat(advance: 3_001)
        #expect(h.router.counters.brokenPromises == 1)
    }

    @Test func ihaveFloodIsCapped() {
        var h = Harness(peers: 2)
        let p = h.peerIDs[0]
        var iwants = 0
        for i in 0..<50 {
            var c = ControlMessage()
            c.ihave = [(Harness.topic, [[UInt8(i), 1, 2]])]
            iwants += sent(h.receive(GossipRPC(control: c), from: p))[p]?.control.iwant.count ?? 0
        }
        #expect(iwants == GossipParameters().maxIHaveMessages)
        #expect(h.router.counters.ignored["ihave_flood"] == 40)
    }

    @Test func iwantIsAnsweredFromTheCacheUpToTheRetransmissionLimit() throws {
        var h = Harness(peers: 2)
        let (id, _) = try h.router.publish([5], topic: Harness.topic, now: h.now)
        let p = h.peerIDs[0]
        var c = ControlMessage()
        c.iwant = [id]
        var answered = 0
        for _ in 0..<5 { answered += sent(h.receive(GossipRPC(control: c), from: p))[p]?.publish.count ?? 0 }
        #expect(answered == 3)
        #expect(h.router.counters.ignored["iwant_retransmission_limit"] == 2)
    }

    @Test func heartbeatGossipsIHaveToNonMeshPeers() throws {
        var h = Harness(peers: 14)
        _ = h.heartbeat()
        let (id, _) = try h.router.publish([5], topic: Harness.topic, now: h.now)
        let actions = h.heartbeat()
        let ihaves = sent(actions).filter { !$0.value.control.ihave.isEmpty }
        #expect(ihaves.count == 6)  // D_lazy of the 8 non-mesh peers
        #expect(Set(ihaves.keys).isDisjoint(with: h.mesh()))
        #expect(ihaves.values.allSatisfy { $0.control.ihave[0].ids == [id] })
    }

    /// A peer gossiped k heartbeats ago hears only of the newest k windows: it was told of
    /// the older ones then. One never gossiped hears of all three.
    @Test func ihaveRepeatsOnlyWhatIsNewToThePeer() throws {
        var h = Harness(peers: 14)
        _ = h.heartbeat()
        let (first, _) = try h.router.publish([5], topic: Harness.topic, now: h.now)
        let round1 = sent(h.heartbeat()).filter { !$0.value.control.ihave.isEmpty }
        #expect(round1.values.allSatisfy { $0.control.ihave[0].ids == [first] })
        let (second, _) = try h.router.publish([6], topic: Harness.topic, now: h.now)
        let round2 = sent(h.heartbeat()).filter { !$0.value.control.ihave.isEmpty }
        #expect(round2.count == 6)
        #expect(Set(round2.keys).intersection(round1.keys).count >= 4)
        for (peer, rpc) in round2 {
            #expect(rpc.control.ihave[0].ids == (round1[peer] != nil ? [second] : [second, first]))
        }
        // Nothing new: the peers gossiped last heartbeat are sent no IHAVE at all.
        let round3 = sent(h.heartbeat()).filter { !$0.value.control.ihave.isEmpty }
        #expect(Set(round3.keys).isDisjoint(with: round2.keys))
        for (peer, rpc) in round3 {
            #expect(rpc.control.ihave[0].ids == (round1[peer] != nil ? [second] : [second, first]))
        }
    }

    /// An IHAVE cut to `maxIHaveLength` owes the peer the rest: its next IHAVE covers every
    /// gossip window again, not only the newest.
    @Test func aTruncatedIHaveIsFollowedByAFullOne() throws {
        var params = GossipParameters()
        params.maxIHaveLength = 2
        params.dLazy = 8  // every non-mesh peer, every heartbeat
        var h = Harness(peers: 14, parameters: params)
        _ = h.heartbeat()
        for data: UInt8 in 5...7 { _ = try h.router.publish([data], topic: Harness.topic, now: h.now) }
        let round1 = sent(h.heartbeat()).filter { !$0.value.control.ihave.isEmpty }
        #expect(round1.count == 8 && round1.values.allSatisfy { $0.control.ihave[0].ids.count == 2 })
        _ = try h.router.publish([8], topic: Harness.topic, now: h.now)
        // Every window again (4 IDs, cut to 2), not the newest window's one ID.
        let round2 = sent(h.heartbeat()).filter { !$0.value.control.ihave.isEmpty }
        #expect(round2.count == 8 && round2.values.allSatisfy { $0.control.ihave[0].ids.count == 2 })
    }

    /// A peer's IDONTWANT stops our forward to it. Ours, on first receipt, goes to the mesh
    /// peers that may still send us the message: not its sender, not its author, not a peer
    /// whose own IDONTWANT for it came first over a link whose round trip outlasts the hold
    /// (no hold here: its forward is long due; ForwardHoldTests has the other cases).
    @Test func idontwantStopsForwardingAndGoesOnlyWhereTheMessageMayComeFrom() {
        var h = Harness(peers: 8)
        _ = h.heartbeat()
        let mesh = h.mesh().sorted()
        h.router.setRoundTripTime(mesh[2], ms: 100)
        let m = h.message(by: mesh[1], seqno: 3)
        let id = StrictSign.messageID(m)
        h.receiveIDontWant(id, from: mesh[2])
        let actions = sent(h.receive(GossipRPC(publish: [m]), from: mesh[0]))
        #expect(actions[mesh[2]]?.publish.isEmpty ?? true)
        #expect(actions[mesh[3]]?.publish.count == 1)
        let told = Set(actions.filter { $0.value.control.idontwant == [id] }.keys)
        #expect(told == Set(mesh).subtracting([mesh[0], mesh[1], mesh[2]]))
    }

    @Test func idontwantFromV11PeerIsIgnored() {
        var h = Harness(peers: 6, proto: .v11)
        _ = h.heartbeat()
        let mesh = h.mesh().sorted()
        let m = h.message(from: h.peerKeys.first { $0.peerID == mesh[0] }!, seqno: 3)
        var c = ControlMessage()
        c.idontwant = [StrictSign.messageID(m)]
        _ = h.receive(GossipRPC(control: c), from: mesh[1])
        let actions = sent(h.receive(GossipRPC(publish: [m]), from: mesh[0]))
        #expect(actions[mesh[1]]?.publish.count == 1)
        #expect(actions[mesh[2]]?.control.idontwant.isEmpty ?? true)
    }
}

@Suite struct ForwardDelayTests {
    /// With a forward delay, a neighbour's IDONTWANT (or its own copy) that arrives while the
    /// forward waits removes that neighbour from the forward: no crossing duplicates.
    @Test func heldBackForwardSkipsPeersThatAlreadyHaveTheMessage() {
        var params = GossipParameters()
        params.forwardDelayMs = 5
        var h = Harness(peers: 6, parameters: params)
        _ = h.heartbeat()
        let mesh = h.mesh().sorted()
        let m = h.message(from: h.peerKeys.first { $0.peerID == mesh[0] }!, seqno: 7)
        let id = StrictSign.messageID(m)
        let first = sent(h.receive(GossipRPC(publish: [m]), from: mesh[0]))
        // IDONTWANT goes out at once; the message itself is held back.
        #expect(first[mesh[1]]?.control.idontwant == [id])
        #expect(first.values.allSatisfy { $0.publish.isEmpty })
        #expect(h.router.nextForwardDue == h.now + 5)
        // Within the delay: mesh[1] says IDONTWANT, mesh[2] sends the message itself.
        var c = ControlMessage()
        c.idontwant = [id]
        _ = h.receive(GossipRPC(control: c), from: mesh[1])
        _ = h.receive(GossipRPC(publish: [m]), from: mesh[2])
        h.now += 5
        let later = sent(h.router.flushForwards(now: h.now))
        #expect(Set(later.filter { !$0.value.publish.isEmpty }.keys) == Set(mesh).subtracting([mesh[0], mesh[1], mesh[2]]))
        #expect(h.router.counters.suppressed == 2)
        #expect(h.router.nextForwardDue == nil)
    }

    @Test func filterOutgoingDropsWhatThePeerSaidItDoesNotWant() {
        var h = Harness(peers: 3)
        let p = h.peerIDs[0]
        let m = h.message(from: h.peerKeys[1], seqno: 1)
        var c = ControlMessage()
        c.idontwant = [StrictSign.messageID(m)]
        _ = h.receive(GossipRPC(control: c), from: p)
        var rpc = GossipRPC(publish: [m])
        #expect(!h.router.filterOutgoing(&rpc, to: p, now: h.now))
        #expect(rpc.publish.isEmpty)
    }
}
