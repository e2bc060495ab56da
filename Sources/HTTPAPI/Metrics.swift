import CoreMetrics
import Metrics
import Prometheus
import Registry
import Synchronization

/// The node's metrics: recorded through swift-metrics with an explicit Prometheus factory
/// (no global bootstrap, so several nodes can share a process in tests and the simulator),
/// exposed as Prometheus text on `/metrics`.
public final class DrtcMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    public let mergesAccepted: CoreMetrics.Counter
    public let liveRecords: CoreMetrics.Meter
    public let storedRecords: CoreMetrics.Meter
    public let storeMapGrowths: CoreMetrics.Counter
    /// 1 while registry commits fail (Specs/registry.md "A full disk"), else 0.
    public let storageDegraded: CoreMetrics.Meter
    /// Records merged in memory that are not on disk yet.
    public let deferredRecords: CoreMetrics.Meter

    public init() {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        // HTTP latencies on loopback are sub-millisecond; resolve them.
        f.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        ]
        factory = f
        mergesAccepted = CoreMetrics.Counter(label: "drtc_registry_merges_accepted_total", factory: f)
        liveRecords = CoreMetrics.Meter(label: "drtc_registry_records", factory: f)
        storedRecords = CoreMetrics.Meter(label: "drtc_registry_entries_stored", factory: f)
        storeMapGrowths = CoreMetrics.Counter(label: "drtc_store_map_growths_total", factory: f)
        storageDegraded = CoreMetrics.Meter(label: "drtc_registry_storage_degraded", factory: f)
        deferredRecords = CoreMetrics.Meter(label: "drtc_registry_deferred_records", factory: f)
    }

    /// Merges that changed nothing, by outcome (duplicate, stale, expired).
    public func mergeIgnored(_ outcome: MergeOutcome) {
        counter("drtc_registry_merges_ignored_total", "outcome", outcome.label).increment()
    }

    public func mergeRejected(_ rejection: RecordRejection) {
        counter("drtc_registry_merges_rejected_total", "reason", rejection.reason).increment()
    }

    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])

    /// A counter with one label, created once: rejections can arrive at flood rates, and a
    /// registry lookup per increment would cost more than the count.
    public func counter(_ label: String, _ dimension: String, _ value: String) -> CoreMetrics.Counter {
        counter(label, [(dimension, value)])
    }

    /// A counter with several labels, created once.
    public func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        let key = label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
        return counters.withLock { cache in
            if let c = cache[key] { return c }
            let c = CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
            cache[key] = c
            return c
        }
    }

    private let gauges = Mutex<[String: CoreMetrics.Meter]>([:])

    /// A gauge labelled with a pubsub topic, created once.
    public func gauge(_ label: String, topic: String) -> CoreMetrics.Meter {
        gauge(label, "topic", topic)
    }

    /// A gauge with one label, created once.
    public func gauge(_ label: String, _ dimension: String, _ value: String) -> CoreMetrics.Meter {
        let key = "\(label){\(dimension)=\(value)}"
        return gauges.withLock { cache in
            if let g = cache[key] { return g }
            let g = CoreMetrics.Meter(label: label, dimensions: [(dimension, value)], factory: factory)
            cache[key] = g
            return g
        }
    }

    public func recordMerge(_ outcome: MergeOutcome) {
        if outcome == .accepted { mergesAccepted.increment() } else { mergeIgnored(outcome) }
    }

    private struct TimerKey: Hashable {
        var method: String
        var route: String
        var status: Int
    }
    private let timers = Mutex<[TimerKey: CoreMetrics.Timer]>([:])

    /// The request-duration histogram for one (method, route, status), created once.
    func requestDuration(method: String, route: String, status: Int) -> CoreMetrics.Timer {
        let key = TimerKey(method: method, route: route, status: status)
        if let t = timers.withLock({ $0[key] }) { return t }
        let timer = CoreMetrics.Timer(
            label: "drtc_http_request_duration_seconds",
            dimensions: [("method", method), ("route", route), ("status", String(status))],
            preferredDisplayUnit: .seconds, factory: factory)
        timers.withLock { $0[key] = timer }
        return timer
    }

    private let scrapeHooks = Mutex<[@Sendable () -> Void]>([])

    /// Runs `hook` before every exposition, for gauges that are cheaper to derive on demand.
    public func onScrape(_ hook: @escaping @Sendable () -> Void) {
        scrapeHooks.withLock { $0.append(hook) }
    }

    public func exposition() -> [UInt8] {
        for hook in scrapeHooks.withLock({ $0 }) { hook() }
        return registry.emitToBuffer()
    }
}
