import ArgumentParser
import Dispatch
import Foundation
import Simulation

#if canImport(Glibc)
import Glibc
#endif

/// `drtc sim --processes N`: N real `drtc node` processes on loopback, each with its own ports
/// and data directory, joined through the first three. Waits until every node reports the same
/// table digest with N records on `/health`, writes what it could measure, and always removes
/// the processes and directories — also on SIGINT/SIGTERM.
struct ProcessSim {
    let count: Int
    let duration: Double
    let reportDir: String
    let quiet: Bool

    func run() async throws {
        guard count >= 1 else { throw ValidationError("--processes: at least 1, got \(count)") }
        try FileManager.default.createDirectory(atPath: reportDir, withIntermediateDirectories: true)
        let cluster = try Cluster()
        cluster.installSignalHandlers()
        defer { cluster.cleanUp() }
        let started = ContinuousClock.now
        func elapsed() -> Double { Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000 }

        var bootstrap: [String] = []
        for i in 0..<count {
            let node = try cluster.start(index: i, bootstrap: bootstrap)
            if i < 3, let address = try? await node.firstMultiaddr(deadline: 30) { bootstrap.append(address) }
        }
        log("sim: \(count) nodes started in \(String(format: "%.1f", elapsed())) s; waiting for convergence (timeout \(Int(duration)) s)")
        let allStarted = elapsed()
        var agreement: [(t: Double, share: Double)] = []
        var fullAt = [Double?](repeating: nil, count: count)
        var converged: Double?
        while elapsed() < allStarted + duration {
            var digests: [String: Int] = [:]
            var healths: [[String: Any]?] = []
            for node in cluster.nodes { healths.append(node.health()) }
            for (i, h) in healths.enumerated() {
                guard let h, let records = h["records"] as? Int, let digest = h["tableDigest"] as? String else { continue }
                digests[digest, default: 0] += 1
                if records >= count && fullAt[i] == nil { fullAt[i] = elapsed() - allStarted }
            }
            let majority = digests.values.max() ?? 0
            let t = elapsed() - allStarted
            agreement.append((t, Double(majority) / Double(count)))
            if majority == count && fullAt.allSatisfy({ $0 != nil }) {
                converged = t
                break
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        // Traffic and duplicates from each node's /metrics.
        var bytes: [Double] = [], dups = 0.0, delivered = 0.0
        let window = max(elapsed(), 1)
        for node in cluster.nodes {
            let m = node.metrics()
            bytes.append((m["drtc_gossip_bytes_total{direction=\"out\"}"] ?? 0) / window)
            dups += m["drtc_gossip_messages_total{kind=\"duplicate\"}"] ?? 0
            delivered += m["drtc_gossip_messages_total{kind=\"delivered\"}"] ?? 0
        }
        var r = SimReport()
        r.peers = count
        r.scenario = "processes"
        r.durationSeconds = duration
        r.link.latencyMs = 0
        r.link.jitterMs = 0
        r.link.uplinkBytesPerSecond = 0
        r.deliveryRatio = Double(fullAt.compactMap { $0 }.count) / Double(count)
        let times = fullAt.compactMap { $0 }.sorted()
        r.convergence.p50 = times.isEmpty ? -1 : times[times.count / 2]
        r.convergence.p99 = times.count < count ? -1 : times[min(times.count - 1, Int((0.99 * Double(count)).rounded(.up)) - 1)]
        r.convergence.p9999 = times.count < count ? -1 : times.last!
        r.convergence.max = converged ?? -1
        r.duplicates.mean = delivered > 0 ? dups / delivered : 0
        let sortedBytes = bytes.sorted()
        r.bytesPerPeerPerSecond.mean = bytes.reduce(0, +) / Double(max(1, bytes.count))
        r.bytesPerPeerPerSecond.p99 = sortedBytes.last ?? 0
        r.bytesPerPeerPerSecond.max = sortedBytes.last ?? 0
        r.bandwidthSorted = sortedBytes
        r.agreementSeries = agreement
        r.convergenceCurve = (0...50).map { step in
            let t = (times.last ?? 1) * Double(step) / 50
            return (t, Double(times.filter { $0 <= t }.count) / Double(count))
        }
        r.latencyCDF = times.enumerated().map { ($0.element, Double($0.offset + 1) / Double(count)) }
        r.outcome = [("processes", Double(count)), ("converged", converged == nil ? 0 : 1), ("convergedSeconds", converged ?? -1)]
        let run = RunInfo(wallSeconds: elapsed(), peakRSSBytes: RunInfo.peakRSSKiB() * 1024)
        try r.json().write(toFile: reportDir + "/report.json", atomically: true, encoding: .utf8)
        try run.json().write(toFile: reportDir + "/run.json", atomically: true, encoding: .utf8)
        try ReportHTML.render(r, run: run).write(toFile: reportDir + "/report.html", atomically: true, encoding: .utf8)
        log("sim: \(count) processes \(converged.map { String(format: "converged %.1f s after the last start", $0) } ?? "did NOT converge"); report in \(reportDir)")
        if converged == nil { throw ExitCode(1) }
    }

    func log(_ s: String) {
        if !quiet { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    }
}

/// The child processes and their directory; cleaned up exactly once.
final class Cluster: @unchecked Sendable {
    let base: String
    private(set) var nodes: [ChildNode] = []
    private let lock = NSLock()
    private var cleaned = false
    private var signalSources: [DispatchSourceSignal] = []

    init() throws {
        var template = Array((NSTemporaryDirectory() + "drtc-sim-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw ValidationError("cannot create a temporary directory") }
        base = String(cString: made)
    }

    func start(index: Int, bootstrap: [String]) throws -> ChildNode {
        let dir = base + "/node\(index)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var args = ["node", "--data-dir", dir, "--api", "127.0.0.1:0",
                    "--listen", "/ip4/127.0.0.1/tcp/\(freePort(Int32(SOCK_STREAM.rawValue)))", "--media", "127.0.0.1:\(freePort(Int32(SOCK_DGRAM.rawValue)))",
                    "--region", ["EU", "NAM", "ASI", "SAM", "AFR", "OCE"][index % 6]]
        for b in bootstrap { args += ["--bootstrap", b] }
        let node = try ChildNode(args: args, log: dir + ".log")
        lock.withLock { nodes.append(node) }
        return node
    }

    /// SIGINT/SIGTERM: clean up, then exit 130/143.
    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                cleanUp()
                exit(128 + sig)
            }
            source.resume()
            signalSources.append(source)
        }
    }

    func cleanUp() {
        let children: [ChildNode]? = lock.withLock {
            guard !cleaned else { return nil }
            cleaned = true
            return nodes
        }
        guard let children else { return }
        for c in children where c.process.isRunning { kill(c.process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(10)
        for c in children {
            while c.process.isRunning && Date() < deadline { usleep(20_000) }
            if c.process.isRunning { kill(c.process.processIdentifier, SIGKILL) }
            c.process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: base)
    }
}

/// One `drtc node` child: its process and the API URL it printed.
final class ChildNode: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var apiURL: (host: String, port: Int)?

    init(args: [String], log: String) throws {
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = args
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("DRTC_") }
        env["DRTC_LOG_LEVEL"] = nil
        process.environment = env
        FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        process.standardInput = FileHandle.nullDevice
        let out = Pipe()
        process.standardOutput = out
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard !data.isEmpty, let self else { handle.readabilityHandler = nil; return }
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("drtc: API listening on http://") {
                let rest = line.dropFirst("drtc: API listening on http://".count)
                let hostPort = rest.split(separator: " ").first ?? ""
                if let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]) {
                    self.lock.withLock { self.apiURL = (String(hostPort[..<colon]), port) }
                }
            }
        }
        try process.run()
    }

    var api: (host: String, port: Int)? { lock.withLock { apiURL } }

    func firstMultiaddr(deadline seconds: Double) async throws -> String? {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let h = health(), let addrs = h["multiaddrs"] as? [String], let a = addrs.first { return a }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    func health() -> [String: Any]? {
        guard let api, let body = httpGet(host: api.host, port: api.port, path: "/health") else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    /// Prometheus text → value by "name{labels}".
    func metrics() -> [String: Double] {
        guard let api, let body = httpGet(host: api.host, port: api.port, path: "/metrics") else { return [:] }
        var out: [String: Double] = [:]
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let v = Double(parts[parts.count - 1]) { out[String(parts[0]), default: 0] += v }
        }
        return out
    }
}

/// A loopback port that was free a moment ago.
func freePort(_ type: Int32) -> Int {
    let fd = socket(AF_INET, type, 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A minimal blocking HTTP/1.0 GET on loopback (the node's API), 2 s timeout.
func httpGet(host: String, port: Int, path: String) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var tv = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr(host)
    addr.sin_port = UInt16(port).bigEndian
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0 else { return nil }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { return nil }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard text.hasPrefix("HTTP/1.") && text.contains(" 200 "), let split = text.range(of: "\r\n\r\n") else { return nil }
    return String(text[split.upperBound...])
}
