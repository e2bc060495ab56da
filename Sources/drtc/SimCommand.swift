import ArgumentParser
import Foundation
import QoS
import Simulation
import RegistryGossip

/// `drtc sim`: thousands of peers in one process on a virtual clock (Specs/simulation.md), or
/// `--processes N` real nodes on loopback.
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Simulate a drtc mesh: the production gossip, CRDT and sync code on a virtual clock.",
        discussion: """
            Writes DIR/report.json (identical arguments give identical bytes), DIR/report.html \
            (self-contained, SVG charts) and DIR/run.json (wall time, peak memory). Scenarios: \
            \(ScenarioName.allCases.map(\.rawValue).joined(separator: ", ")). With --processes N it \
            starts N real `drtc node` processes on loopback instead and measures what /health shows.
            """)

    @Option(help: "Number of peers.") var peers = 100
    @Option(help: "Virtual seconds measured (after the warm-up).") var duration = 60.0
    @Option(help: "Seed: every random choice of the run derives from it.") var seed: UInt64 = 1
    @Option(help: "steady | join-storm | churn | partition-heal | flood-attack | eclipse-attempt | qos | qos-collusion") var scenario = "steady"
    @Option(help: "One-way link latency, e.g. 50ms.") var latency = "50ms"
    @Option(help: "Half-width of the uniform jitter added to each frame, e.g. 10ms.") var jitter = "10ms"
    @Option(help: "Probability that a frame's segment is lost (TCP retransmits it after an RTO).") var loss = 0.0
    @Option(help: "Per-node uplink, e.g. 100mbit, 2mbyte, 0 (unlimited).") var bandwidth = "100mbit"
    @Option(name: .customLong("region-latency"), help: "'world': one-way latency by region pair from a built-in matrix (overrides --latency).")
    var regionLatency: String?
    @Option(name: .customLong("min-peers")) var minPeers = 8
    @Option(name: .customLong("max-peers")) var maxPeers = 12
    @Option(name: .customLong("heartbeat-ms"), help: "Gossipsub heartbeat.") var heartbeatMs: UInt64 = 1_000
    @Option(name: .customLong("refresh-interval"), help: "Base record refresh interval, s (the liveness rule scales it).") var refreshInterval: UInt32 = 30
    @Option(help: "Base record TTL, s.") var ttl: UInt32 = 90
    @Option(name: .customLong("sync-interval"), help: "Anti-entropy interval, s.") var syncInterval: UInt64 = 30
    @Option(name: .customLong("forward-delay-ms"), help: "Least gossip forward hold, ms (default: the registry's parameters).") var forwardDelayMs: UInt64?
    @Option(name: .customLong("forward-hold-factor"), help: "Forward hold as a share of each link's round-trip time; 0: a fixed --forward-delay-ms (default: the registry's parameters).")
    var forwardHoldFactor: Double?
    @Option(name: .customLong("d"), help: "Gossipsub D, the mesh degree (default: the registry's parameters).") var meshDegree: Int?
    @Option(name: .customLong("d-low"), help: "Gossipsub D_low.") var meshLow: Int?
    @Option(name: .customLong("d-high"), help: "Gossipsub D_high.") var meshHigh: Int?
    @Option(name: .customLong("d-lazy"), help: "Gossipsub D_lazy (IHAVE targets per heartbeat).") var meshLazy: Int?
    @Option(help: "Virtual seconds of warm-up before measuring (steady-state scenarios).") var warmup = 5.0
    @Option(help: "churn: share of peers leaving or crashing per minute.") var churn = 0.05
    @Option(help: "flood-attack / eclipse-attempt / qos-collusion: share of attacking peers.") var attackers = 0.1
    @Option(name: .customLong("qos-epoch"), help: "qos, qos-collusion: QoS epoch, s (default 120: shorter than production so a run covers several).") var qosEpoch: UInt32 = 120
    @Option(name: .customLong("qos-test-duration"), help: "qos, qos-collusion: QoS test length, s (default 60).") var qosTestDuration: UInt32 = 60
    @Option(help: "qos, qos-collusion: share of honest peers with a degraded media path (ground truth V = 0).") var degraded = 0.1
    @Option(help: "Threads running the simulation (report.json does not depend on it).")
    var threads = min(2, ProcessInfo.processInfo.activeProcessorCount)
    @Option(help: "Directory for report.json, report.html, run.json.") var report: String
    @Option(help: "Run N real drtc node processes on loopback instead of simulating.") var processes: Int?
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func run() async throws {
        if let processes {
            try await ProcessSim(count: processes, duration: duration, reportDir: report, quiet: quiet).run()
            return
        }
        guard let name = ScenarioName(rawValue: scenario) else {
            throw ValidationError("--scenario: expected one of \(ScenarioName.allCases.map(\.rawValue).joined(separator: ", ")), got '\(scenario)'")
        }
        guard (1...64).contains(threads) else { throw ValidationError("--threads: expected 1 to 64, got \(threads)") }
        guard peers >= 4 else { throw ValidationError("--peers: at least 4, got \(peers)") }
        guard duration > 0 else { throw ValidationError("--duration: must be positive, got \(duration)") }
        guard (0..<1).contains(loss) else { throw ValidationError("--loss: expected 0 <= LOSS < 1, got \(loss)") }
        var gossip = RegistryGossip.defaultParameters()
        if let forwardDelayMs { gossip.forwardDelayMs = forwardDelayMs }
        if let forwardHoldFactor {
            guard forwardHoldFactor >= 0, forwardHoldFactor <= 10 else { throw ValidationError("--forward-hold-factor: expected 0 to 10, got \(forwardHoldFactor)") }
            gossip.forwardDelayRTTFactor = forwardHoldFactor
        }
        if let meshDegree { gossip.d = meshDegree }
        if let meshLow { gossip.dLow = meshLow }
        if let meshHigh { gossip.dHigh = meshHigh }
        if let meshLazy { gossip.dLazy = meshLazy }
        guard gossip.dLow >= 1, gossip.dLow <= gossip.d, gossip.d <= gossip.dHigh, gossip.dLazy >= 0 else {
            throw ValidationError("--d-low/--d/--d-high: expected 1 <= D_low <= D <= D_high, got \(gossip.dLow)/\(gossip.d)/\(gossip.dHigh)")
        }
        var config = SimConfig(gossip: gossip)
        config.peers = peers
        config.durationSeconds = duration
        config.seed = seed
        config.scenario = name
        config.link.latencyMs = try Self.milliseconds(latency, flag: "--latency")
        config.link.jitterMs = try Self.milliseconds(jitter, flag: "--jitter")
        config.link.loss = loss
        config.link.uplinkBytesPerSecond = try Self.bytesPerSecond(bandwidth)
        if let regionLatency {
            guard regionLatency == "world" else { throw ValidationError("--region-latency: only 'world' is built in, got '\(regionLatency)'") }
            config.link.regionLatencyMs = LinkModel.worldRegionLatencyMs
        }
        config.minPeers = minPeers
        config.maxPeers = maxPeers
        config.heartbeatMs = heartbeatMs
        config.refreshIntervalSeconds = refreshInterval
        config.ttlSeconds = max(ttl, refreshInterval)
        config.syncIntervalSeconds = syncInterval
        config.warmupSeconds = warmup
        config.churnPerMinute = churn
        config.attackerShare = attackers
        config.qosSettings.schedule = QoSSchedule(epochSeconds: qosEpoch, testSeconds: qosTestDuration, sampleIntervalMs: 5000)
        if let problem = config.qosSettings.schedule.problem { throw ValidationError(problem) }
        guard (0...1).contains(degraded) else { throw ValidationError("--degraded: expected a share 0...1, got \(degraded)") }
        config.qosSettings.degradedShare = degraded
        if name == .joinStorm { config.sampleIntervalMs = 250 }

        try FileManager.default.createDirectory(atPath: report, withIntermediateDirectories: true)
        let started = ContinuousClock.now
        let sim = Simulator(config: config, partitions: Simulator.partitionCount(peers: config.peers, threads: threads))
        if !quiet {
            var lastPrint = ContinuousClock.now
            var lastEvents: UInt64 = 0
            sim.progress = { virtualMs, endMs, events in
                let t = ContinuousClock.now
                guard t - lastPrint >= .seconds(2) else { return }
                let dt = Double((t - lastPrint) / .milliseconds(1)) / 1000
                let elapsed = Double((t - started) / .milliseconds(1)) / 1000
                let rate = Double(events - lastEvents) / dt
                let eta = virtualMs > 0 ? elapsed * Double(endMs - virtualMs) / Double(virtualMs) : 0
                lastPrint = t
                lastEvents = events
                FileHandle.standardError.write(Data(String(
                    format: "sim: virtual %.1f/%.1f s, %.0f events/s, wall %.0f s, ETA %.0f s, RSS %d MiB\n",
                    Double(virtualMs) / 1000, Double(endMs) / 1000, rate, elapsed, eta, RunInfo.currentRSSKiB() / 1024).utf8))
            }
        }
        let result = sim.run(executor: PartitionExecutors.threaded(threads))
        let wall = Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000
        let run = RunInfo(wallSeconds: wall, peakRSSBytes: RunInfo.peakRSSKiB() * 1024)
        try result.json().write(toFile: report + "/report.json", atomically: true, encoding: .utf8)
        try run.json().write(toFile: report + "/run.json", atomically: true, encoding: .utf8)
        try ReportHTML.render(result, run: run).write(toFile: report + "/report.html", atomically: true, encoding: .utf8)
        if !quiet {
            FileHandle.standardError.write(Data(String(
                format: "sim: %@ %d peers, %.0f virtual s in %.1f wall s, peak RSS %d MiB; delivery %.4f, convergence p99.99 %.3f s, %.2f duplicates/message, %.0f B/s per peer; report in %@\n",
                name.rawValue, peers, duration, wall, run.peakRSSBytes >> 20, result.deliveryRatio, result.convergence.p9999,
                result.duplicates.mean, result.bytesPerPeerPerSecond.mean, report).utf8))
        }
    }

    static func milliseconds(_ text: String, flag: String) throws -> Double {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let value: Double?
        if t.hasSuffix("ms") { value = Double(t.dropLast(2)) } else if t.hasSuffix("s") { value = Double(t.dropLast()).map { $0 * 1000 } } else { value = Double(t) }
        guard let v = value, v >= 0, v.isFinite else { throw ValidationError("\(flag): expected a duration like 50ms or 0.05s, got '\(text)'") }
        return v
    }

    static func bytesPerSecond(_ text: String) throws -> Double {
        let t = text.lowercased()
        let units: [(String, Double)] = [("gbit", 1e9 / 8), ("mbit", 1e6 / 8), ("kbit", 1e3 / 8), ("mbyte", 1e6), ("kbyte", 1e3)]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            if let v = Double(t.dropLast(suffix.count)), v >= 0 { return v * factor }
        }
        if let v = Double(t), v >= 0 { return v }
        throw ValidationError("--bandwidth: expected e.g. 100mbit, 10mbyte or 0 (unlimited), got '\(text)'")
    }
}

extension RunInfo {
    static func readStatus(_ field: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            // "VmRSS:\t   1968 kB", but "VmRSS:\t10376064 kB" from 10 GB on: split on tabs too.
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    static func peakRSSKiB() -> Int { readStatus("VmHWM") }
    static func currentRSSKiB() -> Int { readStatus("VmRSS") }
}
