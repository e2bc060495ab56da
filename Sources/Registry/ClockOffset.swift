import Identity

/// What the registry tolerates of wrong clocks, and how a node learns how wrong its own is
/// (Specs/registry.md "Clocks"). Pure: the shell feeds samples and the time in.
public enum ClockSkew {
    /// The skew bound. A node whose clock is at most this far from its peers' median corrects
    /// its registry clock by that much; records stamped up to this far ahead of a receiver's
    /// (corrected) clock are accepted. A node further off is not corrected — its peers would
    /// need to be trusted with arbitrary shifts of its clock — and is refused: its records
    /// arrive from the future or already expired, and it says so.
    public static let toleranceMs: Int64 = 600_000
    /// Offsets below this are neither corrected nor reported: NTP-synchronised nodes keep
    /// their own clock exactly, and the estimate's own error (half a round trip) stays out.
    public static let deadBandMs: Int64 = 2_000
    /// A peer's sample is used for this long (monotonic ms); it is taken again after half of
    /// it, so that a peer that corrected its own clock meanwhile is soon seen as it is now.
    public static let sampleLifetimeMs: UInt64 = 5 * 60_000
}

/// This node's clock against its peers', from exchanged wall-clock readings
/// (`/drtc/clock/1.0.0`, Specs/registry.md "Clocks").
///
/// Each peer contributes its latest sample: how far this node's wall clock is ahead of the
/// peer's registry clock (negative: behind). The estimate is the median of those and of this
/// node's own zero. With an even count it is decided only when the two middle values agree
/// (within the dead band; the one closer to zero is taken): otherwise the clocks split in two
/// disagreeing halves and the node is `undecided`. So a node moves only when more than half of
/// the clocks it knows, its own included, put it at least that far off to the same side: one
/// peer, or any minority of liars, cannot move it.
public struct ClockOffsetEstimator: Sendable {
    public enum Status: String, Sendable {
        /// No peer sample yet: the wall clock is used as it is.
        case unknown
        /// The clocks known split in two halves that disagree — this node's own against one
        /// peer, say: nobody can tell which is wrong, so the wall clock is used as it is.
        case undecided
        /// Within the dead band: the wall clock is used as it is.
        case ok
        /// Off by more than the dead band, within the tolerance: corrected.
        case corrected
        /// Off by more than the tolerance: not corrected; peers refuse this node's records.
        case refused
    }

    public struct Estimate: Sendable, Equatable {
        /// Whether this node's clock agrees with a majority of the clocks it knows (after the
        /// correction): then a record that fails the time checks is the sender's fault.
        public var isSettled: Bool { status == .ok || status == .corrected }

        /// How far this node's wall clock is ahead of its peers' median (ms; negative: behind).
        public var offsetMs: Int64
        /// What the registry clock subtracts from the wall clock (ms): `offsetMs` when
        /// corrected, else 0.
        public var correctionMs: Int64
        public var status: Status
        /// Peers whose samples count.
        public var peers: Int

        public init(offsetMs: Int64, correctionMs: Int64, status: Status, peers: Int) {
            self.offsetMs = offsetMs
            self.correctionMs = correctionMs
            self.status = status
            self.peers = peers
        }
    }

    struct Sample: Sendable {
        var offsetMs: Int64
        var takenAtMs: UInt64
    }

    private var samples: [PeerID: Sample] = [:]
    private var correcting = false

    public init() {}

    /// The offset one exchange shows: this node read `localWallMs` on its wall clock when the
    /// answer arrived, `roundTripMs` after it asked; the peer read `remoteWallMs` in between.
    /// The peer's reading is taken to fall at the midpoint of the round trip (as NTP does), so
    /// the error is at most half the round trip.
    public static func offset(localWallMs: UInt64, roundTripMs: UInt64, remoteWallMs: UInt64) -> Int64 {
        let midpoint = Int64(bitPattern: localWallMs &- roundTripMs / 2)
        return midpoint &- Int64(bitPattern: remoteWallMs)
    }

    /// Records `peer`'s latest sample, taken at `nowMs` on the monotonic clock.
    public mutating func add(_ peer: PeerID, offsetMs: Int64, nowMs: UInt64) {
        samples[peer] = Sample(offsetMs: offsetMs, takenAtMs: nowMs)
    }

    /// Drops the samples of peers not in `peers` (disconnected ones).
    public mutating func keep(only peers: Set<PeerID>) {
        samples = samples.filter { peers.contains($0.key) }
    }

    /// Whether `peer` should be asked again: no sample, or one past half its lifetime.
    public func needsSample(_ peer: PeerID, nowMs: UInt64) -> Bool {
        samples[peer].map { nowMs &- $0.takenAtMs >= ClockSkew.sampleLifetimeMs / 2 } ?? true
    }

    /// The current estimate; drops samples past their lifetime. Correction starts beyond the
    /// dead band and, once started, continues down to half of it, so an offset hovering at the
    /// dead band does not toggle the registry clock back and forth.
    public mutating func estimate(nowMs: UInt64) -> Estimate {
        samples = samples.filter { nowMs &- $0.value.takenAtMs < ClockSkew.sampleLifetimeMs }
        guard !samples.isEmpty else {
            correcting = false
            return Estimate(offsetMs: 0, correctionMs: 0, status: .unknown, peers: 0)
        }
        let (offset, decided) = Self.median(samples.values.map(\.offsetMs) + [0])
        let magnitude = offset.magnitude
        let status: Status
        if !decided {
            status = .undecided
        } else if magnitude > UInt64(ClockSkew.toleranceMs) {
            status = .refused
        } else if magnitude >= UInt64(ClockSkew.deadBandMs) || (correcting && magnitude >= UInt64(ClockSkew.deadBandMs / 2)) {
            status = .corrected
        } else {
            status = .ok
        }
        correcting = status == .corrected
        return Estimate(offsetMs: offset, correctionMs: status == .corrected ? offset : 0, status: status, peers: samples.count)
    }

    /// The median, and whether it is decided: of an even count, the middle value closer to
    /// zero, decided when the two middle values lie within the dead band of each other.
    static func median(_ offsets: [Int64]) -> (Int64, decided: Bool) {
        let all = offsets.sorted()
        let mid = all.count / 2
        if all.count % 2 == 1 { return (all[mid], true) }
        let (a, b) = (all[mid - 1], all[mid])
        let decided = (b &- a).magnitude < UInt64(ClockSkew.deadBandMs)
        if a.magnitude == b.magnitude { return (a == b ? a : 0, decided) }
        return (a.magnitude < b.magnitude ? a : b, decided)
    }
}
