import Identity
import Testing

@testable import Gossipsub

/// The forward hold follows each link's round-trip time (Specs/gossip.md "Duplicates").
@Suite struct ForwardHoldTests {
    static func parameters(factor: Double = 0.7) -> GossipParameters {
        var p = GossipParameters()
        p.forwardDelayMs = 5
        p.forwardDelayRTTFactor = factor
        p.maxForwardDelayMs = 250
        return p
    }

    @Test func theHoldIsAShareOfTheRoundTripWithinItsBounds() {
        let p = Self.parameters()
        func hold(_ rtt: Millis?) -> Millis { GossipRouter.forwardHold(roundTripMs: rtt, parameters: p) }
        #expect(hold(nil) == 5)            // not measured: the floor
        #expect(hold(1) == 5)              // loopback: the floor
        #expect(hold(100) == 70)           // 50 ms each way: about one one-way latency
        #expect(hold(91) == 65)            // rounded up to 5 ms steps
        #expect(hold(1_000) == 250)        // a satellite link: the cap
        var fixed = p
        fixed.forwardDelayRTTFactor = 0
        #expect(GossipRouter.forwardHold(roundTripMs: 100, parameters: fixed) == 5)
        var floorAboveCap = p
        floorAboveCap.forwardDelayMs = 300
        #expect(GossipRouter.forwardHold(roundTripMs: 100, parameters: floorAboveCap) == 300)
    }

    /// Each mesh peer's forward waits out its own link's hold; a peer not measured yet gets
    /// the median of the measured ones; the queue stays ordered by due time.
    @Test func forwardsWaitPerLinkAndUnmeasuredPeersGetTheMedian() {
        var h = Harness(peers: 6, parameters: Self.parameters())
        _ = h.heartbeat()
        let mesh = h.mesh().sorted()
        #expect(mesh.count == 6)
        // Round trips: 10, 100, 200 ms for three of the mesh; mesh[4], mesh[5] unmeasured.
        h.router.setRoundTripTime(mesh[1], ms: 10)
        h.router.setRoundTripTime(mesh[2], ms: 100)
        h.router.setRoundTripTime(mesh[3], ms: 200)
        #expect(h.router.forwardHold(to: mesh[1]) == 10)
        #expect(h.router.forwardHold(to: mesh[2]) == 70)
        #expect(h.router.forwardHold(to: mesh[3]) == 140)
        #expect(h.router.forwardHold(to: mesh[4]) == 70)  // the median, 100 ms
        let m = h.message(from: h.peerKeys.first { $0.peerID == mesh[0] }!, seqno: 9)
        let first = sent(h.receive(GossipRPC(publish: [m]), from: mesh[0]))
        #expect(first.values.allSatisfy { $0.publish.isEmpty })
        #expect(h.router.nextForwardDue == h.now + 10)
        let start = h.now
        var forwarded: [Millis: Set<PeerID>] = [:]
        for t in [Millis(10), 70, 140] {
            h.now = start + t
            let out = sent(h.router.flushForwards(now: h.now))
            forwarded[t] = Set(out.filter { !$0.value.publish.isEmpty }.keys)
        }
        #expect(forwarded[10] == [mesh[1]])
        #expect(forwarded[70] == [mesh[2], mesh[4], mesh[5]])
        #expect(forwarded[140] == [mesh[3]])
        #expect(h.router.nextForwardDue == nil)
        // A peer that leaves takes its measurement with it: the median moves.
        h.router.removePeer(mesh[3], now: h.now)
        #expect(h.router.forwardHold(to: mesh[4]) == 70)
        h.router.removePeer(mesh[2], now: h.now)
        #expect(h.router.forwardHold(to: mesh[4]) == 10)
    }

    /// A neighbour that said IDONTWANT first is not sent ours when its forward to us is due
    /// before ours could arrive (a WAN link: hold 0.8 × RTT), and still is when its hold may
    /// outlast the round trip (loopback, the 5-ms floor) or the round trip is not known.
    @Test func idontwantGoesToAnEarlierRefuserOnlyWhileItsForwardMayBeHeld() {
        var h = Harness(peers: 6, parameters: Self.parameters(factor: 0.8))
        _ = h.heartbeat()
        let mesh = h.mesh().sorted()
        h.router.setRoundTripTime(mesh[1], ms: 1)    // loopback: hold 5 ms
        h.router.setRoundTripTime(mesh[2], ms: 100)  // WAN: hold 80 ms
        let m = h.message(by: mesh[0], seqno: 1)
        let id = StrictSign.messageID(m)
        for refuser in mesh[1...3] { h.receiveIDontWant(id, from: refuser) }
        h.now += 10
        let out = sent(h.receive(GossipRPC(publish: [m]), from: mesh[0]))
        let told = Set(out.filter { $0.value.control.idontwant == [id] }.keys)
        #expect(told == [mesh[1], mesh[3], mesh[4], mesh[5]])
    }

    /// A peer that says IDONTWANT while its longer hold runs is skipped, as with a fixed delay.
    @Test func aLongerHoldLetsTheFarPeersIDontWantArriveFirst() {
        var h = Harness(peers: 6, parameters: Self.parameters())
        _ = h.heartbeat()
        let mesh = h.mesh().sorted()
        for peer in mesh { h.router.setRoundTripTime(peer, ms: 100) }
        let m = h.message(from: h.peerKeys.first { $0.peerID == mesh[0] }!, seqno: 11)
        _ = h.receive(GossipRPC(publish: [m]), from: mesh[0])
        h.now += 50
        var c = ControlMessage()
        c.idontwant = [StrictSign.messageID(m)]
        _ = h.receive(GossipRPC(control: c), from: mesh[1])
        h.now += 20
        let out = sent(h.router.flushForwards(now: h.now))
        #expect(Set(out.filter { !$0.value.publish.isEmpty }.keys) == Set(mesh[2...]))
    }
}
