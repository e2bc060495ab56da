import Dispatch
import Foundation
import Identity
import Libp2p
import Libp2pNIO
import Logging

/// Benchmarks of the libp2p stack over loopback TCP, real Noise and Yamux.
enum Libp2pBench {
    static let sink = "/drtc-bench/sink/1.0.0"

    static func quietHost() -> Libp2pHost {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        return Libp2pHost(identity: .generate(), logger: logger)
    }

    /// One stream, one direction: bytes pushed through Noise + Yamux and counted by the receiver.
    static func throughput() async throws {
        let server = quietHost(), client = quietHost()
        server.setStreamHandler(sink) { stream in
            var total: UInt64 = 0
            while let chunk = try? await stream.read() { total += UInt64(chunk.count) }
            try? await stream.write(withUnsafeBytes(of: total.bigEndian) { Array($0) })
            await stream.closeWrite()
        }
        try await server.listen([try Multiaddr("/ip4/127.0.0.1/tcp/0")])
        try await client.dial(server.listenAddresses[0])
        let chunk = [UInt8](repeating: 0xa5, count: 256 * 1024)
        func run(bytes: Int) async throws -> Double {
            let stream = try await client.newStream(to: server.peerID, protocols: [sink])
            let start = DispatchTime.now().uptimeNanoseconds
            var sent = 0
            while sent < bytes {
                try await stream.write(chunk)
                sent += chunk.count
            }
            await stream.closeWrite()
            let reply = try await stream.readToEnd(limit: 8)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let received = reply.reduce(0) { $0 << 8 | UInt64($1) }
            precondition(received == UInt64(sent), "receiver counted \(received) of \(sent) bytes")
            return Double(sent) / seconds / 1e6
        }
        _ = try await run(bytes: 64 << 20)  // warm-up
        var best = 0.0
        var runs: [Double] = []
        for _ in 0..<3 {
            let mbps = try await run(bytes: 1 << 30)
            runs.append((mbps * 10).rounded() / 10)
            best = max(best, mbps)
        }
        Bench.emit(["benchmark": "noise-yamux-throughput", "bytesPerRun": 1 << 30, "runsMBps": runs,
                    "MBps": Int(best), "target": 400, "pass": best >= 400])
        await client.shutdown()
        await server.shutdown()
    }

    /// Full connection setups (TCP + multistream + Noise XX + multistream + Yamux) per second,
    /// 16 at a time, each from a fresh client identity.
    static func handshakes() async throws {
        let server = quietHost()
        try await server.listen([try Multiaddr("/ip4/127.0.0.1/tcp/0")])
        let target = server.listenAddresses[0]
        let total = 3000
        // A fresh identity per connection (made before timing): every dial is a new peer.
        let clients = (0..<total).map { _ in quietHost() }
        let concurrency = 16
        let counter = Synchronization_Box(0)
        let start = DispatchTime.now().uptimeNanoseconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<concurrency {
                group.addTask {
                    var i = w
                    while i < total {
                        let client = clients[i]
                        try await client.dial(target)
                        client.disconnect(server.peerID)
                        counter.mutate { $0 += 1 }
                        i += concurrency
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rate = Double(counter.value) / seconds
        Bench.emit(["benchmark": "handshakes", "connections": counter.value, "concurrency": concurrency,
                    "seconds": Bench.round3(seconds), "perSecond": Int(rate), "target": 1500, "pass": rate >= 1500])
        for c in clients { await c.shutdown() }
        await server.shutdown()
    }
}
