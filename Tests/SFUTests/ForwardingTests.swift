import Testing
import RTC
@testable import SFU

@Suite struct ForwardingTests {
    /// The copies written into reused buffers (`receiveRTP(…reusing:)`, what the engine does
    /// with the buffers of sent datagrams) are the same bytes as freshly allocated ones, whatever
    /// the reused buffers held, whatever their size, and also when one is still referenced
    /// elsewhere (which must then keep its own bytes).
    @Test func copiesIntoReusedBuffersAreByteExact() throws {
        let held = [UInt8](repeating: 0xEE, count: 1400)
        func forwarded(reusing spare: [[UInt8]]?) throws -> [[UInt8]] {
            var h = Harness()
            let p = try h.producer(1, vp8Producer())
            _ = try h.consumer(2, p, ConsumerDescription(ssrc: 0xA0A0_0001, payloadType: 96, extensionIDs: [2: 5], initialSequenceNumber: 10, initialTimestamp: 20), t0)
            _ = try h.consumer(3, p, ConsumerDescription(ssrc: 0xB0B0_0002, payloadType: 100, extensionIDs: nil, initialSequenceNumber: 65535, initialTimestamp: 0), t0)
            var pool = spare ?? []
            var all: [[UInt8]] = []
            for i in 0..<6 {
                let payload = i == 0 ? VP8.keyframe(1100) : VP8.delta(40 + 300 * i)
                let b = rtp(ssrc: 0x1111, seq: UInt16(500 + i), ts: UInt32(i) * 3000, payload: payload, ext: [RTPExtensionElement(id: 2, value: [7, 7])])
                h.out.removeAll()
                h.room.receiveRTP(from: TransportID(1), b, now: t0 + Int64(i) * 33, into: &h.out, reusing: &pool)
                all += h.out.rtp(to: 2) + h.out.rtp(to: 3)
            }
            return all
        }
        let fresh = try forwarded(reusing: nil)
        #expect(fresh.count == 12)
        let stale = [[UInt8](repeating: 0xAB, count: 2000), [UInt8](repeating: 0xCD, count: 10), held,
                     [UInt8](repeating: 0x01, count: 1216), [], [UInt8](repeating: 0xFF, count: 600)]
        #expect(try forwarded(reusing: stale) == fresh)
        #expect(held == [UInt8](repeating: 0xEE, count: 1400))
    }

    /// The same bytes with SSRC/PT/seq/ts patched at their RFC 3550 §5.1 offsets: an oracle
    /// independent of the core's rewriter.
    func patched(_ b: [UInt8], pt: UInt8, seq: UInt16, ts: UInt32, ssrc: UInt32) -> [UInt8] {
        var o = b
        o[1] = (o[1] & 0x80) | pt
        o[2] = UInt8(seq >> 8); o[3] = UInt8(seq & 0xFF)
        for i in 0..<4 { o[4 + i] = UInt8(truncatingIfNeeded: ts >> (24 - 8 * i)) }
        for i in 0..<4 { o[8 + i] = UInt8(truncatingIfNeeded: ssrc >> (24 - 8 * i)) }
        return o
    }

