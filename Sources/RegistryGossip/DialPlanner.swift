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

    public mutating func succeeded(_ peer: PeerID) { failures[peer] = nil }

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
    /// address is known), then `candidates` spread over regions, then the bootstrap peers.
    public static func targets<R: RandomNumberGenerator>(
        missing: Int, exchanged: [PeerID], candidates: [(peer: PeerID, region: String)],
        bootstrap: [PeerID], using rng: inout R
    ) -> [PeerID] {
        guard missing > 0 else { return [] }
        let known = Set(candidates.map(\.peer))
        var targets = Array(exchanged.filter { known.contains($0) }.prefix(missing))
        let chosen = Set(targets)
        targets += spread(candidates.filter { !chosen.contains($0.peer) }, count: missing - targets.count, using: &rng)
        if targets.count < missing {
            for peer in bootstrap where !targets.contains(peer) {
                targets.append(peer)
                if targets.count >= missing { break }
            }
        }
        return targets
    }
}

extension DialPlanner {
    /// The order in which to close connections above `--max-peers`: inbound peers outside the
    /// gossip mesh first, outbound mesh peers last; random within a rank.
    public static func trimOrder<R: RandomNumberGenerator>(_ connections: [(peer: PeerID, outbound: Bool)], mesh: Set<PeerID>, using rng: inout R) -> [PeerID] {
        func rank(_ c: (peer: PeerID, outbound: Bool)) -> Int { (mesh.contains(c.peer) ? 2 : 0) + (c.outbound ? 1 : 0) }
        var shuffled = connections
        shuffled.shuffle(using: &rng)
        // Stable by rank: a shuffled order within each rank.
        return shuffled.enumerated().sorted { a, b in
            rank(a.element) != rank(b.element) ? rank(a.element) < rank(b.element) : a.offset < b.offset
        }.map(\.element.peer)
    }
}
