import Dispatch
import Foundation
import Logging
import MediaNIO
import NIOPosix
import RTC
import SFU

#if canImport(Glibc)
import Glibc
#endif

/// `pipe-hop`: two media engines on loopback, each on its own event-loop thread (its own
/// core), joined by a real pipe (ICE, DTLS, SRTP). A publisher on the origin; one viewer on the
/// origin and one on the edge measure the added latency of the hop; then 50 viewers on the
/// edge, and the edge's forwarding rate is compared with the raw SRTP protect rate of one core
/// measured in the same run.
enum PipeBench {
    /// A VP8 packet whose payload carries its send time (ns, after the 2-byte descriptor).
    static func packet(_ k: Int, ssrc: UInt32, srtp: SRTPSession, tagLength: Int) -> [UInt8] {
        var payload = [UInt8](repeating: 0x5A, count: 1200 - 12 - tagLength)
        payload[0] = 0x10
        payload[1] = k % 300 == 0 ? 0x00 : 0x01
        let t = DispatchTime.now().uptimeNanoseconds
        for i in 0..<8 { payload[2 + i] = UInt8(truncatingIfNeeded: t >> (56 - 8 * UInt64(i))) }
        let plain = RTPPacket(marker: k % 4 == 3, payloadType: 96, sequenceNumber: UInt16(truncatingIfNeeded: k),
                              timestamp: UInt32(k / 4) * 3000, ssrc: ssrc, payload: payload).encoded()
        return try! srtp.protect(rtp: plain)
    }

    /// Receives on a viewer socket in a thread; records one-way delays by send time.
    final class Receiver: @unchecked Sendable {
        let lock = NSLock()
        var delays: [UInt64: UInt64] = [:]  // send time → delay (ns)
        var running = true
        /// Only the receiving thread uses it once started.
        var srtp: SRTPSession?

        func start(_ socket: MediaBench.UDPSocket, _ client: MediaClient) {
            srtp = client.srtpIn
            Thread {
                while self.lock.withLock({ self.running }) {
                    guard let d = socket.receive(), DatagramKind(classifying: d) == .rtp, let srtp = self.srtp,
                          let plain = try? srtp.unprotect(srtp: d), let p = try? RTPPacket(decoding: plain), p.payload.count >= 10 else { continue }
                    let now = DispatchTime.now().uptimeNanoseconds
                    let sent = p.payload[2..<10].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    self.lock.withLock { self.delays[sent] = now - sent }
                }
            }.start()
        }

        func stop() { lock.withLock { running = false } }
    }

    static func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let groupA = MultiThreadedEventLoopGroup(numberOfThreads: 1), groupB = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let certificate = try DTLSCertificate()
        let profile = SRTPProfile.aeadAES128GCM
        let origin = try await MediaEngine.start(host: "127.0.0.1", port: 0, group: groupA, certificate: certificate,
                                                 configure: { $0.nodeTag = "origin"; $0.maxSessions = 10_000; $0.srtpProfiles = [profile] }, logger: logger)
        let edge = try await MediaEngine.start(host: "127.0.0.1", port: 0, group: groupB, certificate: certificate,
                                               configure: { $0.nodeTag = "edge"; $0.maxSessions = 10_000; $0.srtpProfiles = [profile] }, logger: logger)
        let room = "hop"
        let publisher = MediaClient(role: .publisher, certificate: certificate)
        let pubSocket = MediaBench.UDPSocket()
        try publisher.accept(answer: try await origin.publish(room: room, offer: publisher.offer()).answer)
        MediaBench.connect(publisher, socket: pubSocket, server: origin.localAddress.port)
        func viewer(on engine: MediaEngine) async throws -> (MediaClient, MediaBench.UDPSocket) {
            let client = MediaClient(role: .viewer, certificate: certificate)
            let s = MediaBench.UDPSocket()
            try client.accept(answer: try await engine.view(room: room, offer: client.offer(), rid: nil).answer)
            MediaBench.connect(client, socket: s, server: engine.localAddress.port)
            return (client, s)
        }
        // The origin's own viewer joins first, so the origin serves it before the pipe: the
        // difference between the two viewers is what the hop adds.
        let direct = try await viewer(on: origin)
        // The pipe, as the RPC handlers build it: the edge dials, the origin accepts.
        let (socket, local) = try await edge.preparePipe()
        let originEnd = try await origin.openPipe(room: room, id: "hop", peer: "edge", remote: local, tracks: [])
        let announced = await origin.pipeAnnouncement(id: "hop")!
        _ = try await edge.openPipe(room: room, id: "hop", peer: "origin", remote: originEnd, local: local, socket: socket, tracks: [])
        _ = await edge.setPipeTracks(id: "hop", version: announced.version, tracks: announced.tracks)
        var connected = false
        for _ in 0..<500 where !connected {
            connected = await edge.roomStatus(room).first?.pipes.first?.connected ?? false
            try await Task.sleep(for: .milliseconds(10))
        }
        precondition(connected, "the pipe did not connect")