    @Test func onePublisherThreeConsumersRewriteByteExact() throws {
        var h = Harness()
        let p = try h.producer(1, vp8Producer())
        // Three subscribers: different PTs, SSRCs, starting numbers (one wraps) and extension maps.
        let specs: [(UInt64, ConsumerDescription)] = [
            (2, ConsumerDescription(ssrc: 0xA0A0_0001, payloadType: 96, extensionIDs: [2: 2, 3: 3], initialSequenceNumber: 1000, initialTimestamp: 5000)),
            (3, ConsumerDescription(ssrc: 0xB0B0_0002, payloadType: 100, extensionIDs: [2: 7], initialSequenceNumber: 65534, initialTimestamp: 0xFFFF_FF00)),
            (4, ConsumerDescription(ssrc: 0xC0C0_0003, payloadType: 120, extensionIDs: nil, initialSequenceNumber: 7, initialTimestamp: 1)),
        ]
        for (t, d) in specs {
            let (_, out) = try h.consumer(t, p, d, t0)
            // A video consumer starts with a keyframe request toward the publisher (maybe rate limited).
            _ = out
        }
        #expect(h.room.counters.keyframeRequestsSent == 1)
        #expect(h.room.counters.keyframeRequestsSuppressed == 2)

        let ext = [RTPExtensionElement(id: 2, value: [1, 2, 3]), RTPExtensionElement(id: 3, value: [0, 9])]
        let seqs: [UInt16] = [40000, 40001, 40002, 40003]
        let inputs = seqs.enumerated().map { i, s in
            rtp(ssrc: 0x1111, seq: s, ts: 900_000 + UInt32(i) * 3000, payload: i == 0 ? VP8.keyframe() : VP8.delta(), ext: ext)
        }
        var received: [UInt64: [[UInt8]]] = [:]
        for (i, b) in inputs.enumerated() {
            let out = h.rtp(1, b, t0 + Int64(i) * 33)
            #expect(out.rtp(to: 1).isEmpty)
            for (t, _) in specs { received[t, default: []] += out.rtp(to: t) }
        }
        for (t, d) in specs {
            let got = try #require(received[t])
            #expect(got.count == 4)
            for (i, b) in got.enumerated() {
                var expected = patched(inputs[i], pt: d.payloadType, seq: d.initialSequenceNumber &+ UInt16(i),
                                       ts: d.initialTimestamp &+ UInt32(i) * 3000, ssrc: d.ssrc)
                // One-byte extension block starts at 16: [0x22 1 2 3] [0x31 0 9] + 1 pad.
                switch t {
                case 3: expected[16] = 0x72; expected[20] = 0; expected[21] = 0; expected[22] = 0  // 2→7, 3 dropped
                default: break
                }
                #expect(b == expected, "consumer on transport \(t), packet \(i)")
                let decoded = try RTPPacket(decoding: b)
                #expect(decoded.payload == (try RTPPacket(decoding: inputs[i])).payload)
            }
        }
        #expect(h.room.counters.rtpForwarded == 12)
    }

    @Test func incomingGapStaysAGap() throws {
        var h = Harness()
        let p = try h.producer(1, vp8Producer())
        _ = try h.consumer(2, p, ConsumerDescription(ssrc: 9, payloadType: 96, initialSequenceNumber: 100), t0)
        var outSeqs: [UInt16] = []
        for (i, s) in [UInt16(65533), 65534, 65535, /* 0 lost */ 1, 2].enumerated() {
            let b = rtp(ssrc: 0x1111, seq: s, ts: UInt32(i) * 3000, payload: i == 0 ? VP8.keyframe() : VP8.delta())
            outSeqs += try h.rtp(1, b, t0 + Int64(i) * 10).rtp(to: 2).map { try RTPPacket(decoding: $0).sequenceNumber }
        }
        #expect(outSeqs == [100, 101, 102, 104, 105])  // 103 is missing, so the subscriber can NACK it
    }

    @Test func videoConsumerWaitsForKeyframeAudioDoesNot() throws {
        var h = Harness()
        let v = try h.producer(1, vp8Producer())
        let a = try h.room.addProducer(on: TransportID(1), ProducerDescription(kind: .audio, codec: .opus, payloadType: 111, clockRate: 48000,
                                                                               layers: [.init(ssrc: 0x2222)]), into: &h.out)
        _ = try h.consumer(2, v, ConsumerDescription(ssrc: 20, payloadType: 96), t0)
        _ = try h.consumer(2, a, ConsumerDescription(ssrc: 21, payloadType: 109), t0)
        #expect(h.rtp(1, rtp(ssrc: 0x1111, seq: 1, ts: 0, payload: VP8.delta()), t0).rtp(to: 2).isEmpty)
        #expect(h.rtp(1, rtp(ssrc: 0x2222, seq: 1, ts: 0, pt: 111, payload: [1, 2, 3]), t0).rtp(to: 2).count == 1)
        #expect(h.rtp(1, rtp(ssrc: 0x1111, seq: 2, ts: 3000, payload: VP8.keyframe()), t0).rtp(to: 2).count == 1)
        #expect(h.rtp(1, rtp(ssrc: 0x1111, seq: 3, ts: 3000, payload: VP8.delta()), t0).rtp(to: 2).count == 1)
    }

