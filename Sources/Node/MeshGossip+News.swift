import Identity
import RegistryGossip

/// Partitions that heal in seconds (Specs/gossip.md "Partitions"): a sync that brings items
/// gossip never brought starts a wave of syncs of that set with every other connected peer
/// (`SyncPolicy.sessionBrought`), run one at a time in the set's initiator slot.
extension MeshGossip {
    /// A session of `state`'s set with `peer` merged `news` items that are news.
    func noteNews(_ news: Int, from peer: PeerID, _ state: SetState) {
        guard news > 0 else { return }
        let connected = host.connectedPeers
        var rng = SystemRandomNumberGenerator()
        let started = state.policy.withLock { $0.sessionBrought(news: news, from: peer, connected: connected, nowMs: monotonicMs(), using: &rng) }
        if started {
            logger.info("sync brought items gossip never did (a healed partition?): reconciling with every peer",
                        metadata: ["peer": "\(peer)", "protocol": "\(state.set.protocolID)", "items": "\(news)", "peers": "\(connected.count - 1)"])
        }
    }

    /// Runs the due sessions of a wave, one after another, while the set's initiator slot is free.
    func spreadNews(_ state: SetState) async {
        while true {
            let connected = Set(host.connectedPeers)
            guard let peer = state.policy.withLock({ $0.spreadDue(isConnected: connected.contains) }) else { return }
            let completed = await syncWith(peer, state)
            state.policy.withLock { $0.initiatorEnded(completed: completed) }
        }
    }
}
