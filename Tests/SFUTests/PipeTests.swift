import Identity
import Foundation
import Testing
import RTC
@testable import SFU

/// Two `MediaServer`s (nodes A and B) and their clients wired together in memory on one
/// virtual clock. B dials pipes to A from its pipe socket 1.
final class Cascade {
    let a: MediaServer
    let b: MediaServer
    var now: UInt64 = 1_700_000_000_000
    static let aAddress = SocketAddress("127.0.0.1", port: 40000)!
    static let bAddress = SocketAddress("127.0.0.1", port: 40001)!
    static let bPipeAddress = SocketAddress("127.0.0.1", port: 45001)!
    /// Client address → (client, the server it talks to).
    var clients: [SocketAddress: (MediaClient, MediaServer)] = [:]
    var received: [SocketAddress: [RTPPacket]] = [:]
    /// RTCP the publisher got (decrypted).
    var rtcpAtClients: [SocketAddress: [RTCPPacket]] = [:]
    /// Drops pipe media from A to B for which this returns true.
    var dropOnPipe: (UInt16) -> Bool = { _ in false }

    init() {
        var ca = MediaServer.Configuration(candidates: [Self.aAddress], certificate: MediaLoop.certificate)
        ca.nodeTag = "A"
        var cb = MediaServer.Configuration(candidates: [Self.bAddress], certificate: MediaLoop.certificate)
        cb.nodeTag = "B"
        cb.idlePipeTimeoutMs = 5_000
        a = MediaServer(configuration: ca, random: SplitMix64(seed: 1))
        b = MediaServer(configuration: cb, random: SplitMix64(seed: 2))
    }

    /// A publisher on A, its first keyframe sent, and a connected pipe from B with A's track announced.
    static func publishedAndPiped() throws -> (Cascade, MediaClient, SocketAddress) {
        let c = Cascade()
        let (pub, pubAddress) = try c.connect(.publisher, to: c.a, port: 5000)
        try c.publish(pub, from: pubAddress, seq: 1, keyframe: true)
        try c.pipe()
        c.announce()
        return (c, pub, pubAddress)
    }

    /// The pipe handshake as the node wiring runs it over RPC: B dials, A accepts.
    func pipe(room: String = "r", id: String = "p1") throws {
        let bParams = b.newPipeParameters(candidate: Self.bPipeAddress)
        let aParams = try a.openPipe(room: room, id: id, peer: "B", remote: bParams, tracks: b.pipeAnnouncement(id: id)?.tracks ?? [], now: now)
        try b.openPipe(room: room, id: id, peer: "A", remote: aParams, local: bParams, socket: 1,
                       tracks: a.pipeAnnouncement(id: id)!.tracks, now: now)
        for _ in 0..<50 where !(connected(a, id) && connected(b, id)) { advance(20) }
        #expect(connected(a, id) && connected(b, id), "the pipe did not connect")
    }

    func connected(_ s: MediaServer, _ id: String) -> Bool { s.pipes[id]?.pipe?.connected ?? false }

    /// Announcements, as the node wiring forwards them on `pipeTracksChanged`.
    func announce() {
        for (from, to) in [(a, b), (b, a)] {
            for e in from.takeEvents() {
                if case .pipeTracksChanged(let id) = e, let ann = from.pipeAnnouncement(id: id) {
                    to.setPipeTracks(id: id, version: ann.version, tracks: ann.tracks)
                }
            }
        }
    }

    func connect(_ role: MediaClient.Role, to server: MediaServer, port: UInt16, room: String = "r") throws -> (MediaClient, SocketAddress) {
        let client = MediaClient(role: role, certificate: MediaLoop.certificate, random: SplitMix64(seed: UInt64(port)))
        let created = role == .publisher ? try server.publish(room: room, offer: client.offer(), now: now)
                                         : try server.view(room: room, offer: client.offer(), rid: nil, now: now)
        try client.accept(answer: created.answer)
        let address = SocketAddress("127.0.0.1", port: port)!
        clients[address] = (client, server)
        route([(client.bindingRequest(), address, server === a ? Self.aAddress : Self.bAddress, 0)])
        for _ in 0..<10 where !client.isConnected { advance(10) }
        #expect(client.isConnected)
        return (client, address)
    }

