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

/// `sfu-forward`: one publisher to N viewers through the real media engine on loopback: ICE,
/// DTLS, SRTP decrypted once and encrypted per viewer, sendmmsg. The engine has one event-loop
/// thread (one core); the publisher blasts from another thread, and forwarded packets per second
/// are read from the engine's counters.
enum MediaBench {
    /// A blocking UDP socket on 127.0.0.1 (the clients' side of the engine under test).
    final class UDPSocket: @unchecked Sendable {
        let fd: Int32
        let port: UInt16

        init() {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            self.fd = fd
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            port = UInt16(bigEndian: addr.sin_port)
            var timeout = timeval(tv_sec: 0, tv_usec: 20_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        func send(_ bytes: [UInt8], to port: UInt16) {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = port.bigEndian
            _ = bytes.withUnsafeBytes { b in
                withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                } }
            }
        }

        func receive() -> [UInt8]? {
            var buffer = [UInt8](repeating: 0, count: 2048)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? Array(buffer.prefix(n)) : nil
        }

        deinit { close(fd) }
    }

    /// 1,200-byte SRTP packets: VP8 descriptor, a keyframe every 300 packets, transport-wide seq.
    /// Only the publisher thread uses it after the warm-up.
    struct PacketSource: @unchecked Sendable {
        let srtp: SRTPSession
        let ssrc: UInt32
        let tagLength: Int

        func packet(_ k: Int) -> [UInt8] {
            let seq = UInt16(truncatingIfNeeded: k)
            var payload = [UInt8](repeating: 0x5A, count: 1200 - 12 - 8 - tagLength)
            payload[0] = 0x10
            payload[1] = k % 300 == 0 ? 0x00 : 0x01
            let plain = RTPPacket(marker: k % 4 == 3, payloadType: 96, sequenceNumber: seq, timestamp: UInt32(k / 4) * 3000,
                                  ssrc: ssrc, headerExtension: .oneByte([RTPExtensionElement(id: 3, value: [UInt8(seq >> 8), UInt8(seq & 0xFF)])]),
                                  payload: payload).encoded()
            return try! srtp.protect(rtp: plain)
        }
    }

    static func connect(_ client: MediaClient, socket: UDPSocket, server: UInt16) {
        socket.send(client.bindingRequest(), to: server)
        let clock = ContinuousClock()
        let start = clock.now
        var now: UInt64 = 0
        while !client.isConnected, clock.now - start < .seconds(10) {
            now += 20
            if let d = socket.receive() {
                for reply in client.receive(d, now: now) { socket.send(reply, to: server) }
            } else {
                for reply in client.tick(now: now) { socket.send(reply, to: server) }
                if !client.isConnected { socket.send(client.bindingRequest(), to: server) }
            }
        }
        precondition(client.isConnected, "client did not connect")
    }

    static func run() async throws {
        for profile in [SRTPProfile.aeadAES128GCM, .aes128CMSHA1_80] {
            for viewers in [10, 50, 100] {
                try await forward(viewers: viewers, profile: profile)
            }
        }
    }

    static func forward(viewers n: Int, profile: SRTPProfile) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let certificate = try DTLSCertificate()
        let engine = try await MediaEngine.start(host: "127.0.0.1", port: 0, group: group, certificate: certificate,
                                                 configure: { $0.srtpProfiles = [profile]; $0.maxSessions = 10_000 }, logger: logger)
        let serverPort = engine.localAddress.port
        let publisher = MediaClient(role: .publisher, certificate: certificate)
        let pubSocket = UDPSocket()
        try publisher.accept(answer: try await engine.publish(room: "bench", offer: publisher.offer()).answer)
        connect(publisher, socket: pubSocket, server: serverPort)
        var viewerSockets: [UDPSocket] = []
        for _ in 0..<n {
            let viewer = MediaClient(role: .viewer, certificate: certificate)
            let socket = UDPSocket()
            try viewer.accept(answer: try await engine.view(room: "bench", offer: viewer.offer(), rid: nil).answer)
            connect(viewer, socket: socket, server: serverPort)
            viewerSockets.append(socket)
        }
        let source = PacketSource(srtp: publisher.srtpOut!, ssrc: publisher.ssrc, tagLength: profile.rtpTagLength)
        let packet = { (k: Int) in source.packet(k) }
        // Warm up: the first keyframe starts every consumer.
        pubSocket.send(packet(0), to: serverPort)
        try await Task.sleep(for: .milliseconds(200))
        let before = engine.snapshot
        let seconds = 3.0
        let sent = Synchronization_Box<Int>(0)
        let started = DispatchTime.now().uptimeNanoseconds
        // Paced so the kernel does not drop input: the target input rate is what one core can
        // forward (≈ 400 k out/s) divided by the fan-out.
        let inputPerSecond = min(60_000, 400_000 / n)
        let thread = Thread {
            var k = 1
            let begin = DispatchTime.now().uptimeNanoseconds
            while true {
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
                if elapsed >= seconds { break }
                let due = Int(elapsed * Double(inputPerSecond))
                while k <= due {
                    pubSocket.send(source.packet(k), to: serverPort)
                    k += 1
                }
                usleep(200)
            }
            sent.mutate { $0 = k - 1 }
        }
        thread.start()
        while sent.value == 0 && Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 < seconds + 5 {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(200))
        let after = engine.snapshot
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 - 0.2
        let forwarded = after.counters.rtpOut - before.counters.rtpOut
        let received = after.counters.rtpIn - before.counters.rtpIn
        let rate = Double(forwarded) / elapsed
        let footprint = await engine.memoryFootprint(room: "bench")
        Bench.emit(["benchmark": "sfu-forward", "viewers": n, "srtp": profile.rawValue, "libsrtp": SRTPLibrary.version,
                    "packetBytes": 1200, "sentByPublisher": sent.value, "receivedByEngine": received,
                    "forwarded": forwarded, "forwardedPerSecond": Int(rate), "inputLossPercent": Bench.round3(100 * (1 - Double(received) / Double(max(1, sent.value)))),
                    "bytesPerConsumer": footprint?.bytesPerConsumer ?? 0,
                    "target": 150_000, "pass": rate >= 150_000])
        withExtendedLifetime(viewerSockets) {}
        await engine.shutdown()
        try await group.shutdownGracefully()
    }
}
