import Identity
import Registry

/// PLACEHOLDER evidence (Specs/rewards.md "Inputs"): what one node saw of the others'
/// liveness in its own registry, sampled over time. `RewardsService` uses it for the demand
/// only (the active sessions records declare), until countersigned session receipts replace
/// it; availability, positions and the node set come from the QoS set. It is this node's view,
/// not the network's: other peers see slightly different samples, and it starts empty at
/// every start of the node.
///
/// Pure: the caller passes each sample and its time. Between two samples `Δ` apart, a node
/// seen before the interval is observed for `Δ` (its lifetime `l` grows) and up for `Δ` when
/// it was live at the interval's start (`u` grows; a record stays live until its TTL lapses,
/// so a node that died in the interval is still live at its start either way). A gap longer than `maxGapMs` (this node was
/// stopped or stalled) credits nobody: what happened then was not observed. Intervals are split
/// at epoch boundaries, and the first sample of a new epoch closes the previous one.
public struct LivenessObserver: Sendable {
    /// One live record in a sample.
    public struct Sighting: Hashable, Sendable {
        public var node: PeerID
        public var position: GeoPoint?
        public var activeSessions: Int
        public init(node: PeerID, position: GeoPoint?, activeSessions: Int) {
            self.node = node
            self.position = position
            self.activeSessions = activeSessions
        }
    }

    struct History: Sendable {
        var firstSeenMs: UInt64
        var upMs: UInt64 = 0
        var observedMs: UInt64 = 0
        var lastSeenMs: UInt64
        var position: GeoPoint?
        /// In the current epoch: seen live at least once, and ∫ declared sessions dt (ms).
        var seenThisEpoch = false
        var sessionMs: Double = 0
        var observedThisEpochMs: UInt64 = 0
    }

    public let epochs: RewardEpochs
    public let maxGapMs: UInt64
    /// A node not seen for this long is forgotten (its history restarts if it comes back).
    public let forgetAfterMs: UInt64
    public private(set) var currentEpoch: UInt64?
    private var lastSampleMs: UInt64?
    /// The last sample: live nodes and the sessions their records declared.
    private var live: [PeerID: Int] = [:]
    private var histories: [PeerID: History] = [:]

    public init(epochs: RewardEpochs, maxGapMs: UInt64, forgetAfterMs: UInt64) {
        self.epochs = epochs
        self.maxGapMs = maxGapMs
        self.forgetAfterMs = forgetAfterMs
    }

    public var nodeCount: Int { histories.count }

    /// Feeds one sample taken at `nowMs`. Returns the inputs of every epoch this sample closed
    /// (at most one unless samples skip whole epochs; skipped epochs were not observed and
    /// close empty of credit).
    public mutating func observe(_ sightings: [Sighting], atMs now: UInt64) -> [RewardInputs] {
        var closed: [RewardInputs] = []
        if let last = lastSampleMs, now < last { return [] }  // time went backwards: ignore the sample
        let epoch = epochs.epoch(atMs: now)
        if currentEpoch == nil { currentEpoch = epoch }
        if let last = lastSampleMs {
            let credited = now - last <= maxGapMs
            var from = last
            while let current = currentEpoch, current < epoch {
                let boundary = epochs.endMs(current)
                if credited && boundary > from { credit(from: from, to: boundary) }
                from = max(from, boundary)
                closed.append(close(current))
                currentEpoch = current + 1
            }
            if credited && now > from { credit(from: from, to: now) }
        }
        lastSampleMs = now
        live = [:]
        for s in sightings {
            live[s.node] = max(0, s.activeSessions)
            if histories[s.node] == nil { histories[s.node] = History(firstSeenMs: now, lastSeenMs: now) }
            histories[s.node]!.lastSeenMs = now
            histories[s.node]!.position = s.position
            histories[s.node]!.seenThisEpoch = true
        }
        if now >= forgetAfterMs {
            let horizon = now - forgetAfterMs
            histories = histories.filter { $0.value.lastSeenMs >= horizon }
        }
        return closed
    }

    private mutating func credit(from: UInt64, to: UInt64) {
        let span = to - from
        for key in Array(histories.keys) {
            guard let h = histories[key], h.firstSeenMs <= from else { continue }
            var n = h
            n.observedMs += span
            n.observedThisEpochMs += span
            if let sessions = live[key] {
                n.upMs += span
                n.sessionMs += Double(sessions) * Double(span)
            }
            histories[key] = n
        }
    }

    private mutating func close(_ epoch: UInt64) -> RewardInputs {
        let inputs = self.inputs(epoch)
        for key in Array(histories.keys) {
            histories[key]!.seenThisEpoch = false
            histories[key]!.sessionMs = 0
            histories[key]!.observedThisEpochMs = 0
        }
        return inputs
    }

    /// The current epoch's inputs so far (a provisional ledger), or nil before any sample.
    public func provisional() -> RewardInputs? {
        currentEpoch.map(inputs)
    }

    /// Nodes seen live in the epoch, with lifetime u and l so far; demand = each node's mean
    /// declared sessions over the time it was observed in the epoch, at its position.
    private func inputs(_ epoch: UInt64) -> RewardInputs {
        var nodes: [RewardNodeInput] = []
        var demand: [DemandPoint] = []
        for (key, h) in histories where h.seenThisEpoch {
            nodes.append(RewardNodeInput(node: key, position: h.position, uptimeSeconds: Double(h.upMs) / 1000,
                                         lifetimeSeconds: Double(h.observedMs) / 1000, quality: nil))
            if let p = h.position, h.observedThisEpochMs > 0, h.sessionMs > 0 {
                demand.append(DemandPoint(position: p, participants: h.sessionMs / Double(h.observedThisEpochMs)))
            }
        }
        return RewardInputs(epoch: epoch, nodes: nodes, demand: demand)
    }
}
