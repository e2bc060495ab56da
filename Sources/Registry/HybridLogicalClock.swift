/// A hybrid logical clock timestamp (Kulkarni et al., "Logical Physical Clocks", 2014):
/// physical milliseconds since the Unix epoch plus a logical counter that orders events
/// within one millisecond and across small clock skews.
public struct HLC: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var wallMs: UInt64
    public var logical: UInt32

    public init(wallMs: UInt64, logical: UInt32 = 0) {
        self.wallMs = wallMs
        self.logical = logical
    }

    public static let zero = HLC(wallMs: 0)

    public static func < (a: HLC, b: HLC) -> Bool {
        (a.wallMs, a.logical) < (b.wallMs, b.logical)
    }

    public var description: String { "\(wallMs).\(logical)" }
}

/// The clock state of one node. Pure: the caller passes the physical time in.
public struct HybridLogicalClock: Sendable {
    public private(set) var last: HLC

    public init(last: HLC = .zero) { self.last = last }

    /// A timestamp for a local event (signing a new version of our own record).
    public mutating func tick(physicalMs: UInt64) -> HLC {
        if physicalMs > last.wallMs {
            last = HLC(wallMs: physicalMs, logical: 0)
        } else {
            last = HLC(wallMs: last.wallMs, logical: last.logical &+ 1)
        }
        return last
    }

    /// Folds in a timestamp seen on a remote record, so our next tick orders after it.
    public mutating func observe(_ remote: HLC, physicalMs: UInt64) {
        let wall = max(last.wallMs, remote.wallMs, physicalMs)
        var logical: UInt32 = 0
        if wall == last.wallMs && wall == remote.wallMs {
            logical = max(last.logical, remote.logical) &+ 1
        } else if wall == last.wallMs {
            logical = last.logical &+ 1
        } else if wall == remote.wallMs {
            logical = remote.logical &+ 1
        }
        last = HLC(wallMs: wall, logical: logical)
    }
}