        let viaPipe = try await viewer(on: edge)
        let srtp = publisher.srtpOut!
        let send = { (k: Int) in pubSocket.send(packet(k, ssrc: publisher.ssrc, srtp: srtp, tagLength: profile.rtpTagLength), to: origin.localAddress.port) }

        // 1. Latency: 500 packets/s for 4 s, both viewers timing the same packets.
        let atOrigin = Receiver(), atEdge = Receiver()
        atOrigin.start(direct.1, direct.0)
        atEdge.start(viaPipe.1, viaPipe.0)
        for k in 0..<100 { send(k * 300 == 0 ? 0 : k); usleep(2000) }  // warm up: keyframe, consumers start
        atOrigin.lock.withLock { atOrigin.delays.removeAll() }
        atEdge.lock.withLock { atEdge.delays.removeAll() }
        for k in 100..<2100 {
            send(k)
            usleep(2000)
        }
        try await Task.sleep(for: .milliseconds(300))
        atOrigin.stop()
        atEdge.stop()
        let o = atOrigin.lock.withLock { atOrigin.delays }, e = atEdge.lock.withLock { atEdge.delays }
        var added = e.compactMap { sent, d in o[sent].map { Double(Int64(d) - Int64($0)) / 1e3 } }.sorted()
        if added.isEmpty { added = [-1] }
        func pct(_ xs: [Double], _ p: Double) -> Double { xs[min(xs.count - 1, Int(Double(xs.count) * p))] }
        let direct50 = pct(o.values.map { Double($0) / 1e3 }.sorted(), 0.5)

        // 2. Throughput: 49 more viewers on the edge (50), the publisher paced at what the
        // edge's core can forward to 50, the edge's forwarded packets counted.
        var sockets = [direct.1, viaPipe.1]
        for _ in 0..<49 { sockets.append(try await viewer(on: edge).1) }
        send(300_000)  // a keyframe for the new consumers
        try await Task.sleep(for: .milliseconds(300))
        let inputPerSecond = 6_000
        let before = edge.snapshot
        let seconds = 3.0
        let started = DispatchTime.now().uptimeNanoseconds
        var k = 300_001
        while true {
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            if elapsed >= seconds { break }
            while Double(k - 300_001) < elapsed * Double(inputPerSecond) {
                send(k)
                k += 1
            }
            usleep(200)
        }
        try await Task.sleep(for: .milliseconds(200))
        let after = edge.snapshot
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 - 0.2
        let forwarded = Double(after.counters.rtpOut - before.counters.rtpOut) / elapsed
        let arrived = Double(after.counters.rtpIn - before.counters.rtpIn) / elapsed

        let key = (0..<16).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 3) }
        let salt = (0..<profile.saltLength).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 7) }
        let raw = try SRTPSession(profile: profile, key: key, salt: salt, direction: .outbound)
        let protectRate = SRTPBench.measureProtect { buffer, length in try raw.protect(rtpInPlace: buffer, length: length) }
        Bench.emit(["benchmark": "pipe-hop", "srtp": profile.rawValue, "packetBytes": 1200,
                    "latencyPackets": added.count, "addedLatencyP50us": Bench.round3(pct(added, 0.5)), "addedLatencyP99us": Bench.round3(pct(added, 0.99)),
                    "directViewerLatencyP50us": Bench.round3(direct50),
                    "edgeViewerLatencyP50us": Bench.round3(pct(e.values.map { Double($0) / 1e3 }.sorted(), 0.5)),
                    "edgeViewerLatencyP99us": Bench.round3(pct(e.values.map { Double($0) / 1e3 }.sorted(), 0.99)),
                    "edgeViewers": 50, "inputPerSecond": inputPerSecond, "edgeReceivedPerSecond": Int(arrived),
                    "edgeForwardedPerSecond": Int(forwarded), "rawSRTPProtectPerSecondOneCore": Int(protectRate),
                    "ratioToRawProtect": Bench.round3(forwarded / protectRate)])
        withExtendedLifetime(sockets) {}
        await origin.shutdown()
        await edge.shutdown()
        try await groupA.shutdownGracefully()
        try await groupB.shutdownGracefully()
    }
}
