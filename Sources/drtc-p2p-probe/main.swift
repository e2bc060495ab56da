import Foundation
import Identity
import Libp2p
import Libp2pNIO
import Logging

/// A libp2p test peer built from drtc's production host (Libp2pNIO), used by the interop
/// suite to drive drtc against third-party implementations. It adds three test protocols:
///   /drtc-test/echo/1.0.0    echoes everything until the writer closes
///   /drtc-test/sha256/1.0.0  reads until the writer closes, answers the 32-byte SHA-256
///   /drtc-test/whoami/1.0.0  answers the PeerID this side authenticated for the caller
///
///   drtc-p2p-probe listen [MULTIADDR]      prints {"peerId","addrs"} and serves until stdin closes
///   drtc-p2p-probe dial MULTIADDR [--streams N] [--bytes N]
///                                          prints one JSON line of results; exit 1 on failure

enum Probe {
    static let echo = "/drtc-test/echo/1.0.0"
    static let sha = "/drtc-test/sha256/1.0.0"
    static let whoami = "/drtc-test/whoami/1.0.0"

    static func makeHost() -> Libp2pHost {
        var logger = Logger(label: "probe")
        logger.logLevel = .notice
        let host = Libp2pHost(identity: .generate(), logger: logger)
        host.setStreamHandler(echo) { stream in
            while let chunk = try? await stream.read() {
                do { try await stream.write(chunk) } catch { break }
            }
            await stream.closeWrite()
        }
        host.setStreamHandler(sha) { stream in
            var hasher = SHA256.Hasher()
            while let chunk = try? await stream.read() { hasher.update(chunk) }
            try? await stream.write(hasher.finalize())
            await stream.closeWrite()
        }
        host.setStreamHandler(whoami) { stream in
            try? await stream.write(Array(stream.remotePeer.description.utf8))
            await stream.closeWrite()
        }
        return host
    }

    /// The test harness stops a serving probe by closing its stdin.
    static func waitForStdinToClose() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                while FileHandle.standardInput.availableData.count > 0 {}
                done.resume()
            }
        }
    }

    static func emit(_ object: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        fflush(nil)
    }

    static func listen(_ address: String) async throws {
        let host = makeHost()
        try await host.listen([try Multiaddr(address)])
        emit(["peerId": host.peerID.description, "addrs": host.listenAddresses.map(\.description)])
        // Serve until the test closes our stdin.
        await waitForStdinToClose()
        await host.shutdown()
    }

    /// Opens `count` connections from `count` distinct identities and holds them idle until
    /// stdin closes (memory measurements).
    static func hold(_ address: String, count: Int) async throws {
        let target = try Multiaddr(address)
        let hosts = (0..<count).map { _ in makeHost() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<16 {
                group.addTask {
                    for i in stride(from: w, to: count, by: 16) { try await hosts[i].dial(target) }
                }
            }
            try await group.waitForAll()
        }
        emit(["held": count])
        await waitForStdinToClose()
        for h in hosts { await h.shutdown() }
    }

    static func dial(_ address: String, streams: Int, bytes: Int) async throws {
        let host = makeHost()
        let target = try Multiaddr(address)
        let start = ContinuousClock.now
        let peer: PeerID
        do {
            peer = try await host.dial(target)
        } catch {
            emit(["ok": false, "error": "\(error)"])
            exit(1)
        }
        let connectMs = (ContinuousClock.now - start) / .milliseconds(1)
        let info = try await host.identify(peer)
        let rtt = try await host.ping(peer)
        let seenAs = try await {
            let s = try await host.newStream(to: peer, protocols: [Probe.whoami])
            await s.closeWrite()
            return String(decoding: try await s.readToEnd(limit: 200), as: UTF8.self)
        }()
        // Concurrent streams, each echoing its own message.
        let echoed = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<streams {
                group.addTask {
                    let s = try await host.newStream(to: peer, protocols: [echo])
                    let message = Array("drtc stream \(i) ".utf8) + secureRandomBytes(64)
                    try await s.write(message)
                    await s.closeWrite()
                    return try await s.readToEnd(limit: 10_000) == message
                }
            }
            var ok = 0
            for try await good in group where good { ok += 1 }
            return ok
        }
        // One large transfer, hashed by the remote.
        var sent = SHA256.Hasher()
        let transferStart = ContinuousClock.now
        let s = try await host.newStream(to: peer, protocols: [sha])
        var remaining = bytes
        while remaining > 0 {
            let chunk = secureRandomBytes(min(remaining, 64 * 1024))
            sent.update(chunk)
            try await s.write(chunk)
            remaining -= chunk.count
        }
        await s.closeWrite()
        let remoteDigest = try await s.readToEnd(limit: 64)
        let transferSeconds = Double((ContinuousClock.now - transferStart) / .microseconds(1)) / 1e6
        emit([
            "ok": true, "peerId": peer.description, "connectMs": connectMs,
            "agentVersion": info.agentVersion, "protocols": info.protocols,
            "listenAddrs": info.listenAddrs.map(\.description), "observedAddr": info.observedAddr?.description ?? "",
            "pingMs": Double(rtt / .microseconds(1)) / 1000, "whoami": seenAs,
            "streamsEchoed": echoed, "bytes": bytes,
            "sha256Match": remoteDigest == sent.finalize(), "transferSeconds": transferSeconds,
        ])
        await host.shutdown()
    }
}

let args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, default value: Int) -> Int {
    guard let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) else { return value }
    return v
}
do {
    switch args.first {
    case "listen":
        try await Probe.listen(args.count > 1 ? args[1] : "/ip4/127.0.0.1/tcp/0")
    case "hold" where args.count > 2:
        try await Probe.hold(args[1], count: Int(args[2]) ?? 1)
    case "dial" where args.count > 1:
        try await Probe.dial(args[1], streams: option("--streams", default: 100), bytes: option("--bytes", default: 16 << 20))
    default:
        FileHandle.standardError.write(Data("usage: drtc-p2p-probe listen [MULTIADDR] | dial MULTIADDR [--streams N] [--bytes N]\n".utf8))
        exit(2)
    }
} catch {
    Probe.emit(["ok": false, "error": "\(error)"])
    exit(1)
}
