import Dispatch
import Foundation
import RTC
import SFU

/// `sfu-core`: the sans-I/O `MediaServer` alone on this thread, one publisher → N viewers, the
/// same 1,200-byte SRTP packets as `sfu-forward` handed to it directly and its datagrams
/// dropped: SRTP decrypted once and encrypted per viewer, validation, retransmission buffers,
/// per-viewer rewriting, RTCP, without sockets or threads. What this rate leaves to the sockets
/// is the kernel's. Small enough to run under `valgrind --tool=callgrind` (instructions per
/// forwarded packet, by function):
///
///     drtc-bench sfu-core [--viewers=10] [--srtp=gcm|cm80] [--packets=20000]
enum SFUCoreBench {
    static func run(_ arguments: [String]) throws {
        let options = MediaBench.Options(arguments)
        var packets = 60_000
        for a in arguments where a.hasPrefix("--packets=") { packets = Int(a.dropFirst(10)) ?? packets }
        for profile in options.profiles {
            for viewers in options.viewers { try forward(viewers: viewers, profile: profile, packets: packets) }
        }
    }

    static func forward(viewers n: Int, profile: SRTPProfile, packets: Int) throws {
        let certificate = try DTLSCertificate()
        var configuration = MediaServer.Configuration(candidates: [SocketAddress(ip: .v4(0x7F00_0001), port: 40_000)], certificate: certificate)
        configuration.srtpProfiles = [profile]
        configuration.maxSessions = 10_000
        let server = MediaServer(configuration: configuration)
        var now: UInt64 = 1_000_000
        let publisher = MediaClient(role: .publisher, certificate: certificate)
        let publisherAddress = SocketAddress(ip: .v4(0x7F00_0001), port: 50_000)
        try publisher.accept(answer: try server.publish(room: "bench", offer: publisher.offer(), now: now).answer)
        try connect(publisher, from: publisherAddress, to: server, now: &now)
        for v in 0..<n {
            let viewer = MediaClient(role: .viewer, certificate: certificate)
            try viewer.accept(answer: try server.view(room: "bench", offer: viewer.offer(), rid: nil, now: now).answer)
            try connect(viewer, from: SocketAddress(ip: .v4(0x7F00_0001), port: UInt16(50_001 + v)), to: server, now: &now)
        }
        let source = MediaBench.PacketSource(srtp: publisher.srtpOut!, ssrc: publisher.ssrc, tagLength: profile.rtpTagLength)
        let input = (0..<packets).map { source.packet($0) }
        var out: [MediaServer.Datagram] = []
        out.reserveCapacity(4 * n)
        // The first packet is a keyframe: it starts every consumer.
        var first = input[0]
        server.receive(taking: &first, from: publisherAddress, now: now, into: &out)
        out.removeAll(keepingCapacity: true)
        let before = server.counters.rtpOut
        let start = DispatchTime.now().uptimeNanoseconds
        for k in 1..<packets {
            // 60 packets per virtual 2 ms, with the server's timers (RTCP, feedback) in between.
            if k % 60 == 0 {
                now += 2
                server.tick(now: now, into: &out)
            }
            var datagram = input[k]
            server.receive(taking: &datagram, from: publisherAddress, now: now, into: &out)
            server.recycle(&out)  // as the engine does once it has sent them
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let forwarded = server.counters.rtpOut - before
        precondition(forwarded >= (packets - 1) * n, "forwarded \(forwarded) of \((packets - 1) * n)")
        Bench.emit(["benchmark": "sfu-core", "viewers": n, "srtp": profile.rawValue, "packetBytes": 1200, "forwarded": forwarded,
                    "forwardedPerSecond": Int(Double(forwarded) / seconds), "threads": 1, "sockets": false])
    }

    /// ICE and DTLS between `client` and `server` in memory.
    static func connect(_ client: MediaClient, from address: SocketAddress, to server: MediaServer, now: inout UInt64) throws {
        var toServer = [client.bindingRequest()]
        var rounds = 0
        while !client.isConnected || !toServer.isEmpty {
            rounds += 1
            guard rounds < 500 else { throw MediaServerError(.overloaded, "sfu-core: the in-memory handshake did not complete") }
            now += 10
            var out: [MediaServer.Datagram] = []
            for d in toServer { server.receive(d, from: address, now: now, into: &out) }
            toServer = out.filter { $0.to == address }.flatMap { client.receive($0.bytes, now: now) }
            if toServer.isEmpty, !client.isConnected { toServer = client.tick(now: now) + [client.bindingRequest()] }
        }
    }
}
