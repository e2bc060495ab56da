import CoreMetrics
import HTTPAPI
import Identity
import Libp2pNIO
import Logging
import Registry
import ServiceLifecycle
import Synchronization

/// The registry's clock: the wall clock, corrected by this node's estimated offset against its
/// peers when that offset is beyond the dead band and within the tolerance
/// (`ClockOffsetEstimator`, Specs/registry.md "Clocks"). Records are stamped, judged (future
/// bound, expiry, replay, garbage collection) and served on this clock.
public final class MeshClock: Sendable {
    private let wall: @Sendable () -> UInt64
    private let estimator = Mutex(ClockOffsetEstimator())
    private let current = Mutex(ClockOffsetEstimator.Estimate(offsetMs: 0, correctionMs: 0, status: .unknown, peers: 0))

    public init(wall: @escaping @Sendable () -> UInt64 = wallClockMs) { self.wall = wall }

    /// Registry milliseconds: the wall clock minus the correction.
    public func now() -> UInt64 {
        let correction = current.withLock { $0.correctionMs }
        return wall() &- UInt64(bitPattern: correction)
    }

    /// The uncorrected wall clock, against which the offset is measured.
    public func wallNow() -> UInt64 { wall() }

    public var estimate: ClockOffsetEstimator.Estimate { current.withLock { $0 } }

    /// Adds a sample (or forgets peers) and returns the new estimate.
    @discardableResult
    func update(_ change: (inout ClockOffsetEstimator) -> Void, nowMs: UInt64) -> ClockOffsetEstimator.Estimate {
        estimator.withLock { e in
            change(&e)
            let new = e.estimate(nowMs: nowMs)
            current.withLock { $0 = new }
            return new
        }
    }

    func needsSample(_ peer: PeerID, nowMs: UInt64) -> Bool {
        estimator.withLock { $0.needsSample(peer, nowMs: nowMs) }
    }
}

/// `/drtc/clock/1.0.0` (Specs/registry.md "Clocks"): the clock exchange. Every node asks
/// each connected peer for its registry clock when the connection is new and then every
/// `ClockSkew.sampleLifetimeMs / 2`, and measures its own wall clock against the answers
/// (`MeshClock`). The service logs the estimate when its status changes (and a refused node's
/// every 10 minutes) and exports it as metrics; `/health` reports it.
///
/// Wire: the initiator writes its registry clock as 8 bytes (u64 big endian, ms since the Unix
/// epoch); the responder answers with its own the same way and closes.
struct ClockService: Service {
    static let protocolID = "/drtc/clock/1.0.0"
    /// Exchanges running at once.
    static let maxInFlight = 4
    /// How long before a peer whose exchange failed is asked again.
    static let retryMs: UInt64 = 60_000

    let host: Libp2pHost
    let clock: MeshClock
    let metrics: DrtcMetrics
    let logger: Logger

    /// Serves the exchange. Call before the host accepts connections.
    static func serve(on host: Libp2pHost, clock: MeshClock) {
        host.setStreamHandler(protocolID) { stream in
            do {
                let request = try await stream.read(exactly: 8)
                guard request.count == 8 else { return stream.reset() }
                try await stream.write(encode(clock.now()))
                await stream.closeWrite()
            } catch {
                stream.reset()
            }
        }
    }