    /// Delivers (bytes, from, to, via-of-sender) until nothing more is produced.
    func route(_ initial: [([UInt8], SocketAddress, SocketAddress, Int)]) {
        var pending = initial
        var rounds = 0
        while !pending.isEmpty, rounds < 100 {
            rounds += 1
            var next: [([UInt8], SocketAddress, SocketAddress, Int)] = []
            for (bytes, from, to, _) in pending {
                if to == Self.aAddress {
                    var out: [MediaServer.Datagram] = []
                    a.receive(bytes, from: from, now: now, into: &out)
                    next += out.map { ($0.bytes, Self.aAddress, $0.to, $0.via) }
                } else if to == Self.bAddress || to == Self.bPipeAddress {
                    var out: [MediaServer.Datagram] = []
                    // SRTP leaves the RTP header in clear: the sequence number is bytes 2–3.
                    if to == Self.bPipeAddress, DatagramKind(classifying: bytes) == .rtp, dropOnPipe(UInt16(bytes[2]) << 8 | UInt16(bytes[3])) {
                        continue
                    }
                    var copy = bytes
                    b.receive(taking: &copy, from: from, via: to == Self.bPipeAddress ? 1 : 0, now: now, into: &out)
                    next += out.map { ($0.bytes, $0.via == 1 ? Self.bPipeAddress : Self.bAddress, $0.to, $0.via) }
                } else if let (client, _) = clients[to] {
                    let kind = DatagramKind(classifying: bytes)
                    if kind == .rtp, let srtp = client.srtpIn, let plain = try? srtp.unprotect(srtp: bytes), let packet = try? RTPPacket(decoding: plain) {
                        received[to, default: []].append(packet)
                        continue
                    }
                    if kind == .rtcp, let srtp = client.srtpIn, let plain = try? srtp.unprotectRTCP(bytes) {
                        rtcpAtClients[to, default: []] += (try? RTCPPacket.decodeCompound(plain)) ?? []
                        continue
                    }
                    let server = clients[to]!.1 === a ? Self.aAddress : Self.bAddress
                    next += client.receive(bytes, now: now).map { ($0, to, server, 0) }
                }
            }
            pending = next
        }
    }

    func advance(_ ms: UInt64) {
        now += ms
        var outA: [MediaServer.Datagram] = [], outB: [MediaServer.Datagram] = []
        a.tick(now: now, into: &outA)
        b.tick(now: now, into: &outB)
        var pending = outA.map { ($0.bytes, Self.aAddress, $0.to, $0.via) }
        pending += outB.map { ($0.bytes, $0.via == 1 ? Self.bPipeAddress : Self.bAddress, $0.to, $0.via) }
        for (address, (client, server)) in clients {
            pending += client.tick(now: now).map { ($0, address, server === a ? Self.aAddress : Self.bAddress, 0) }
        }
        route(pending)
    }

    func publish(_ client: MediaClient, from address: SocketAddress, seq: UInt16, keyframe: Bool) throws {
        let payload: [UInt8] = [0x10, keyframe ? 0x00 : 0x01] + [UInt8](repeating: UInt8(truncatingIfNeeded: seq), count: 600)
        let plain = RTPPacket(marker: true, payloadType: 96, sequenceNumber: seq, timestamp: UInt32(seq) * 3000, ssrc: client.ssrc,
                              payload: payload).encoded()
        route([(try client.srtpOut!.protect(rtp: plain), address, Self.aAddress, 0)])
    }

    func rtcp(_ client: MediaClient, from address: SocketAddress, to server: SocketAddress, _ packets: [RTCPPacket]) throws {
        route([(try client.srtpOut!.protectRTCP(RTCPPacket.encodeCompound(packets)), address, server, 0)])
    }
}

