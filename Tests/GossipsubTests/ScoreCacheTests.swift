import Identity
import Testing

@testable import Gossipsub

/// `PeerScoring` keeps each peer's score with its stats instead of computing it on every ask
/// (the router asks for every forward target of every message). A kept score that missed one
/// change would graft, prune, gossip to or graylist the wrong peers, so every change is played
/// here in a random order and the kept score must equal the score computed afresh, for every
/// peer, after each one — including P6, where one peer connecting changes the others' scores.
struct ScoreCacheTests {
    @Test func keptScoresEqualFreshScoresAfterEveryChange() {
        var parameters = ScoreParameters()
        var topic = TopicScoreParameters()
        topic.meshMessageDeliveriesWeight = -1
        topic.meshMessageDeliveriesActivationMs = 2_000
        topic.meshFailurePenaltyWeight = -1
        parameters.topics["a"] = topic
        parameters.topics["b"] = topic
        parameters.ipColocationFactorThreshold = 1
        var scoring = PeerScoring(parameters: parameters)
        let peers = (0..<6).map { _ in Ed25519KeyPair.generate().peerID }
        let ips = ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1", nil, "127.0.0.1"]
        var rng = SplitMix64(seed: 16)
        var now: Millis = 1_000_000
        var nonzero = 0
        for step in 0..<4_000 {
            let i = Int(rng.next() % UInt64(peers.count))
            let peer = peers[i], name = rng.next() % 2 == 0 ? "a" : "b"
            switch rng.next() % 11 {
            case 0: scoring.connected(peer, ip: ips[i])
            case 1: scoring.disconnected(peer, now: now)
            case 2: scoring.graft(peer, topic: name, now: now)
            case 3: scoring.prune(peer, topic: name)
            case 4, 5: scoring.firstDelivery(peer, topic: name)
            case 6: scoring.nearFirstDelivery(peer, topic: name, delayMs: rng.next() % 20)
            case 7: scoring.invalidMessage(peer, topic: name)
            case 8: scoring.addPenalty(peer, Double(rng.next() % 3))
            case 9: scoring.setAppSpecific(peer, Double(rng.next() % 5) - 2)
            default:
                now &+= 250 + rng.next() % 1_000
                scoring.refresh(now: now)
            }
            for p in peers {
                let kept = scoring.score(p, now: now), fresh = scoring.recomputedScore(p)
                #expect(kept == fresh, "step \(step): peer \(peers.firstIndex(of: p)!) kept \(kept), fresh \(fresh)")
                if kept != 0 { nonzero += 1 }
            }
        }
        // The walk reached scores that differ from the default.
        #expect(nonzero > 1_000)
    }
}
