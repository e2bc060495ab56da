import Identity
import Libp2p
import Libp2pNIO
import Logging
import NIOPosix
import Testing

/// Two hosts on real loopback sockets.
@Suite(.serialized) struct HostTests {
    static let echo = "/drtc-test/echo/1.0.0"

    func makeHost() async throws -> Libp2pHost {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let host = Libp2pHost(identity: .generate(), logger: logger)
        host.setStreamHandler(Self.echo) { stream in
            while let chunk = try? await stream.read() {
                do { try await stream.write(chunk) } catch { break }
            }
            await stream.closeWrite()
        }
        try await host.listen([try Multiaddr("/ip4/127.0.0.1/tcp/0")])
        return host
    }

    /// Polls `condition` every 10 ms for up to `seconds` (generous: a busy machine is slow,
    /// never wrong); the caller's #expect then states the property.
    static func waitUntil(seconds: Int = 20, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func dialIdentifyPingAndEcho() async throws {
        let a = try await makeHost(), b = try await makeHost()
        defer { Task { await a.shutdown(); await b.shutdown() } }
        let addr = b.listenAddresses[0]
        #expect(addr.peerID == b.peerID)
        let peer = try await a.dial(addr)
        #expect(peer == b.peerID)
        let info = try await a.identify(b.peerID)
        #expect(info.agentVersion == "drtc/0.1.0")
        #expect(info.protocols.contains(Self.echo))
        #expect(info.protocols.contains("/ipfs/ping/1.0.0"))
        #expect(info.listenAddrs.map(\.description) == [addr.withoutPeerID.description])
        let rtt = try await a.ping(b.peerID)
        // A sanity bound, not a speed test: CI is a busy 2-core machine.
        #expect(rtt > .zero && rtt < .seconds(30))
        // b saw the inbound connection authenticated as a.
        try await Self.waitUntil { b.connectedPeers.contains(a.peerID) }
        #expect(b.connectedPeers == [a.peerID])

        // 100 concurrent streams.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<100 {
                group.addTask {
                    let s = try await a.newStream(to: b.peerID, protocols: ["/nope/1.0.0", Self.echo])
                    let message = Array("stream \(i)".utf8)
                    try await s.write(message)
                    await s.closeWrite()
                    #expect(try await s.readToEnd(limit: 1000) == message)
                }
            }
            try await group.waitForAll()
        }
    }

    @Test func sixteenMebibytesOnOneStream() async throws {
        let a = try await makeHost(), b = try await makeHost()
        defer { Task { await a.shutdown(); await b.shutdown() } }
        try await a.dial(b.listenAddresses[0])
        let s = try await a.newStream(to: b.peerID, protocols: [Self.echo])
        let data = (0..<(16 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        async let sent: Void = {
            var offset = 0
            while offset < data.count {
                let end = min(offset + 100_000, data.count)
                try await s.write(Array(data[offset..<end]))
                offset = end
            }
            await s.closeWrite()
        }()
        let back = try await s.readToEnd(limit: 17 << 20)
        try await sent
        #expect(back.count == data.count)
        #expect(SHA256.hash(back) == SHA256.hash(data))
    }

    @Test func dialingUnderTheWrongPeerIDFails() async throws {
        let a = try await makeHost(), b = try await makeHost()
        defer { Task { await a.shutdown(); await b.shutdown() } }
        let impostor = Ed25519KeyPair.generate().peerID
        let wrong = b.listenAddresses[0].withoutPeerID.appending(.p2p(impostor))
        let error = await #expect(throws: Libp2pError.self) { try await a.dial(wrong) }
        #expect(error?.description.contains(impostor.description) == true)
        #expect(error?.description.contains(b.peerID.description) == true)
        #expect(a.connectedPeers.isEmpty)
    }

    @Test func simultaneousDialsEndWithOneConnection() async throws {
        let a = try await makeHost(), b = try await makeHost()
        defer { Task { await a.shutdown(); await b.shutdown() } }
        async let x = a.dial(b.listenAddresses[0])
        async let y = b.dial(a.listenAddresses[0])
        _ = try await (x, y)
        // Of the two connections each side keeps the same one: both end connected, and the
        // connection they kept carries pings both ways.
        try await Self.waitUntil { a.connectedPeers == [b.peerID] && b.connectedPeers == [a.peerID] }
        _ = try await a.ping(b.peerID)
        _ = try await b.ping(a.peerID)
        #expect(a.connectedPeers == [b.peerID])
        #expect(b.connectedPeers == [a.peerID])
    }
}