@Suite struct PipeTests {
    @Test func mediaCrossesAPipeWithItsSSRCsToAViewerOnTheFarNode() throws {
        let (c, pub, pubAddress) = try Cascade.publishedAndPiped()
        // B mirrors A's producer with the publisher's SSRC.
        #expect(c.b.roomStatus("r")?.tracks == 1)
        #expect(c.b.pipes["p1"]?.pipe?.mirrored.count == 1)
        let (_, viewerAddress) = try c.connect(.viewer, to: c.b, port: 6000)
        for seq in UInt16(2)...60 { try c.publish(pub, from: pubAddress, seq: seq, keyframe: seq == 2) }
        let got = c.received[viewerAddress] ?? []
        #expect(got.count == 59, "the viewer on B got \(got.count) of 59")
        #expect(got.first?.payload.count == 602)
        #expect(got.map { $0.payload[2] } == (UInt16(2)...60).map { UInt8(truncatingIfNeeded: $0) })
        // A sent each packet once over the pipe (one stream per edge), B once to its viewer.
        let aPipe = c.a.roomStatus("r")!.pipes[0]
        #expect(aPipe.tracksOut == 1 && aPipe.tracksIn == 0 && aPipe.rtpOut >= 59)
        #expect(c.b.roomStatus("r")!.pipes[0].rtpIn >= 59)
        // The announcement coming back does not loop A's own track onto A.
        #expect(c.a.roomStatus("r")?.tracks == 1)
    }

    @Test func lossOnThePipeIsNackedUpstreamAndKeyframeRequestsAreLimited() throws {
        let (c, pub, pubAddress) = try Cascade.publishedAndPiped()
        let (viewer, viewerAddress) = try c.connect(.viewer, to: c.b, port: 6000)
        try c.publish(pub, from: pubAddress, seq: 2, keyframe: true)
        // Packet 10 is lost between A and B once.
        var dropped = false
        c.dropOnPipe = { seq in
            if seq == 10 && !dropped { dropped = true; return true }
            return false
        }
        for seq in UInt16(3)...20 { try c.publish(pub, from: pubAddress, seq: seq, keyframe: false) }
        #expect(dropped)
        #expect(c.b.roomCounters.nacksSentUpstream == 1)
        #expect(c.a.roomCounters.retransmitted == 1)
        let seqs = (c.received[viewerAddress] ?? []).map(\.payload[2])
        #expect(Set(seqs) == Set((UInt16(2)...20).map { UInt8($0) }), "the viewer got every packet, 10 late")
        // Five PLIs from the viewer within a second reach the publisher once.
        let ssrc = c.received[viewerAddress]!.first!.ssrc
        let before = (c.rtcpAtClients[pubAddress] ?? []).filter { if case .pictureLossIndication = $0 { true } else { false } }.count
        c.advance(1100)
        let settled = (c.rtcpAtClients[pubAddress] ?? []).filter { if case .pictureLossIndication = $0 { true } else { false } }.count
        for _ in 0..<5 {
            try c.rtcp(viewer, from: viewerAddress, to: Cascade.bAddress, [.pictureLossIndication(.init(senderSSRC: 1, mediaSSRC: ssrc))])
        }
        let plis = (c.rtcpAtClients[pubAddress] ?? []).filter { if case .pictureLossIndication = $0 { true } else { false } }.count
        #expect(plis - settled == 1, "before \(before), settled \(settled), after \(plis)")
    }

    @Test func closingThePipeRemovesTheMirrorsAndAnIdlePipeCloses() throws {
        let (c, _, _) = try Cascade.publishedAndPiped()
        #expect(c.b.roomStatus("r")?.tracks == 1)
        // Nobody on B's side: after the idle timeout B closes the pipe, and A learns it by close_notify.
        for _ in 0..<8 { c.advance(1000) }
        #expect(c.b.pipes.isEmpty)
        #expect(c.a.pipes.isEmpty)
        #expect(c.b.roomStatus("r") == nil)
        #expect(c.a.roomStatus("r")?.tracks == 1)
        // One pipe per node pair per room.
        try c.pipe(id: "p2")
        #expect(throws: MediaServerError.self) {
            try c.a.openPipe(room: "r", id: "p3", peer: "B", remote: c.b.newPipeParameters(candidate: Cascade.bPipeAddress), tracks: [], now: c.now)
        }
        var out: [MediaServer.Datagram] = []
        #expect(c.a.closePipe(id: "p2", reason: "test", now: c.now, into: &out))
        #expect(!c.a.closePipe(id: "p2", reason: "test", now: c.now, into: &out))
    }
}
