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

    let parameters: ScoreParameters
    private(set) var peers: [PeerID: PeerStats] = [:]
    /// Connected peers per IP, for P6.
    private var peersByIP: [String: Set<PeerID>] = [:]
    /// `computeScore` of each peer's stats, kept current by every change to them (`update`,
    /// `refresh`): the router asks for scores several times per frame (every forward target,
    /// every RPC), and computing one walks the topic table by name. A table of plain numbers,
    /// so that a lookup copies nothing out.
    private var scores: [PeerID: Double] = [:]
    private var lastDecay: Millis = 0

    init(parameters: ScoreParameters) { self.parameters = parameters }

    /// The peer's score. It depends on the peer's counters only (and on how many peers share
    /// its IP), not on `now`: the counters move with events and `refresh`, so the value is kept
    /// with the stats and recomputed when they change.
    func score(_ peer: PeerID, now: Millis) -> Double {
        scores[peer] ?? 0
    }

    /// The score computed afresh from the peer's stats, for checking the kept value (tests).
    func recomputedScore(_ peer: PeerID) -> Double {
        peers[peer].map(computeScore) ?? 0
    }

    /// Applies `edit` to a peer's stats (creating them if `create`) and recomputes its score.
    @inline(__always)
    private mutating func update(_ peer: PeerID, create: Bool = false, _ edit: (inout PeerStats) -> Void) {
        if create && peers[peer] == nil { peers[peer] = PeerStats() }
        guard let i = peers.index(forKey: peer) else { return }
        edit(&peers.values[i])
        scores[peer] = computeScore(peers.values[i])
    }

    /// Recomputes the scores of the peers with `ip` — connected or remembered after leaving —
    /// when the number of connected peers sharing it (P6) changes.
    private mutating func rescore(ip: String?) {
        guard let ip else { return }
        for (peer, stats) in peers where stats.ip == ip { scores[peer] = computeScore(stats) }
    }

    private func computeScore(_ stats: PeerStats) -> Double {
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
        update(peer) { _ in }
        rescore(ip: ip)
    }

    mutating func disconnected(_ peer: PeerID, now: Millis) {
        guard var stats = peers[peer] else { return }
        if let ip = stats.ip { peersByIP[ip]?.remove(peer) }
        for topic in Array(stats.topics.keys) { Self.leaveMesh(&stats, topic: topic, parameters: parameters) }
        // A peer leaving with a good score is forgotten at once; a bad one is remembered,
        // so that reconnecting does not clear its penalties.
        if score(peer, now: now) > 0 {
            peers[peer] = nil
            scores[peer] = nil
        } else {
            stats.expiresAt = now &+ parameters.retainScoreMs
            peers[peer] = stats
            scores[peer] = computeScore(stats)
        }
        rescore(ip: stats.ip)
    }

    mutating func graft(_ peer: PeerID, topic: String, now: Millis) {
        guard parameters.topics[topic] != nil else { return }
        var t = peers[peer]?.topics[topic] ?? TopicStats()
        t.inMesh = true
        t.graftTime = now
        t.meshTimeMs = 0
        t.meshMessageDeliveriesActive = false
        update(peer, create: true) { $0.topics[topic] = t }
    }

    mutating func prune(_ peer: PeerID, topic: String) {
        let parameters = parameters
        update(peer) { Self.leaveMesh(&$0, topic: topic, parameters: parameters) }
    }

    private static func leaveMesh(_ stats: inout PeerStats, topic: String, parameters: ScoreParameters) {
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
        guard let p = parameters.topics[topic] else { return }
        update(peer) { stats in
            var t = stats.topics[topic] ?? TopicStats()
            t.firstMessageDeliveries = min(t.firstMessageDeliveries + 1, p.firstMessageDeliveriesCap)
            if t.inMesh { t.meshMessageDeliveries = min(t.meshMessageDeliveries + 1, p.meshMessageDeliveriesCap) }
            stats.topics[topic] = t
        }
    }

    /// A duplicate that arrived within the mesh delivery window still counts for P3.
    mutating func nearFirstDelivery(_ peer: PeerID, topic: String, delayMs: Millis) {
        // `peers[peer]?.topics[topic]` copied the peer's stats out (retaining its topic table).
        guard let p = parameters.topics[topic], delayMs <= p.meshMessageDeliveriesWindowMs,
              let i = peers.index(forKey: peer), var t = peers.values[i].topics[topic], t.inMesh else { return }
        t.meshMessageDeliveries = min(t.meshMessageDeliveries + 1, p.meshMessageDeliveriesCap)
        update(peer) { $0.topics[topic] = t }
    }

    mutating func invalidMessage(_ peer: PeerID, topic: String) {
        guard parameters.topics[topic] != nil else { return }
        update(peer) { $0.topics[topic, default: TopicStats()].invalidMessageDeliveries += 1 }
    }

    mutating func addPenalty(_ peer: PeerID, _ amount: Double) {
        update(peer) { $0.behaviourPenalty += amount }
    }

    mutating func setAppSpecific(_ peer: PeerID, _ value: Double) {
        update(peer) { $0.appSpecific = value }
    }

    /// Decays counters once per decay interval and refreshes mesh times.
    mutating func refresh(now: Millis) {
        let decayDue = now &- lastDecay >= parameters.decayIntervalMs
        if decayDue { lastDecay = now }
        // In place, by index: copying each peer's stats out and back (`var stats = peers[peer]!`
        // … `peers[peer] = stats`) copied its topic table on every heartbeat, as writing into
        // a table that is also iterated did. Expired peers are removed afterwards, in the same
        // order as before.
        var expired: [PeerID] = []
        var i = peers.startIndex
        while i != peers.endIndex {
            if let expiry = peers.values[i].expiresAt, expiry <= now {
                expired.append(peers.keys[i])
            } else {
                let parameters = parameters
                Self.refresh(&peers.values[i], now: now, decayDue: decayDue, parameters: parameters)
                scores[peers.keys[i]] = computeScore(peers.values[i])
            }
            peers.formIndex(after: &i)
        }
        for peer in expired {
            peers[peer] = nil
            scores[peer] = nil
        }
    }

    private static func refresh(_ stats: inout PeerStats, now: Millis, decayDue: Bool, parameters: ScoreParameters) {
        let zero = parameters.decayToZero
        func decay(_ v: inout Double, _ factor: Double) {
            v *= factor
            if abs(v) < zero { v = 0 }
        }
        var j = stats.topics.startIndex
        while j != stats.topics.endIndex {
            defer { stats.topics.formIndex(after: &j) }
            guard let p = parameters.topics[stats.topics.keys[j]] else { continue }
            Self.refresh(&stats.topics.values[j], p, now: now, decayDue: decayDue, decay: decay)
        }
        if decayDue { decay(&stats.behaviourPenalty, parameters.behaviourPenaltyDecay) }
    }

    private static func refresh(_ t: inout TopicStats, _ p: TopicScoreParameters, now: Millis, decayDue: Bool,
                                decay: (inout Double, Double) -> Void) {
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
    }
}


