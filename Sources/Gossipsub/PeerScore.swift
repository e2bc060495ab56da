import Identity

/// Peer scoring (gossipsub-v1.1.md "Peer Scoring"): P1–P4 per topic, P5–P7 per peer.
///
///     score = Σ_t w_t · (w1·P1 + w2·P2 + w3·P3 + w3b·P3b + w4·P4)   (positive part capped)
///           + w5·P5 + w6·P6 + w7·P7
struct PeerScoring {
    struct TopicStats {
        var inMesh = false
        var graftTime: Millis = 0
        var meshTimeMs: Millis = 0
        var firstMessageDeliveries = 0.0
        var meshMessageDeliveries = 0.0
        var meshMessageDeliveriesActive = false
        var meshFailurePenalty = 0.0
        var invalidMessageDeliveries = 0.0
    }

    struct PeerStats {
        var topics: [String: TopicStats] = [:]
        var behaviourPenalty = 0.0
        var ip: String?
        var appSpecific = 0.0
        /// Set while disconnected: when the retained score is forgotten.
        var expiresAt: Millis?
    }

    var parameters: ScoreParameters
    private(set) var peers: [PeerID: PeerStats] = [:]
    /// Connected peers per IP, for P6.
    private var peersByIP: [String: Set<PeerID>] = [:]
    private var lastDecay: Millis = 0

    init(parameters: ScoreParameters) { self.parameters = parameters }

    func score(_ peer: PeerID, now: Millis) -> Double {
        guard let stats = peers[peer] else { return 0 }
        var topicScore = 0.0
        for (topic, t) in stats.topics {
            guard let p = parameters.topics[topic] else { continue }
            var s = 0.0
            if t.inMesh {
                let p1 = min(Double(t.meshTimeMs) / Double(max(1, p.timeInMeshQuantumMs)), p.timeInMeshCap)
                s += p1 * p.timeInMeshWeight
            }
            s += t.firstMessageDeliveries * p.firstMessageDeliveriesWeight
            if t.meshMessageDeliveriesActive && t.meshMessageDeliveries < p.meshMessageDeliveriesThreshold {
                let deficit = p.meshMessageDeliveriesThreshold - t.meshMessageDeliveries
                s += deficit * deficit * p.meshMessageDeliveriesWeight
            }
            s += t.meshFailurePenalty * p.meshFailurePenaltyWeight
            s += t.invalidMessageDeliveries * t.invalidMessageDeliveries * p.invalidMessageDeliveriesWeight
            topicScore += s * p.topicWeight
        }
        if parameters.topicScoreCap > 0 { topicScore = min(topicScore, parameters.topicScoreCap) }
        var score = topicScore + stats.appSpecific * parameters.appSpecificWeight
        if let ip = stats.ip, !parameters.ipColocationWhitelist.contains(ip) {
            let surplus = Double(peersByIP[ip]?.count ?? 0) - parameters.ipColocationFactorThreshold
            if surplus > 0 { score += surplus * surplus * parameters.ipColocationFactorWeight }
        }
        let excess = stats.behaviourPenalty - parameters.behaviourPenaltyThreshold
        if excess > 0 { score += excess * excess * parameters.behaviourPenaltyWeight }
        return score
    }

    mutating func connected(_ peer: PeerID, ip: String?) {
        var stats = peers[peer] ?? PeerStats()
        stats.expiresAt = nil
        stats.ip = ip
        peers[peer] = stats
        if let ip { peersByIP[ip, default: []].insert(peer) }
    }

    mutating func disconnected(_ peer: PeerID, now: Millis) {
        guard var stats = peers[peer] else { return }
        if let ip = stats.ip { peersByIP[ip]?.remove(peer) }
        for topic in Array(stats.topics.keys) { leaveMesh(&stats, topic: topic) }
        // A peer leaving with a good score is forgotten at once; a bad one is remembered,
        // so that reconnecting does not clear its penalties.
        if score(peer, now: now) > 0 {
            peers[peer] = nil
        } else {
            stats.expiresAt = now &+ parameters.retainScoreMs
            peers[peer] = stats
        }
    }

