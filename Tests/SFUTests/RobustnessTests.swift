import Identity
import Testing
import RTC
@testable import SFU

@Suite struct RobustnessTests {
    /// Random bytes, and valid RTP/RTCP with random bit flips and truncations, from publisher and
    /// subscriber alike, interleaved with ticks and layer changes: nothing traps, drops are counted.
    @Test func randomAndDamagedPacketsNeverCrash() throws {
        var rng = SplitMix64(seed: 0x5F0)
        var h = Harness()
        let p = try h.producer(1, ProducerDescription(kind: .video, codec: .h264, payloadType: 96, clockRate: 90000, rtxPayloadType: 97,
                                                      layers: [.init(rid: "q"), .init(rid: "f", ssrc: 0x300, rtxSSRC: 0x301)],
                                                      ridExtensionID: 10, repairedRidExtensionID: 11, mid: "0", midExtensionID: 4))
        let (c, _) = try h.consumer(2, p, ConsumerDescription(ssrc: 0xC0, payloadType: 100, rtxSSRC: 0xC1, rtxPayloadType: 101,
                                                               extensionIDs: [4: 1, 10: 14, 11: 200]), t0)
        var now = t0
        let templates: [[UInt8]] = [
            rtp(ssrc: 0x300, seq: 1, ts: 0, payload: [0x7C, 0x85, 1, 2, 3], ext: [.init(id: 10, value: [0x66]), .init(id: 4, value: [0x30])]),
            rtp(ssrc: 0x999, seq: 1, ts: 0, payload: [0x78, 0, 2, 0x67, 0x42], ext: [.init(id: 10, value: [0x71])]),
            RTPPacket(payloadType: 96, sequenceNumber: 5, timestamp: 9, ssrc: 0x300,
                      headerExtension: .twoByte(appBits: 0, [.init(id: 4, value: []), .init(id: 10, value: [0x66, 0x66])]),
                      payload: [0x65], paddingLength: 4).encoded(),
            RTCPPacket.encodeCompound([.nack(RTCPNack(senderSSRC: 1, mediaSSRC: 0xC0, lostSequenceNumbers: [1, 2, 3, 40])),
                                       .pictureLossIndication(.init(senderSSRC: 1, mediaSSRC: 0xC0)),
                                       .receiverEstimatedMaxBitrate(.init(senderSSRC: 1, bitrate: 123_456, ssrcs: [0xC0]))]),
            RTCPPacket.encodeCompound([.senderReport(.init(ssrc: 0x300, ntpTimestamp: 1, rtpTimestamp: 2, packetCount: 3, octetCount: 4))]),
        ]
        for i in 0..<30_000 {
            now += Int64.random(in: 0...3, using: &rng)
            var b: [UInt8]
            switch i % 4 {
            case 0: b = rng.bytes(Int.random(in: 0...80, using: &rng))
            default:
                b = templates[Int.random(in: 0..<templates.count, using: &rng)]
                if b.count > 2, Bool.random(using: &rng) {
                    b[2] = UInt8.random(in: 0...255, using: &rng)  // new sequence number
                }
                for _ in 0..<Int.random(in: 0...3, using: &rng) where !b.isEmpty {
                    b[Int.random(in: 0..<b.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                }
                if Int.random(in: 0..<5, using: &rng) == 0 { b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng))) }
            }
            let from = UInt64.random(in: 1...3, using: &rng)
            h.out.removeAll(keepingCapacity: true)
            if Bool.random(using: &rng) {
                h.room.receiveRTP(from: TransportID(from), b, now: now, into: &h.out)
            } else {
                h.room.receiveRTCP(from: TransportID(from), b, now: now, into: &h.out)
            }
            if i % 500 == 0 {
                h.room.tick(now: now, into: &h.out)
                try? h.room.setPreferredLayer(c, rid: Bool.random(using: &rng) ? "q" : nil, now: now, into: &h.out)
            }
            for case .sendRTP(_, let bytes) in h.out {
                #expect((try? RTPPacket(decoding: bytes)) != nil, "\(bytes) \(String(describing: try? RTPPacket(decoding: bytes)))")  // whatever we emit is valid RTP
            }
        }
        let k = h.room.counters
        #expect(k.malformedRTP > 0 && k.malformedRTCP > 0 && k.unknownSSRC > 0 && k.unknownTransport > 0)
        #expect(k.rtpForwarded > 0)
        print("fuzz counters:", k)
    }

    /// Bytes per consumer including its share of the producer's retransmission buffers, for a
    /// realistic simulcast publisher (150 k / 500 k / 1.5 Mbps, 1,200-byte packets) after 3 s.
    @Test(arguments: [1, 3, 10, 50])
    func memoryPerConsumer(consumers n: Int) throws {
        var h = Harness()
        let p = try h.producer(1, ProducerDescription(kind: .video, codec: .vp8, payloadType: 96, clockRate: 90000,
                                                      layers: [.init(rid: "q", ssrc: 1), .init(rid: "h", ssrc: 2), .init(rid: "f", ssrc: 3)]))
        for i in 0..<n {
            _ = try h.consumer(UInt64(10 + i), p, ConsumerDescription(ssrc: UInt32(100 + i), payloadType: 96, extensionIDs: [2: 2]), t0)
        }
        let rates = [150_000, 500_000, 1_500_000].map { $0 / (1200 * 8) }  // packets per second
        var seqs = [UInt16](repeating: 0, count: 3)
        for ms in stride(from: Int64(0), to: 3000, by: 5) {
            for l in 0..<3 where (ms * Int64(rates[l])) / 1000 != ((ms - 5) * Int64(rates[l])) / 1000 {
                seqs[l] &+= 1
                _ = h.rtp(1, rtp(ssrc: UInt32(l + 1), seq: seqs[l], ts: UInt32(ms * 90), payload: seqs[l] == 1 ? VP8.keyframe(1200) : VP8.delta(1200)), t0 + ms)
            }
            if ms % 100 == 0 { _ = h.tick(t0 + ms) }
        }
        let m = h.room.memoryFootprint()
        print("memory: consumers=\(n) buffers=\(m.retransmissionBufferBytes) producer=\(m.producerStateBytes) consumerState=\(m.consumerStateBytes) perConsumer=\(m.bytesPerConsumer / 1024) KiB")
        if n >= 3 { #expect(m.bytesPerConsumer <= 200 * 1024) }
    }

    /// The worst case for the per-consumer budget: a single subscriber of a 1.5 Mbit/s VP8 +
    /// Opus publisher pays for both retransmission buffers alone. Packets arrive with the spare
    /// capacity SRTP unprotect leaves, which the buffer must not keep.
    @Test func oneSubscriberOfVP8AndOpusStaysWithin200KiB() throws {
        var h = Harness()
        let video = try h.producer(1, vp8Producer())
        let audio = try h.producer(1, ProducerDescription(kind: .audio, codec: .opus, payloadType: 111, clockRate: 48000,
                                                          layers: [.init(ssrc: 0x2222)]))
        _ = try h.consumer(2, video, ConsumerDescription(ssrc: 0xC0, payloadType: 96, rtxSSRC: 0xC1, rtxPayloadType: 97,
                                                         extensionIDs: [3: 5]), t0)
        _ = try h.consumer(2, audio, ConsumerDescription(ssrc: 0xC2, payloadType: 111), t0)
        var videoSeq: UInt16 = 0, audioSeq: UInt16 = 0
        for ms in Int64(0)..<2000 {
            func send(_ bytes: [UInt8]) {
                var b = bytes
                b.reserveCapacity(b.count + 16)
                _ = h.rtp(1, b, t0 + ms)
            }
            if (ms * 156) / 1000 != ((ms - 1) * 156) / 1000 {  // 156 x 1,200-byte packets/s = 1.5 Mbit/s
                send(rtp(ssrc: 0x1111, seq: videoSeq, ts: UInt32(ms * 90), payload: videoSeq == 0 ? VP8.keyframe(1200) : VP8.delta(1200)))
                videoSeq &+= 1
            }
            if ms % 20 == 0 {
                send(rtp(ssrc: 0x2222, seq: audioSeq, ts: UInt32(ms * 48), pt: 111, payload: [UInt8](repeating: 0xAB, count: 80)))
                audioSeq &+= 1
            }
            if ms % 100 == 0 { _ = h.tick(t0 + ms) }
        }
        let m = h.room.memoryFootprint()
        #expect(h.room.counters.rtpForwarded > 300)
        #expect(m.totalBytes <= 200 * 1024, "\(m)")
    }
}
