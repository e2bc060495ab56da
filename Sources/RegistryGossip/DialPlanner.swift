import Identity

/// Which peers a node dials to stay between `--min-peers` and `--max-peers` connections, and
/// the backoff after failed dials (Specs/gossip.md "Peer discovery and connections"). Pure:
/// `MeshService` carries out its choices over NIO, the simulator over simulated links.
public struct DialPlanner: Sendable {
    var failures: [PeerID: (count: Int, retryAt: UInt64)] = [:]

    public init() {}

    public mutating func failed(_ peer: PeerID, now: UInt64) {
        let count = (failures[peer]?.count ?? 0) + 1
        // 2, 4, 8 … 256 s between attempts at a peer that does not answer.
        failures[peer] = (count, now + UInt64(1 << min(8, count)) * 1000)
    }

    /// A connection with `peer` is up, dialled or accepted. If dials to it had been failing,
    /// the network between here and there has changed — a partition healed, or this node's own
    /// link came back — so every backoff is lifted: the peers that were out of reach are the
    /// ones most likely reachable again, and after a long cut they would otherwise wait up to
    /// 256 s each (Specs/gossip.md "Partitions").
    public mutating func succeeded(_ peer: PeerID) {
        if failures[peer] != nil { failures.removeAll() }
    }

    public func mayDial(_ peer: PeerID, now: UInt64) -> Bool { (failures[peer]?.retryAt ?? 0) <= now }

    /// Up to `count` candidates, round-robin over regions so the connections spread across
    /// them, random within a region.
    public static func spread(_ candidates: [(peer: PeerID, region: String)], count: Int) -> [PeerID] {
        var rng = SystemRandomNumberGenerator()
        return spread(candidates, count: count, using: &rng)
    }

    /// `spread` with the caller's random source (the simulator passes a seeded one). Regions
    /// are sorted before shuffling so that the choice depends on the generator only.
    public static func spread<R: RandomNumberGenerator>(_ candidates: [(peer: PeerID, region: String)], count: Int, using rng: inout R) -> [PeerID] {
        var byRegion: [String: [PeerID]] = [:]
        for c in candidates { byRegion[c.region, default: []].append(c.peer) }
        var regions = byRegion.keys.sorted()
        for key in regions { byRegion[key]!.shuffle(using: &rng) }
        regions.shuffle(using: &rng)
        var out: [PeerID] = []
        while out.count < count && !regions.isEmpty {
            regions = regions.filter { !(byRegion[$0]?.isEmpty ?? true) }
            for region in regions where out.count < count {
                if let peer = byRegion[region]?.popLast() { out.append(peer) }
            }
        }
        return out
    }

    /// The targets for `missing` new connections: peers named by peer exchange first (if their
    /// address is known), then `candidates` spread over regions, then **one** bootstrap peer
    /// per round. One sync gives a joiner the table, and with it everyone else to dial; a
    /// joiner dialling every bootstrap peer at once tripled their load in a join storm and
    /// filled their connection limits (`drtc sim --scenario join-storm --peers 1000`).
    public static func targets<R: RandomNumberGenerator>(
        missing: Int, exchanged: [PeerID], candidates: [(peer: PeerID, region: String)],
        bootstrap: [PeerID], using rng: inout R
    ) -> [PeerID] {
        guard missing > 0 else { return [] }
        let known = Set(candidates.map(\.peer))
        var targets = Array(exchanged.filter { known.contains($0) }.prefix(missing))
        let chosen = Set(targets)
        targets += spread(candidates.filter { !chosen.contains($0.peer) }, count: missing - targets.count, using: &rng)
        let unused = bootstrap.filter { !targets.contains($0) }
        if targets.count < missing, !unused.isEmpty {
            targets.append(unused[Int(rng.next() % UInt64(unused.count))])
        }
        return targets
    }
}

extension DialPlanner {
    /// How long a new connection is "young": long enough for the dialler's registry sync (or
    /// busy reply) and its first GRAFT. Without it a bootstrap peer above `--max-peers` closed
    /// every joiner within a second, before the joiner had learned a single other peer, and
    /// the joiner redialled it forever (`drtc sim --scenario join-storm --peers 1000`).
    public static let trimGraceMs: UInt64 = 2_000

    /// The connections to close (Specs/gossip.md "Peer discovery and connections"):
    ///
    /// - Settled connections (older than `trimGraceMs`) above `maxPeers`, inbound before
    ///   outbound (the peers this node chose are the ones an attacker cannot pick), outside
    ///   the gossip mesh before inside; random within a rank.
    /// - Young inbound connections beyond `maxPeers` of them, oldest first: they had their
    ///   chance to sync, and a flood of new inbound connections cannot push settled ones out.
    public static func connectionsToClose<R: RandomNumberGenerator>(
        _ connections: [(peer: PeerID, outbound: Bool, ageMs: UInt64)], mesh: Set<PeerID>, maxPeers: Int, using rng: inout R
    ) -> [PeerID] {
        func rank(_ c: (peer: PeerID, outbound: Bool, ageMs: UInt64)) -> Int { (c.outbound ? 2 : 0) + (mesh.contains(c.peer) ? 1 : 0) }
        var settled = connections.filter { $0.ageMs >= trimGraceMs }
        settled.shuffle(using: &rng)
        // Stable by rank: a shuffled order within each rank.
        let ranked = settled.enumerated().sorted { a, b in
            rank(a.element) != rank(b.element) ? rank(a.element) < rank(b.element) : a.offset < b.offset
        }.map(\.element.peer)
        var close = Array(ranked.prefix(max(0, settled.count - maxPeers)))
        let young = connections.filter { $0.ageMs < trimGraceMs && !$0.outbound }
            .sorted { $0.ageMs != $1.ageMs ? $0.ageMs > $1.ageMs : $0.peer < $1.peer }
        close += young.prefix(max(0, young.count - maxPeers)).map(\.peer)
        return close
    }
}