    mutating func graft(_ peer: PeerID, topic: String, now: Millis) {
        guard parameters.topics[topic] != nil else { return }
        var t = peers[peer]?.topics[topic] ?? TopicStats()
        t.inMesh = true
        t.graftTime = now
        t.meshTimeMs = 0
        t.meshMessageDeliveriesActive = false
        peers[peer, default: PeerStats()].topics[topic] = t
    }

    mutating func prune(_ peer: PeerID, topic: String) {
        guard var stats = peers[peer] else { return }
        leaveMesh(&stats, topic: topic)
        peers[peer] = stats
    }

    private func leaveMesh(_ stats: inout PeerStats, topic: String) {
        guard var t = stats.topics[topic], t.inMesh, let p = parameters.topics[topic] else { return }
        // P3b: leaving the mesh with a delivery deficit sticks as a penalty.
        if t.meshMessageDeliveriesActive && t.meshMessageDeliveries < p.meshMessageDeliveriesThreshold {
            let deficit = p.meshMessageDeliveriesThreshold - t.meshMessageDeliveries
            t.meshFailurePenalty += deficit * deficit
        }
        t.inMesh = false
        stats.topics[topic] = t
    }

    mutating func firstDelivery(_ peer: PeerID, topic: String) {
        guard let p = parameters.topics[topic], peers[peer] != nil else { return }
        var t = peers[peer]!.topics[topic] ?? TopicStats()
        t.firstMessageDeliveries = min(t.firstMessageDeliveries + 1, p.firstMessageDeliveriesCap)
        if t.inMesh { t.meshMessageDeliveries = min(t.meshMessageDeliveries + 1, p.meshMessageDeliveriesCap) }
        peers[peer]!.topics[topic] = t
    }

    /// A duplicate that arrived within the mesh delivery window still counts for P3.
    mutating func nearFirstDelivery(_ peer: PeerID, topic: String, delayMs: Millis) {
        guard let p = parameters.topics[topic], delayMs <= p.meshMessageDeliveriesWindowMs,
              var t = peers[peer]?.topics[topic], t.inMesh else { return }
        t.meshMessageDeliveries = min(t.meshMessageDeliveries + 1, p.meshMessageDeliveriesCap)
        peers[peer]!.topics[topic] = t
    }

    mutating func invalidMessage(_ peer: PeerID, topic: String) {
        guard parameters.topics[topic] != nil, peers[peer] != nil else { return }
        peers[peer]!.topics[topic, default: TopicStats()].invalidMessageDeliveries += 1
    }

    mutating func addPenalty(_ peer: PeerID, _ amount: Double) {
        guard peers[peer] != nil else { return }
        peers[peer]!.behaviourPenalty += amount
    }

    mutating func setAppSpecific(_ peer: PeerID, _ value: Double) {
        guard peers[peer] != nil else { return }
        peers[peer]!.appSpecific = value
    }

    /// Decays counters once per decay interval and refreshes mesh times.
    mutating func refresh(now: Millis) {
        let decayDue = now &- lastDecay >= parameters.decayIntervalMs
        if decayDue { lastDecay = now }
        let zero = parameters.decayToZero
        func decay(_ v: inout Double, _ factor: Double) {
            v *= factor
            if abs(v) < zero { v = 0 }
        }
        for peer in Array(peers.keys) {
            var stats = peers[peer]!
            if let expiry = stats.expiresAt, expiry <= now {
                peers[peer] = nil
                continue
            }
            for (topic, var t) in stats.topics {
                guard let p = parameters.topics[topic] else { continue }
                if t.inMesh {
                    t.meshTimeMs = now &- t.graftTime
                    if t.meshTimeMs >= p.meshMessageDeliveriesActivationMs { t.meshMessageDeliveriesActive = true }
                }
                if decayDue {
                    decay(&t.firstMessageDeliveries, p.firstMessageDeliveriesDecay)
                    decay(&t.meshMessageDeliveries, p.meshMessageDeliveriesDecay)
                    decay(&t.meshFailurePenalty, p.meshFailurePenaltyDecay)
                    decay(&t.invalidMessageDeliveries, p.invalidMessageDeliveriesDecay)
                }
                stats.topics[topic] = t
            }
            if decayDue { decay(&stats.behaviourPenalty, parameters.behaviourPenaltyDecay) }
            peers[peer] = stats
        }
    }
}


