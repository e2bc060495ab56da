import Foundation
import Registry

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `http-query`: wrk against a real `drtc node` process holding 10,000 records.
enum HTTPBench {
    static let wrkScript = """
        -- Random positions, so every request runs a real nearest-neighbour search.
        math.randomseed(42)
        request = function()
          local lat = math.random(-60, 70) + math.random()
          local lon = math.random(-180, 179) + math.random()
          return wrk.format("GET", string.format("/getMediaNodes?lat=%.4f&lon=%.4f", lat, lon))
        end
        """

    static func run() async throws {
        let dir = NSTemporaryDirectory() + "drtc-bench-http-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (node, base) = try BenchNode.start(dataDir: dir, extraArguments: ["--log-level", "warning", "--geo", "50,8"])
        defer { BenchNode.stop(node) }

        try await register(Bench.makeRecords(10_000, nowMs: UInt64(Date().timeIntervalSince1970 * 1000)).map(\.encoded), to: base)

        let script = dir + "/query.lua"
        try wrkScript.write(toFile: script, atomically: true, encoding: .utf8)
        let args = ["-t2", "-c32", "-d15s", "--latency", "-s", script, base]
        let report = try wrk(args)

        let rss = try String(contentsOfFile: "/proc/\(node.processIdentifier)/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? -1
        guard let rps = value(after: "Requests/sec:", in: report), let p99 = latencyMs(percentile: "99%", in: report) else {
            throw BenchError("could not parse wrk output:\n\(report)")
        }
        let errors = report.contains("Non-2xx") || report.contains("Socket errors")
        Bench.emit([
            "benchmark": "http-query", "records": 10_000, "command": "wrk " + args.joined(separator: " ").replacingOccurrences(of: script, with: "query.lua"),
            "requestsPerSecond": Int(rps), "p50ms": latencyMs(percentile: "50%", in: report) ?? -1, "p99ms": p99,
            "rssMB": Double(rss) / 1024, "errors": errors,
            "target": ["requestsPerSecond": 15_000, "p99ms": 10, "rssMB": 150],
            "pass": rps >= 15_000 && p99 <= 10 && Double(rss) / 1024 <= 150 && !errors,
        ])
    }

    /// Loads signed records through the public API, 16 requests in flight.
    static func register(_ records: [[UInt8]], to base: String) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<16 {
                group.addTask {
                    for i in stride(from: w, to: records.count, by: 16) {
                        var req = URLRequest(url: URL(string: base + "/register")!)
                        req.httpMethod = "POST"
                        req.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
                        req.httpBody = Data(records[i])
                        let (_, resp) = try await URLSession.shared.data(for: req)
                        guard (resp as? HTTPURLResponse)?.statusCode == 200 else { throw BenchError("register failed") }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Runs /usr/bin/wrk with `args`; returns its report.
    static func wrk(_ args: [String]) throws -> String {
        let wrk = Process()
        wrk.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
        wrk.arguments = args
        let out = Pipe()
        wrk.standardOutput = out
        try wrk.run()
        let report = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        wrk.waitUntilExit()
        return report
    }

    static func value(after label: String, in text: String) -> Double? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains(label) }) else { return nil }
        return Double(line.split(separator: " ").last ?? "")
    }

    /// wrk prints "     99%    3.21ms"; units are us, ms or s.
    static func latencyMs(percentile: String, in text: String) -> Double? {
        guard let line = text.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(percentile) }),
              let raw = line.split(separator: " ").last
        else { return nil }
        let s = String(raw)
        for (unit, factor) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] where s.hasSuffix(unit) {
            return Double(s.dropLast(unit.count)).map { ($0 * factor * 1000).rounded() / 1000 }
        }
        return nil
    }
}

/// A real `drtc node` process (release build, next to drtc-bench) for benchmarks that measure
/// it from outside.
enum BenchNode {
    static var binDir: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// Starts a node on ephemeral ports and returns it with its API base URL.
    static func start(dataDir: String, extraArguments: [String]) throws -> (Process, String) {
        let drtc = binDir.appendingPathComponent("drtc").path
        guard FileManager.default.isExecutableFile(atPath: drtc) else {
            throw BenchError("build drtc first: swift build -c release --product drtc (looked for \(drtc))")
        }
        let node = Process()
        node.executableURL = URL(fileURLWithPath: drtc)
        node.arguments = ["node", "--data-dir", dataDir, "--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"] + extraArguments
        let out = Pipe()
        node.standardOutput = out
        try node.run()
        guard let line = String(data: out.fileHandleForReading.availableData, encoding: .utf8),
              let range = line.range(of: "http://"), let end = line[range.lowerBound...].firstIndex(of: " ")
        else {
            stop(node)
            throw BenchError("node did not report its API address")
        }
        return (node, String(line[range.lowerBound..<end]))
    }

    static func stop(_ node: Process) {
        guard node.isRunning else { return }
        node.terminate()
        node.waitUntilExit()
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
