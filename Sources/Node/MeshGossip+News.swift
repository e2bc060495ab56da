import Identity
import RegistryGossip

/// Partitions that heal in seconds (Specs/gossip.md "Partitions"): a sync that brings records
/// gossip never brought starts a wave of syncs with every other connected peer
/// (`SyncPolicy.sessionBrought`), run one at a time in the initiator slot.
extension MeshGossip {
    /// A session with `peer` merged `news` records that are news.
    func noteNews(_ news: Int, from peer: PeerID) {
        guard news > 0 else { return }
        let connected = host.connectedPeers
        var rng = SystemRandomNumberGenerator()
        let started = syncPolicy.withLock { $0.sessionBrought(news: news, from: peer, connected: connected, nowMs: monotonicMs(), using: &rng) }
        if started {
            logger.info("registry sync brought records gossip never did (a healed partition?): reconciling with every peer",
                        metadata: ["peer": "\(peer)", "records": "\(news)", "peers": "\(connected.count - 1)"])
        }
    }

    /// Runs the due sessions of a wave, one after another, while the initiator slot is free.
    func spreadNews() async {
        while true {
            let connected = Set(host.connectedPeers)
            guard let peer = syncPolicy.withLock({ $0.spreadDue(isConnected: connected.contains) }) else { return }
            let completed = await syncWith(peer)
            syncPolicy.withLock { $0.initiatorEnded(completed: completed) }
        }
    }
}
