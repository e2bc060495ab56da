import Foundation

/// Memory per idle connection: RSS growth of a real `drtc node` process while it holds N idle,
/// authenticated, identified inbound connections from N distinct peers (opened by
/// `drtc-p2p-probe hold` in another process), divided by N.
enum IdleMemoryBench {
    static func rssKB(_ pid: Int32) -> Int {
        (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? -1
    }

    static func run() async throws {
        let dir = NSTemporaryDirectory() + "drtc-bench-idle-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (node, base) = try BenchNode.start(dataDir: dir, extraArguments: ["--log-level", "error"])
        defer { BenchNode.stop(node) }
        let health = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(string: base + "/health")!)) as! [String: Any]
        let target = (health["multiaddrs"] as! [String])[0]

        try await Task.sleep(for: .seconds(2))
        let before = rssKB(node.processIdentifier)
        let n = 200
        let probe = Process()
        probe.executableURL = BenchNode.binDir.appendingPathComponent("drtc-p2p-probe")
        probe.arguments = ["hold", target, String(n)]
        let probeIn = Pipe(), probeOut = Pipe()
        probe.standardInput = probeIn
        probe.standardOutput = probeOut
        try probe.run()
        defer { try? probeIn.fileHandleForWriting.close(); probe.waitUntilExit() }
        _ = probeOut.fileHandleForReading.availableData  // "held" line once all are connected
        try await Task.sleep(for: .seconds(3))  // Identify exchanges settle
        let peers = (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(string: base + "/health")!)) as! [String: Any])["peers"] as! Int
        let after = rssKB(node.processIdentifier)
        let perConnection = Double(after - before) * 1024 / Double(n)
        Bench.emit(["benchmark": "idle-connection-memory", "connections": n, "peersSeenByNode": peers,
                    "rssBeforeKB": before, "rssAfterKB": after, "bytesPerConnection": Int(perConnection),
                    "target": 65_536, "pass": peers == n && perConnection <= 65_536,
                    "method": "RSS growth of a drtc node process holding N idle inbound connections from N peers, / N"])
    }
}
