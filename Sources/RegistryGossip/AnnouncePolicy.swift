/// When a node republishes its own record outside its refresh schedule (Specs/gossip.md
/// "Liveness"): as soon as its gossip mesh goes from empty to non-empty — after start, or
/// after it lost every mesh peer. Records learned by sync are not re-gossiped, so without this
/// a joining node is known only to the peers it reconciles with until its next refresh
/// (T(N), up to an hour); with it the whole mesh holds its record about a second after it
/// joins (`drtc sim --scenario join-storm`, Specs/simulation.md).
public struct AnnouncePolicy: Sendable {
    private var isolated: Bool
    private var hadMesh = false

    /// `isolated: false` for a node that has already announced itself (the simulator's
    /// steady-state start): then the empty mesh before its first GRAFTs does not count, only
    /// losing a mesh it had does.
    public init(isolated: Bool = true) { self.isolated = isolated }

    /// Called about once a second with the current mesh size; true means "publish now".
    public mutating func shouldAnnounce(meshPeers: Int) -> Bool {
        if meshPeers == 0 {
            if hadMesh || isolated { isolated = true }
            return false
        }
        hadMesh = true
        defer { isolated = false }
        return isolated
    }
}
