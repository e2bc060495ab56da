import Gossipsub
import Identity
import Registry
import RegistryGossip
import Testing

/// The shared policy that heals partitions (Specs/gossip.md "Partitions") and the clock rule
/// of the gossip validation (Specs/registry.md "Clocks").
@Suite struct HealingPolicyTests {
    static func peer(_ i: Int) -> PeerID { try! Ed25519KeyPair(seed: [UInt8](repeating: UInt8(i + 1), count: 32)).peerID }

    @Test func newsIsAnOldWinner() {
        let now: UInt64 = 1_000_000
        #expect(SyncPolicy.isNews(accepted: true, recordWallMs: now - SyncPolicy.newsAgeMs - 1, nowMs: now))
        #expect(!SyncPolicy.isNews(accepted: true, recordWallMs: now - 1_000, nowMs: now), "fresh: gossip is bringing it")
        #expect(!SyncPolicy.isNews(accepted: false, recordWallMs: now - 60_000, nowMs: now), "not a winner: already held")
        #expect(!SyncPolicy.isNews(accepted: true, recordWallMs: now + 60_000, nowMs: now))
    }

    /// News spreads to every other connected peer, one session at a time, once the node has
    /// caught up; not again within the spread interval; peers that left are skipped.
    @Test func newsStartsOneWaveOfSyncsWithEveryOtherPeer() {
        var rng = SplitMix64(seed: 3)
        var policy = SyncPolicy()
        let peers = (0..<5).map(Self.peer)
        // A joiner's first session brings the whole table: that is its own catching up.
        let granted = policy.request()
        let joinerWave = policy.sessionBrought(news: 100, from: peers[0], connected: peers, nowMs: 1_000, using: &rng)
        #expect(granted && !joinerWave)
        policy.initiatorEnded(completed: true)
        let none = policy.spreadDue(isConnected: { _ in true })
        #expect(none == nil)
        // Later news from peers[0]: a wave over the others.
        let wave = policy.sessionBrought(news: 3, from: peers[0], connected: peers, nowMs: 20_000, using: &rng)
        #expect(wave)
        var visited: [PeerID] = []
        let gone = peers[3]
        while let next = policy.spreadDue(isConnected: { $0 != gone }) {
            let second = policy.spreadDue(isConnected: { _ in true }), request = policy.request()
            #expect(second == nil, "one initiator session at a time")
            #expect(!request, "a request waits for the wave's session")
            visited.append(next)
            policy.initiatorEnded(completed: true)
            _ = policy.retryDue()
            policy.initiatorEnded(completed: true)
        }
        #expect(Set(visited) == Set([peers[1], peers[2], peers[4]]) && visited.count == 3)
        // More news within the interval starts no second wave; after it, it does.
        let tooSoon = policy.sessionBrought(news: 1, from: peers[1], connected: peers, nowMs: 20_000 + SyncPolicy.spreadIntervalMs - 1, using: &rng)
        let afterInterval = policy.sessionBrought(news: 1, from: peers[1], connected: peers, nowMs: 20_000 + SyncPolicy.spreadIntervalMs, using: &rng)
        let noNews = policy.sessionBrought(news: 0, from: peers[1], connected: peers, nowMs: 99_000, using: &rng)
        #expect(!tooSoon && afterInterval && !noNews)
    }

    /// A responder session that completes counts as caught up too.
    @Test func aCompletedResponderSessionIsCaughtUp() {
        var rng = SplitMix64(seed: 4)
        var policy = SyncPolicy()
        let accepted = policy.acceptInbound()
        policy.inboundEnded(completed: true)
        let wave = policy.sessionBrought(news: 1, from: Self.peer(0), connected: [Self.peer(0), Self.peer(1)], nowMs: 1, using: &rng)
        let next = policy.spreadDue(isConnected: { _ in true })
        #expect(accepted && wave && next == Self.peer(1))
    }

    /// A peer that had been out of reach and answers again lifts every backoff.
    @Test func aPeerBackInReachLiftsEveryBackoff() {
        var planner = DialPlanner()
        let (a, b, c) = (Self.peer(0), Self.peer(1), Self.peer(2))
        for _ in 0..<6 { planner.failed(a, now: 0); planner.failed(b, now: 0) }
        #expect(!planner.mayDial(a, now: 60_000) && !planner.mayDial(b, now: 60_000))
        planner.succeeded(c)  // never failed: changes nothing
        #expect(!planner.mayDial(b, now: 60_000))
        planner.succeeded(a)
        #expect(planner.mayDial(a, now: 0) && planner.mayDial(b, now: 0))
    }

    /// While this node's clock disagrees with its peers', a record failing the time checks
    /// may be its own fault: ignored, the forwarder not penalised; once settled, rejected.
    @Test func timeFailuresAreTheSendersFaultOnlyOnASettledClock() throws {
        let owner = Ed25519KeyPair.generate(), relay = Ed25519KeyPair.generate()
        let now: UInt64 = 1_800_000_000_000
        func message(wall: UInt64, ttl: UInt32 = 90) throws -> GossipMessage {
            let record = MediaNodeRecord(
                publicKey: owner.publicKey, region: "EU", url: "http://n", version: "t", status: .active,
                hlc: HLC(wallMs: wall), refreshIntervalSeconds: 30, ttlSeconds: ttl)
            return StrictSign.sign(data: try record.signed(with: owner).encoded, topic: RegistryGossip.topic, seqno: wall, key: relay)
        }
        let future = try message(wall: now + SignedRecord.maxFutureSkewMs + 1)
        let replayed = try message(wall: now - 120_000, ttl: 60)
        let aheadButWithin = try message(wall: now + 5 * 60_000)
        for (m, reason) in [(future, "record_future_timestamp"), (replayed, "record_replayed")] {
            #expect(RegistryGossip.validate(m, nowMs: now, clockSettled: true) { _ in .accepted }.0 == .reject(reason))
            #expect(RegistryGossip.validate(m, nowMs: now, clockSettled: false) { _ in .accepted }.0 == .ignore(reason))
        }
        #expect(RegistryGossip.validate(aheadButWithin, nowMs: now) { _ in .accepted }.0 == .accept)
    }
}
