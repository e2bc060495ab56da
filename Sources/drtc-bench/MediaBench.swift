import CUDP
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
/// thread and a socket-reader thread, both pinned to one core; the publisher (and, with `--read`,
/// the viewers' reader) run on another core. Forwarded packets per second are read from the
/// engine's counters and reported with the raw SRTP protect rate of the engine's core, measured
/// in the same run (`shareOfRawProtect`).
///
///     drtc-bench sfu-forward [--viewers=10,50,100] [--srtp=gcm,cm80] [--read] [--seconds=3]
///                            [--engine-core=0] [--load-core=1] [--no-pin]
enum MediaBench {
    /// A blocking UDP socket on 127.0.0.1 (the clients' side of the engine under test).
    final class UDPSocket: @unchecked Sendable {
        let fd: Int32
        let port: UInt16

        init(receiveBuffer: Int32? = nil) {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            self.fd = fd
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            port = UInt16(bigEndian: addr.sin_port)
            if var size = receiveBuffer {
                // SO_RCVBUFFORCE (root) goes beyond net.core.rmem_max; SO_RCVBUF up to it.
                if setsockopt(fd, SOL_SOCKET, 33, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
                }
            }
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

    /// `sfu-forward` options, from `--name=value` arguments.
    struct Options {
        var viewers = [10, 50, 100]
        var profiles: [SRTPProfile] = [.aeadAES128GCM, .aes128CMSHA1_80]
        /// Viewers read, count and check what they receive (`--read`); otherwise their sockets
        /// are not read (the kernel drops what overflows them).
        var read = false
        /// The engine's two threads (event loop, socket reader) on `engineCore`, everything
        /// else (publisher, viewers' reader, main) on `loadCore`; `--no-pin` leaves placement
        /// to the scheduler.
        var pin = true
        var engineCore = 0
        var loadCore = 1
        var seconds = 3.0

        init(_ arguments: [String]) {
            for argument in arguments where argument.hasPrefix("--") {
                let parts = argument.dropFirst(2).split(separator: "=", maxSplits: 1).map(String.init)
                let value = parts.count > 1 ? parts[1] : ""
                switch parts[0] {
                case "viewers": viewers = value.split(separator: ",").compactMap { Int($0) }
                case "srtp":
                    profiles = value.split(separator: ",").compactMap {
                        switch $0 { case "gcm": .aeadAES128GCM; case "cm80": .aes128CMSHA1_80; default: SRTPProfile(rawValue: String($0)) }
                    }
                case "read": read = true
                case "no-pin": pin = false
                case "engine-core": engineCore = Int(value) ?? engineCore
                case "load-core": loadCore = Int(value) ?? loadCore
                case "seconds": seconds = Double(value) ?? seconds
                default: break
                }
            }
            if ProcessInfo.processInfo.activeProcessorCount < 2 { pin = false }
        }
    }

    static func run(_ options: Options) async throws {
        for profile in options.profiles {
            // The reference for this profile, on the engine's core, in this run: one outbound
            // SRTP context protecting 1,212-byte packets in place, nothing else.
            let rawProtect = try Placement.onCore(options.pin ? options.engineCore : nil) {
                try SRTPBench.rawProtectRate(profile: profile)
            }
            for viewers in options.viewers {
                try await forward(viewers: viewers, profile: profile, options: options, rawProtect: rawProtect)
            }
        }
    }

    static func forward(viewers n: Int, profile: SRTPProfile, options: Options, rawProtect: Double) async throws {
        if options.pin { Placement.pinAll(to: options.loadCore) }
        let threadsBefore = Set(Placement.threads().map(\.tid))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let certificate = try DTLSCertificate()
        let engine = try await MediaEngine.start(host: "127.0.0.1", port: 0, group: group, certificate: certificate,
                                                 configure: { $0.srtpProfiles = [profile]; $0.maxSessions = 10_000 }, logger: logger)
        // The engine's threads: its event loop and its sockets' reader (a NIOThreadPool thread).
        let engineThreads = Placement.threads().filter {
            !threadsBefore.contains($0.tid) && ($0.name.hasPrefix("NIO-ELT") || $0.name.hasPrefix("TP-"))
        }
        if options.pin {
            for t in engineThreads { Placement.pin(t.tid, to: options.engineCore) }
        }
        let serverPort = engine.localAddress.port
        let publisher = MediaClient(role: .publisher, certificate: certificate)
        let pubSocket = UDPSocket()
        try publisher.accept(answer: try await engine.publish(room: "bench", offer: publisher.offer()).answer)
        connect(publisher, socket: pubSocket, server: serverPort)
        var viewerSockets: [UDPSocket] = []
        var viewerClients: [MediaClient] = []
        for _ in 0..<n {
            let viewer = MediaClient(role: .viewer, certificate: certificate)
            let socket = UDPSocket(receiveBuffer: options.read ? 4 << 20 : nil)
            try viewer.accept(answer: try await engine.view(room: "bench", offer: viewer.offer(), rid: nil).answer)
            connect(viewer, socket: socket, server: serverPort)
            viewerSockets.append(socket)
            viewerClients.append(viewer)
        }
        let source = PacketSource(srtp: publisher.srtpOut!, ssrc: publisher.ssrc, tagLength: profile.rtpTagLength)
        let packet = { (k: Int) in source.packet(k) }
        // Warm up: the first keyframe starts every consumer.
        pubSocket.send(packet(0), to: serverPort)
        try await Task.sleep(for: .milliseconds(200))
        let receiver = options.read ? ViewerReceiver(sockets: viewerSockets, clients: viewerClients) : nil
        receiver?.drainAndReset()
        // Threads started since (Swift concurrency's, the publisher's) go to the load core.
        if options.pin {
            let engineIDs = Set(engineThreads.map(\.tid))
            for t in Placement.threads() where !engineIDs.contains(t.tid) { Placement.pin(t.tid, to: options.loadCore) }
        }
        let receiverThread = receiver.map { r in Thread { r.run() } }
        receiverThread?.start()
        let before = engine.snapshot
        let ticksBefore = engineThreads.map { Placement.cpuTicks($0.tid) }
        let ticksFrom = DispatchTime.now().uptimeNanoseconds
        let seconds = options.seconds
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
        let ticksAfter = engineThreads.map { Placement.cpuTicks($0.tid) }
        let tickWindow = Double(DispatchTime.now().uptimeNanoseconds - ticksFrom) / 1e9
        let engineCPU = zip(ticksBefore, ticksAfter).map { $1 - $0 }.reduce(0, +)
        let checks = receiver?.stop()
        let forwarded = after.counters.rtpOut - before.counters.rtpOut
        let received = after.counters.rtpIn - before.counters.rtpIn
        let rate = Double(forwarded) / elapsed
        let footprint = await engine.memoryFootprint(room: "bench")
        var fields: [String: Any] = [
            "benchmark": "sfu-forward", "viewers": n, "srtp": profile.rawValue, "libsrtp": SRTPLibrary.version, "rtpSRTP": "openssl-evp",
            "packetBytes": 1200, "sentByPublisher": sent.value, "receivedByEngine": received,
            "forwarded": forwarded, "forwardedPerSecond": Int(rate),
            "inputLossPercent": Bench.round3(100 * (1 - Double(received) / Double(max(1, sent.value)))),
            "rawProtectPerSecond": Int(rawProtect), "shareOfRawProtect": Bench.round3(rate / rawProtect),
            "engineCpuPercent": Bench.round3(100 * Double(engineCPU) / Double(Placement.ticksPerSecond) / tickWindow),
            "placement": options.pin
                ? "engine (\(engineThreads.map(\.name).joined(separator: ", "))) on core \(options.engineCore); publisher, viewers and main on core \(options.loadCore)"
                : "unpinned",
            "viewerSockets": options.read ? "read" : "sink",
            "bytesPerConsumer": footprint?.bytesPerConsumer ?? 0,
            "target": 150_000, "pass": rate >= 150_000,
        ]
        if let checks {
            fields["receivedByViewers"] = checks.received
            fields["receivedByViewersPerSecond"] = Int(Double(checks.received) / elapsed)
            // Sent by the engine in the window but not read by a viewer (dropped by the kernel).
            fields["notDeliveredToViewers"] = max(0, forwarded - checks.received)
            fields["viewerChecks"] = checks.json
        }
        Bench.emit(fields)
        withExtendedLifetime((viewerSockets, viewerClients)) {}
        await engine.shutdown()
        try await group.shutdownGracefully()
    }
}
