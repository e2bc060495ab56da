import Testing
import RTC
@testable import SFU

@Suite struct SimulcastTests {
    static let rids = ["q", "h", "f"]

    /// Chrome-style: layers known only by rid, bound from the rtp-stream-id extension (ID 10),
    /// with the mid extension (ID 4) on every packet.
    func ridProducer() -> ProducerDescription {
        ProducerDescription(kind: .video, codec: .vp8, payloadType: 96, clockRate: 90000, rtxPayloadType: 97,
                            layers: Self.rids.map { ProducerLayerDescription(rid: $0) },
                            ridExtensionID: 10, repairedRidExtensionID: 11, mid: "1", midExtensionID: 4)
    }

    func layerPacket(_ layer: Int, frame k: Int, key: Bool, size: Int = 300) -> [UInt8] {
        let ext = [RTPExtensionElement(id: 4, value: Array("1".utf8)),
                   RTPExtensionElement(id: 10, value: Array(Self.rids[layer].utf8))]
        return rtp(ssrc: 0x100 * UInt32(layer + 1), seq: UInt16(1000 * (layer + 1) + k), ts: UInt32(layer) * 777_777 + UInt32(k) * 3000,
                   payload: key ? VP8.keyframe(size) : VP8.delta(size), ext: ext)
    }

    @Test func switchWaitsForKeyframeThenSequenceAndTimestampContinue() throws {
        var h = Harness()
        let p = try h.producer(1, ridProducer())
        let (c, _) = try h.consumer(2, p, ConsumerDescription(ssrc: 0xC0, payloadType: 96, extensionIDs: [:], initialSequenceNumber: 65530), t0)
        var out: [RTPPacket] = []
        var events: [RoomEvent] = []
        for k in 0..<50 {
            let now = t0 + Int64(k) * 33
            if k == 10 { try h.room.setPreferredLayer(c, rid: "q", now: now, into: &h.out) }
            if k == 30 { try h.room.setPreferredLayer(c, rid: nil, now: now, into: &h.out) }
            for layer in 0..<3 {
                let key = k == 0 || (layer == 0 && k == 20) || (layer == 2 && k == 40)
                let o = h.rtp(1, layerPacket(layer, frame: k, key: key), now)
                out += try o.rtp(to: 2).map { try RTPPacket(decoding: $0) }
                events += o.events
            }
            let expectedLayer = k < 20 ? 2 : (k < 40 ? 0 : 2)  // old layer kept until the target's keyframe
            #expect(h.room.consumerStats(c)?.currentLayer == expectedLayer, "frame \(k)")
        }
        #expect(h.room.layerSSRCs(p) == [0x100, 0x200, 0x300])
        #expect(events.filter { if case .layerSwitched = $0 { true } else { false } } == [
            .layerSwitched(c, from: nil, to: 2), .layerSwitched(c, from: 2, to: 0), .layerSwitched(c, from: 0, to: 2),
        ])
        // One packet per frame, except frame 40: q's packet arrived just before f's keyframe.
        #expect(out.count == 51)
        for (i, pkt) in out.enumerated() {
            #expect(pkt.sequenceNumber == 65530 &+ UInt16(i), "no gap at packet \(i)")
            #expect(pkt.ssrc == 0xC0)
            // RID/MID were not mapped for this subscriber: blanked to padding.
            #expect(pkt.headerExtension?.elements.isEmpty ?? true)
            if i > 0 {
                let step = pkt.timestamp &- out[i - 1].timestamp
                // Across a switch the timestamp advances by the wall time since the last packet
                // (33 ms at 90 kHz), or by 1 when the new layer's keyframe arrives in the same ms.
                #expect(step == (i == 20 ? 2970 : i == 41 ? 1 : 3000), "timestamp step at \(i)")
            }
        }
    }

    @Test func bandwidthEstimateCapsTheLayer() throws {
        var h = Harness()
        let d = ProducerDescription(kind: .video, codec: .vp8, payloadType: 96, clockRate: 90000,
                                    layers: [.init(rid: "q", ssrc: 0x100), .init(rid: "h", ssrc: 0x200), .init(rid: "f", ssrc: 0x300)])
        let p = try h.producer(1, d)
        let (a, _) = try h.consumer(2, p, ConsumerDescription(ssrc: 0xA, payloadType: 96), t0)
        let (b, _) = try h.consumer(3, p, ConsumerDescription(ssrc: 0xB, payloadType: 96), t0)
        let sizes = [200, 600, 1200]  // at 50 packets/s: ~85, ~245, ~485 kbps with headers
        var remb: [RTCPPacket] = []
        for k in 0..<150 {
            let now = t0 + Int64(k) * 20
            if k == 60 {
                h.room.setEstimatedBandwidth(consumer: a, bitsPerSecond: 300_000, now: now, into: &h.out)
                // Subscriber b reports its own estimate by REMB on its transport.
                _ = h.rtcp(3, [.receiverEstimatedMaxBitrate(.init(senderSSRC: 0xB0, bitrate: 100_000, ssrcs: [0xB]))], now)
            }
            for layer in 0..<3 {
                let b = rtp(ssrc: 0x100 * UInt32(layer + 1), seq: UInt16(k), ts: UInt32(k) * 1800,
                            payload: k % 25 == 0 ? VP8.keyframe(sizes[layer]) : VP8.delta(sizes[layer]))
                _ = h.rtp(1, b, now)
            }
            if k % 10 == 0 { remb += h.tick(now).rtcp(to: 1) }
        }
        let bitrates = h.room.layerBitrates(p, now: t0 + 149 * 20)
        #expect(bitrates[1] < 300_000 && bitrates[2] > 300_000 && bitrates[0] < 100_000, "\(bitrates)")
        #expect(h.room.consumerStats(a)?.currentLayer == 1)
        #expect(h.room.consumerStats(b)?.currentLayer == 0)
        // REMB to the publisher: simulcast, so the best subscriber's estimate (see rembBitrate).
        let last = remb.compactMap { if case .receiverEstimatedMaxBitrate(let r) = $0 { r } else { nil } }.last
        #expect(last?.bitrate == 300_000 - 300_000 % 4 || last?.bitrate == 300_000)
        #expect(Set(last?.ssrcs ?? []) == [0x100, 0x200, 0x300])
    }
}