    static func encode(_ ms: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: ms >> (56 - 8 * $0)) } }

    static func decode(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    func run() async throws {
        let offset = Meter(label: "drtc_clock_offset_ms", factory: metrics.factory)
        let correction = Meter(label: "drtc_clock_correction_ms", factory: metrics.factory)
        let refused = Meter(label: "drtc_clock_refused", factory: metrics.factory)
        let peers = Meter(label: "drtc_clock_offset_peers", factory: metrics.factory)
        // Set at scrape time, from the estimate `/health` reports too.
        metrics.onScrape { [clock] in
            let e = clock.estimate
            offset.set(Double(e.offsetMs))
            correction.set(Double(e.correctionMs))
            refused.set(e.status == .refused ? 1 : 0)
            peers.set(e.peers)
        }
        let state = Exchanges()
        try? await cancelWhenGracefulShutdown {
            var lastRefusalLog: UInt64 = 0
            // The status last logged: samples change the estimate in between ticks, and every
            // change of status is logged once, at the next tick.
            var reported = ClockOffsetEstimator.Status.unknown
            await withTaskGroup(of: Void.self) { group in
                while !Task.isCancelled {
                    let now = monotonicMs()
                    let connected = Set(host.connectedPeers)
                    let new = clock.update({ $0.keep(only: connected) }, nowMs: now)
                    report(from: reported, to: new, now: now, lastRefusalLog: &lastRefusalLog)
                    reported = new.status
                    state.asked.withLock { a in a = a.filter { connected.contains($0.key) } }
                    let due = connected.filter { peer in
                        clock.needsSample(peer, nowMs: now) && state.asked.withLock { a in a[peer].map { now &- $0 >= Self.retryMs } ?? true }
                    }.sorted()
                    for peer in due {
                        guard state.inFlight.withLock({ $0.count < Self.maxInFlight && $0.insert(peer).inserted }) else { continue }
                        state.asked.withLock { $0[peer] = now }
                        group.addTask {
                            await exchange(with: peer)
                            state.inFlight.withLock { _ = $0.remove(peer) }
                        }
                    }
                    do { try await Task.sleep(for: .seconds(1)) } catch { break }
                }
                group.cancelAll()
            }
        }
    }

    /// Exchanges running, and when each peer was last asked (monotonic ms): a peer that does
    /// not answer (another implementation, without the protocol) is asked again after `retryMs`.
    private final class Exchanges: Sendable {
        let inFlight = Mutex<Set<PeerID>>([])
        let asked = Mutex<[PeerID: UInt64]>([:])
    }

    /// One exchange with `peer`; a sample on success. A peer without the protocol (another
    /// libp2p implementation) is simply not sampled: it is asked again after `retryMs`.
    private func exchange(with peer: PeerID) async {
        do {
            let stream = try await host.newStream(to: peer, protocols: [Self.protocolID])
            let sent = monotonicMs()
            try await stream.write(Self.encode(clock.now()))
            let answer = try await stream.read(exactly: 8)
            let received = monotonicMs()
            let wall = clock.wallNow()
            stream.reset()
            guard let remote = Self.decode(answer) else { throw Libp2pError("clock exchange: short answer") }
            let offset = ClockOffsetEstimator.offset(localWallMs: wall, roundTripMs: received &- sent, remoteWallMs: remote)
            clock.update({ $0.add(peer, offsetMs: offset, nowMs: received) }, nowMs: received)
        } catch {
            logger.debug("clock exchange failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
    }

    private func report(from old: ClockOffsetEstimator.Status, to new: ClockOffsetEstimator.Estimate, now: UInt64, lastRefusalLog: inout UInt64) {
        let seconds = Double(new.offsetMs) / 1000
        let side = new.offsetMs >= 0 ? "ahead of" : "behind"
        let metadata: Logger.Metadata = ["clockOffsetMs": "\(new.offsetMs)", "peers": "\(new.peers)"]
        switch new.status {
        case .refused where old != .refused || now &- lastRefusalLog >= 600_000:
            lastRefusalLog = now
            logger.error("this node's clock is \(seconds.magnitude.rounded()) s \(side) the median of its peers' clocks, beyond the \(ClockSkew.toleranceMs / 1000) s the mesh tolerates: peers refuse its records (future_timestamp, or expired on arrival) and it sees theirs as expired. Fix the system clock (NTP)", metadata: metadata)
        case .undecided where old != .undecided:
            logger.warning("this node's clock and its peers' disagree, and no majority of them agrees where this node's should be: nothing is corrected. If this node's clock is wrong, fix it (NTP)", metadata: metadata)
        case .corrected where old != .corrected:
            logger.warning("this node's clock is \(seconds.magnitude.rounded()) s \(side) the median of its peers' clocks; the registry uses the corrected time. Fix the system clock (NTP)", metadata: metadata)
        case .ok, .unknown:
            if old == .corrected || old == .refused || old == .undecided {
                logger.notice("this node's clock agrees with its peers again", metadata: metadata)
            }
        default:
            break
        }
    }
}
