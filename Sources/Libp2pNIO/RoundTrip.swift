/// A connection's round-trip time, from its Yamux pings (the keep-alive, the first one sent as
/// soon as the connection is up): the least of the last `window` samples. The minimum is what
/// the path costs without queueing; on a loaded machine a mean or a smoothed value follows the
/// scheduler's delays instead (Specs/gossip.md "Duplicates" uses it to hold forwards).
public struct RoundTripEstimate: Sendable {
    public static let window = 4
    private var samples: [UInt64] = []

    public init() {}

    /// Adds a sample in microseconds.
    public mutating func add(microseconds: UInt64) {
        samples.append(microseconds)
        if samples.count > Self.window { samples.removeFirst(samples.count - Self.window) }
    }

    /// The estimate in milliseconds (rounded up: a sub-millisecond loopback link is 1 ms), nil
    /// before the first sample.
    public var milliseconds: UInt64? { samples.min().map { ($0 + 999) / 1000 } }
}
