import Identity
import Foundation
import Testing
import RTC
@testable import SFU

/// A `MediaServer` and `MediaClient`s wired together in memory: datagrams go wherever their
/// address says, all on one virtual clock.
final class MediaLoop {
    let server: MediaServer
    var now: UInt64 = 1_700_000_000_000
    var clients: [SocketAddress: MediaClient] = [:]
    /// Decrypted RTP each client received.
    var received: [SocketAddress: [RTPPacket]] = [:]
    static let certificate = try! DTLSCertificate()
    static let serverAddress = SocketAddress("127.0.0.1", port: 40000)!

    init(configure: (inout MediaServer.Configuration) -> Void = { _ in }) {
        var config = MediaServer.Configuration(candidates: [Self.serverAddress], certificate: Self.certificate)
        configure(&config)
        server = MediaServer(configuration: config, random: SplitMix64(seed: 7))
    }

    /// Signals, checks and handshakes a client at `port`.
    func connect(_ role: MediaClient.Role, port: UInt16, room: String = "r", rid: String? = nil) throws -> (MediaClient, SocketAddress, String) {
        let client = MediaClient(role: role, certificate: Self.certificate, random: SplitMix64(seed: UInt64(port)))
        let created = role == .publisher
            ? try server.publish(room: room, offer: client.offer(), now: now)
            : try server.view(room: room, offer: client.offer(), rid: rid, now: now)
        try client.accept(answer: created.answer)
        let address = SocketAddress("127.0.0.1", port: port)!
        clients[address] = client
        send(from: address, [client.bindingRequest()])
        for _ in 0..<10 where !client.isConnected {
            advance(10)
        }
        #expect(client.isConnected, "DTLS did not complete")
        return (client, address, created.id)
    }

    func send(from address: SocketAddress, _ datagrams: [[UInt8]]) {
        var pending = datagrams.map { ($0, address) }
        while !pending.isEmpty {
            var out: [MediaServer.Datagram] = []
            for (d, from) in pending { server.receive(d, from: from, now: now, into: &out) }
            pending = deliver(out)
        }
    }

    /// Hands server output to clients; returns what they answer.
    func deliver(_ out: [MediaServer.Datagram]) -> [([UInt8], SocketAddress)] {
        var replies: [([UInt8], SocketAddress)] = []
        for d in out {
            guard let client = clients[d.to] else { continue }
            if DatagramKind(classifying: d.bytes) == .rtp, let srtp = client.srtpIn, let plain = try? srtp.unprotect(srtp: d.bytes),
               let packet = try? RTPPacket(decoding: plain) {
                received[d.to, default: []].append(packet)
                continue
            }
            replies += client.receive(d.bytes, now: now).map { ($0, d.to) }
        }
        return replies
    }

    func advance(_ ms: UInt64) {
        now += ms
        var out: [MediaServer.Datagram] = []
        server.tick(now: now, into: &out)
        var replies = deliver(out)
        for (address, client) in clients { replies += client.tick(now: now).map { ($0, address) } }
        for (d, from) in replies { send(from: from, [d]) }
    }

    /// An SRTP VP8 packet from a publisher.
    func publish(_ client: MediaClient, from address: SocketAddress, seq: UInt16, keyframe: Bool) throws {
        let payload: [UInt8] = [0x10, keyframe ? 0x00 : 0x01] + [UInt8](repeating: 0x42, count: 600)
        let plain = RTPPacket(marker: true, payloadType: 96, sequenceNumber: seq, timestamp: UInt32(seq) * 3000, ssrc: client.ssrc,
                              headerExtension: .oneByte([RTPExtensionElement(id: 3, value: [UInt8(seq >> 8), UInt8(seq & 0xFF)])]),
                              payload: payload).encoded()
        send(from: address, [try client.srtpOut!.protect(rtp: plain)])
    }
}