    @Test func removeTransportStopsForwardingAndReportsRemovals() throws {
        var h = Harness()
        let p = try h.producer(1, vp8Producer())
        let (c, _) = try h.consumer(2, p, ConsumerDescription(ssrc: 9, payloadType: 96), t0)
        var out: [RoomOutput] = []
        h.room.removeTransport(TransportID(1), into: &out)
        #expect(out.events == [.consumerRemoved(c), .producerRemoved(p)])
        #expect(h.rtp(1, rtp(ssrc: 0x1111, seq: 1, ts: 0, payload: VP8.keyframe()), t0).isEmpty)
        #expect(h.room.counters.unknownTransport == 1)
    }

    @Test func unknownSSRCAndMalformedAreCountedAndDropped() throws {
        var h = Harness()
        let p = try h.producer(1, vp8Producer())
        _ = try h.consumer(2, p, ConsumerDescription(ssrc: 9, payloadType: 96), t0)
        #expect(h.rtp(1, rtp(ssrc: 0xDEAD, seq: 1, ts: 0, payload: VP8.keyframe()), t0).isEmpty)
        #expect(h.rtp(1, [0x80, 96, 0, 1], t0).isEmpty)
        // The subscriber cannot inject media into the publisher's producer.
        #expect(h.rtp(2, rtp(ssrc: 0x1111, seq: 1, ts: 0, payload: VP8.keyframe()), t0).isEmpty)
        #expect(h.room.counters.unknownSSRC == 2)
        #expect(h.room.counters.malformedRTP == 1)
    }

    @Test func keyframeDetection() {
        #expect(KeyframeDetector.isVP8KeyframeStart([0x10, 0x00, 0, 0][...]))
        #expect(!KeyframeDetector.isVP8KeyframeStart([0x10, 0x01][...]))
        #expect(!KeyframeDetector.isVP8KeyframeStart([0x00, 0x00][...]))  // not a partition start
        // X=1, I=1 with a 15-bit PictureID (M=1), L=1, T=1: descriptor is 6 bytes.
        #expect(KeyframeDetector.isVP8KeyframeStart([0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x00][...]))
        #expect(!KeyframeDetector.isVP8KeyframeStart([0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x01][...]))
        #expect(!KeyframeDetector.isVP8KeyframeStart([0x90, 0xE0, 0x81][...]))
        #expect(KeyframeDetector.isH264Keyframe([0x65, 1, 2][...]))  // IDR
        #expect(!KeyframeDetector.isH264Keyframe([0x41, 1, 2][...]))  // non-IDR slice
        #expect(KeyframeDetector.isH264Keyframe([0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xCE][...]))  // STAP-A SPS+PPS
        #expect(KeyframeDetector.isH264Keyframe([0x7C, 0x85, 9][...]))  // FU-A start of IDR
        #expect(!KeyframeDetector.isH264Keyframe([0x7C, 0x05, 9][...]))  // FU-A middle
        #expect(KeyframeDetector.isKeyframeStart(codec: .opus, payload: [1][...]))
    }

    @Test func producerFromChromeSimulcastOffer() throws {
        let sdp = try SessionDescription(parsing: try Fixtures.text("sdp/chrome-simulcast-sendonly.sdp"))
        let video = try #require(sdp.media.first { $0.kind == "video" })
        let d = try ProducerDescription(section: video, sessionExtmaps: sdp.extmaps)
        #expect(d.kind == .video && d.codec == .vp8 && d.payloadType == 96 && d.clockRate == 90000 && d.rtxPayloadType == 97)
        #expect(d.layers.map(\.rid) == ["q", "h", "f"])
        #expect(d.ridExtensionID == 10 && d.repairedRidExtensionID == 11 && d.midExtensionID == 4)
        let map = ConsumerDescription.extensionIDMap(from: video.extmaps, to: video.extmaps)
        #expect(map[2] == 2 && map[4] == nil && map[10] == nil && map[3] == nil)
    }
}