@Suite struct MediaServerTests {
    @Test func publisherToTwoViewersThroughICEDTLSAndSRTP() throws {
        let loop = MediaLoop()
        let (pub, pubAddress, _) = try loop.connect(.publisher, port: 5000)
        let (_, v1, _) = try loop.connect(.viewer, port: 5001)
        let (_, v2, _) = try loop.connect(.viewer, port: 5002)
        for seq in UInt16(1)...50 { try loop.publish(pub, from: pubAddress, seq: seq, keyframe: seq == 1) }
        for viewer in [v1, v2] {
            let got = loop.received[viewer] ?? []
            #expect(got.count == 50, "viewer \(viewer) got \(got.count) of 50")
            #expect(Set(got.map(\.ssrc)).count == 1)
            #expect(got.first.map { $0.payload.count } == 602)
        }
        #expect(loop.server.counters.rtpIn == 50)
        #expect(loop.server.counters.rtpOut == 100)
        #expect(loop.server.consumerCount == 2)
        // The publisher negotiated transport-cc: it gets feedback.
        #expect(loop.server.roomCounters.rtcpSent > 0)
    }

    @Test func garbageWrongCredentialsAndForgedSRTPAreCountedAndHarmless() throws {
        let loop = MediaLoop()
        let (pub, pubAddress, _) = try loop.connect(.publisher, port: 5000)
        let (viewer, viewerAddress, _) = try loop.connect(.viewer, port: 5001)
        let stranger = SocketAddress("127.0.0.1", port: 6666)!
        // A check with the right ufrag and a wrong password: 401, no consent.
        let impostor = MediaClient(role: .viewer, certificate: MediaLoop.certificate)
        try impostor.accept(answer: try loop.server.view(room: "r", offer: impostor.offer(), rid: nil, now: loop.now).answer
            .replacingOccurrences(of: "a=ice-pwd:", with: "a=ice-pwd:x"))
        var out: [MediaServer.Datagram] = []
        loop.server.receive(impostor.bindingRequest(), from: stranger, now: loop.now, into: &out)
        let answer = try STUNMessage(decoding: try #require(out.first).bytes)
        #expect(answer.messageClass == .errorResponse)
        // Garbage of every kind, from a stranger and from the publisher's own address.
        var rng = SplitMix64(seed: 1)
        for _ in 0..<200 {
            let junk = rng.bytes(Int.random(in: 0...300, using: &rng))
            loop.server.receive(junk, from: stranger, now: loop.now, into: &out)
            loop.server.receive(junk, from: pubAddress, now: loop.now, into: &out)
        }
        let forged = RTPPacket(payloadType: 96, sequenceNumber: 9, timestamp: 9, ssrc: pub.ssrc, payload: [1, 2, 3]).encoded() + [UInt8](repeating: 0, count: 16)
        loop.server.receive(forged, from: pubAddress, now: loop.now, into: &out)
        let c = loop.server.counters
        #expect(c.stunRejected >= 1)
        #expect(c.srtpUnprotectFailures >= 1)
        #expect(c.unknownSource > 0)
        // The real session still works.
        for seq in UInt16(1)...10 { try loop.publish(pub, from: pubAddress, seq: seq, keyframe: seq == 1) }
        #expect(loop.received[viewerAddress]?.count == 10)
        _ = viewer
    }

    @Test func sessionWithoutConsentIsTornDown() throws {
        let loop = MediaLoop { $0.consentTimeoutMs = 30_000 }
        _ = try loop.connect(.publisher, port: 5000)
        #expect(loop.server.sessionCount == 1)
        for _ in 0..<31 { loop.advance(1000) }
        #expect(loop.server.sessionCount == 0)
        #expect(loop.server.counters.sessionsExpired == 1)
        #expect(loop.server.roomCount == 0)
    }

    /// A client that sends media but no checks (GStreamer's webrtcbin keeps pairs alive with
    /// unauthenticated binding indications) keeps its session; forged SRTP from its address
    /// does not, and once its media stops the session ends 30 s later.
    @Test func authenticatedMediaIsConsentButForgedMediaIsNot() throws {
        let loop = MediaLoop { $0.consentTimeoutMs = 30_000 }
        let (pub, pubAddress, _) = try loop.connect(.publisher, port: 5000)
        for second in 1...60 {
            try loop.publish(pub, from: pubAddress, seq: UInt16(second), keyframe: second == 1)
            loop.advance(1000)
        }
        #expect(loop.server.sessionCount == 1, "a publisher still sending media was torn down")
        #expect(loop.server.counters.sessionsExpired == 0)
        // Forged packets from the same address: right header, wrong authentication tag.
        var rng = SplitMix64(seed: 7)
        for second in 1...31 {
            var forged = RTPPacket(marker: true, payloadType: 96, sequenceNumber: UInt16(100 + second), timestamp: 0,
                                   ssrc: pub.ssrc, payload: [UInt8](repeating: 0x42, count: 100)).encoded()
            forged += (0..<10).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            loop.send(from: pubAddress, [forged])
            loop.advance(1000)
        }
        #expect(loop.server.sessionCount == 0, "forged SRTP kept a session alive")
        #expect(loop.server.counters.sessionsExpired == 1)
        #expect(loop.server.counters.srtpUnprotectFailures >= 29)  // those sent while the session lived
    }

    /// GStreamer's webrtcbin with bundle-policy max-bundle offers its second section with port 0
    /// and a=bundle-only (RFC 8843 §6): that track is published and viewed like the first.
    @Test func maxBundleOffersWithBundleOnlySectionsPublishAndViewEveryTrack() throws {
        let loop = MediaLoop()
        let published = try loop.server.publish(room: "g", offer: try Fixtures.text("sdp/gstreamer-video-audio-sendonly.sdp"), now: loop.now)
        #expect(published.tracks == 2, "the bundle-only audio section is a producer too")
        #expect(loop.server.producerCount == 2)
        let viewed = try loop.server.view(room: "g", offer: try Fixtures.text("sdp/gstreamer-viewer-recvonly.sdp"), rid: nil, now: loop.now)
        #expect(viewed.tracks == 2, "the bundle-only audio section gets the room's audio")
        let answer = try SessionDescription(parsing: viewed.answer)
        #expect(answer.media.map(\.kind) == ["video", "audio"])
        for m in answer.media {
            #expect(m.port == 40000 && m.direction == .sendonly && m.setup == .passive)
            #expect(m.sourceAttributes.contains { $0.attribute == "cname" })
        }
    }

    @Test func badOffersSayWhatIsWrong() throws {
        let loop = MediaLoop()
        let good = MediaClient(role: .publisher, certificate: MediaLoop.certificate).offer()
        func reason(_ offer: String, view: Bool = false, rid: String? = nil) -> (MediaServerErrorDomain.Code, String)? {
            do {
                _ = view ? try loop.server.view(room: "r", offer: offer, rid: rid, now: loop.now)
                         : try loop.server.publish(room: "r", offer: offer, now: loop.now)
                return nil
            } catch { return (error.code, error.message) }
        }
        let noFingerprint = good.split(separator: "\r\n").filter { !$0.hasPrefix("a=fingerprint") }.joined(separator: "\r\n") + "\r\n"
        #expect(reason(noFingerprint)?.1.contains("fingerprint") == true)
        let noUfrag = good.split(separator: "\r\n").filter { !$0.hasPrefix("a=ice-ufrag") }.joined(separator: "\r\n") + "\r\n"
        #expect(reason(noUfrag)?.1.contains("ice-ufrag") == true)
        let noCodec = good.replacingOccurrences(of: "VP8/90000", with: "AV2/90000")
        #expect(reason(noCodec)?.1.contains("no codec in common") == true)
        #expect(reason("hello")?.0 == .badOffer)
        #expect(reason(MediaClient(role: .viewer, certificate: MediaLoop.certificate).offer(), view: true)?.0 == .nothingPublished)
        _ = try loop.server.publish(room: "r", offer: good, now: loop.now)
        #expect(reason(MediaClient(role: .viewer, certificate: MediaLoop.certificate).offer(), view: true, rid: "x")?.0 == nil,
                "a rid on a non-simulcast room is ignored")
        #expect(loop.server.counters.offersRejected >= 4)
    }
}
