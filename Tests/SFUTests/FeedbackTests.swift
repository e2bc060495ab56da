import Testing
import RTC
@testable import SFU

@Suite struct FeedbackTests {
    /// Publisher on 1, one consumer on 2 (RTX optional), 20 packets forwarded at 10 ms spacing.
    func setUp(rtx: Bool, _ config: RoomConfiguration = RoomConfiguration(), packets: Int = 20) throws -> (Harness, ConsumerID, [[UInt8]]) {
        var h = Harness(config)
        let p = try h.producer(1, vp8Producer())
        let d = ConsumerDescription(ssrc: 0xC0, payloadType: 98, rtxSSRC: rtx ? 0xC1 : nil, rtxPayloadType: rtx ? 99 : nil,
                                    initialSequenceNumber: 500, initialTimestamp: 1000)
        let (c, _) = try h.consumer(2, p, d, t0)
        var sent: [[UInt8]] = []
        for i in 0..<packets {
            let b = rtp(ssrc: 0x1111, seq: UInt16(7000 + i), ts: UInt32(i) * 3000, payload: i == 0 ? VP8.keyframe(1200) : VP8.delta(1200, fill: UInt8(i)))
            sent += h.rtp(1, b, t0 + Int64(i) * 10).rtp(to: 2)
        }
        #expect(sent.count == packets)
        return (h, c, sent)
    }

    func nack(_ seqs: [UInt16], ssrc: UInt32 = 0xC0) -> RTCPPacket {
        .nack(RTCPNack(senderSSRC: 0x5B, mediaSSRC: ssrc, lostSequenceNumbers: seqs))
    }

    @Test func nackIsAnsweredWithTheSamePacket() throws {
        var (h, _, sent) = try setUp(rtx: false)
        let now = t0 + 300
        let out = h.rtcp(2, [nack([503, 505])], now).rtp(to: 2)
        #expect(out == [sent[3], sent[5]])  // byte-identical to what was forwarded
        // Unknown (never sent) and again within 100 ms: counted, not sent.
        #expect(h.rtcp(2, [nack([9000, 503])], now + 50).rtp(to: 2).isEmpty)
        #expect(h.room.counters.nackUnknownOrTooOld == 1)
        #expect(h.room.counters.nackRateLimited == 1)
        // After 100 ms the same packet may go again; after the buffer's 1 s it is too old.
        #expect(h.rtcp(2, [nack([503])], now + 101).rtp(to: 2) == [sent[3]])
        #expect(h.rtcp(2, [nack([504])], t0 + 40 + 1001).rtp(to: 2).isEmpty)
        #expect(h.room.counters.nackUnknownOrTooOld == 2)
        #expect(h.room.counters.retransmitted == 3)
    }

    @Test func nackIsAnsweredWithRTXWhenNegotiated() throws {
        var (h, c, sent) = try setUp(rtx: true)
        let out = h.rtcp(2, [nack([503, 504])], t0 + 300).rtp(to: 2)
        #expect(out.count == 2)
        for (k, b) in out.enumerated() {
            let r = try RTPPacket(decoding: b)
            let original = try RTPPacket(decoding: sent[3 + k])
            #expect(r.ssrc == 0xC1 && r.payloadType == 99)
            #expect(r.sequenceNumber == 500 &+ 0x8000 &+ UInt16(k))  // the RTX stream's own numbering
            #expect(r.timestamp == original.timestamp && r.marker == original.marker)
            // RFC 4588 §4: OSN then the original payload.
            #expect(r.payload == [0x01, 0xF7 + UInt8(k)] + original.payload)
        }
        #expect(h.room.consumerStats(c)?.retransmitted == 2)
    }

    @Test func nackFloodIsRateLimited() throws {
        var config = RoomConfiguration()
        config.maxRetransmissionsPerSecond = 50
        var (h, _, _) = try setUp(rtx: false, config, packets: 100)
        let all = (0..<100).map { UInt16(500 + $0) }
        var sent = 0
        for _ in 0..<5 {  // the same 100 packets NACKed five times at once
            sent += h.rtcp(2, [nack(all)], t0 + 1000).rtp(to: 2).count
        }
        #expect(sent == 50)  // the bucket holds one second's worth
        #expect(h.room.counters.nackRateLimited == 450)
        // Refill at 50/s: 240 ms later, 12 more.
        #expect(h.rtcp(2, [nack(Array(all[50...]))], t0 + 1240).rtp(to: 2).count == 12)
    }

    @Test func pliFromSubscribersIsRelayedAtMostOncePerSecond() throws {
        var (h, _, _) = try setUp(rtx: false)
        // The consumer's start already asked at t0. Within the second, requests are suppressed.
        let pli = RTCPPacket.pictureLossIndication(.init(senderSSRC: 0x5B, mediaSSRC: 0xC0))
        #expect(h.rtcp(2, [pli], t0 + 500).rtcp(to: 1).isEmpty)
        let relayed = h.rtcp(2, [pli], t0 + 1000)
        #expect(relayed.rtcp(to: 1) == [.pictureLossIndication(.init(senderSSRC: RoomConfiguration().rtcpSenderSSRC, mediaSSRC: 0x1111))])
        #expect(relayed.events.contains(.keyframeRequested(ProducerID(1), layer: 0, ssrc: 0x1111)))
        let fir = RTCPPacket.fullIntraRequest(.init(senderSSRC: 0x5B, entries: [.init(ssrc: 0xC0, sequenceNumber: 1)]))
        #expect(h.rtcp(2, [fir, pli], t0 + 1500).rtcp(to: 1).isEmpty)
        #expect(h.rtcp(2, [fir], t0 + 2000).rtcp(to: 1).count == 1)
        #expect(h.room.counters.keyframeRequestsFromConsumers == 5)
        #expect(h.room.counters.keyframeRequestsSent == 3)
        #expect(h.room.counters.keyframeRequestsSuppressed == 3)
        // PLI for an SSRC this subscriber does not receive.
        _ = h.rtcp(2, [.pictureLossIndication(.init(senderSSRC: 0x5B, mediaSSRC: 0x1111))], t0 + 3000)
        #expect(h.room.counters.unknownSSRC == 1)
    }

    @Test func receiverReportFromScriptedLossAndJitter() throws {
        var h = Harness()
        _ = try h.producer(1, vp8Producer())
        let lost: Set<Int> = [10, 20, 30, 31, 32]
        // 100 packets from seq 65500 (wrapping) with 20 ms spacing; every third arrives 5 ms late.
        var reference = 0.0, previousTransit: Double?
        for i in 0..<100 where !lost.contains(i) {
            let arrival = t0 + Int64(i) * 20 + (i % 3 == 0 ? 5 : 0)
            let ts = UInt32(i) * 1800
            _ = h.rtp(1, rtp(ssrc: 0x1111, seq: 65500 &+ UInt16(i), ts: ts, payload: VP8.delta()), arrival)
            let transit = Double(arrival * 90) - Double(ts)  // RFC 3550 A.8 in floating point
            if let prev = previousTransit { reference += (abs(transit - prev) - reference) / 16 }
            previousTransit = transit
        }
        let sr = RTCPSenderReport(ssrc: 0x1111, ntpTimestamp: 0x1122_3344_5566_7788, rtpTimestamp: 0, packetCount: 0, octetCount: 0)
        _ = h.rtcp(1, [.senderReport(sr)], t0 + 1500)
        let reports = h.tick(t0 + 2000).rtcp(to: 1)
        guard case .receiverReport(let rr) = try #require(reports.first) else { Issue.record("no RR"); return }
        let block = try #require(rr.reports.first)
        #expect(rr.ssrc == RoomConfiguration().rtcpSenderSSRC && rr.reports.count == 1)
        #expect(block.ssrc == 0x1111)
        #expect(block.fractionLost == 12)  // 5/100 × 256 = 12.8, floor
        #expect(block.cumulativeLost == 5)
        #expect(block.extendedHighestSequence == 65536 + 63)  // 65500 + 99, one wrap
        #expect(abs(Double(block.jitter) - reference) <= 1, "jitter \(block.jitter) vs A.8 reference \(reference)")
        #expect(block.jitter > 0)
        #expect(block.lastSenderReport == 0x3344_5566)
        #expect(block.delaySinceLastSenderReport == 500 * 65536 / 1000)
        // Next interval: 50 more packets, none lost.
        for i in 100..<150 {
            _ = h.rtp(1, rtp(ssrc: 0x1111, seq: 65500 &+ UInt16(i), ts: UInt32(i) * 1800, payload: VP8.delta()), t0 + 2000 + Int64(i))
        }
        guard case .receiverReport(let rr2) = try #require(h.tick(t0 + 3000).rtcp(to: 1).first) else { Issue.record("no RR"); return }
        #expect(rr2.reports[0].fractionLost == 0 && rr2.reports[0].cumulativeLost == 5)
        #expect(rr2.reports[0].extendedHighestSequence == 65536 + 113)
    }

    @Test func senderReportExtrapolatesRTPTimeFromNow() throws {
        var (h, c, sent) = try setUp(rtx: false)
        let last = try RTPPacket(decoding: sent.last!)
        let now = t0 + 190 + 500  // last packet went out at t0 + 190
        let reports = h.tick(now).rtcp(to: 2)
        guard case .senderReport(let sr) = try #require(reports.first) else { Issue.record("no SR"); return }
        #expect(sr.ssrc == 0xC0)
        #expect(sr.ntpTimestamp >> 32 == UInt64(now / 1000 + 2_208_988_800))
        #expect(sr.ntpTimestamp & 0xFFFF_FFFF == UInt64(now % 1000) << 32 / 1000)
        #expect(sr.rtpTimestamp == last.timestamp &+ 45000)  // 500 ms at 90 kHz
        #expect(sr.packetCount == 20)
        #expect(sr.octetCount == 20 * 1200)  // payload octets only (RFC 3550 §6.4.1)
        #expect(h.room.consumerStats(c)?.packetsSent == 20)
    }

    /// A publisher at 1.5 Mbit/s in 1,200-byte packets (~156 packets/s, 30 fps) for `seconds`,
    /// forwarded to the consumer on transport 2; returns what the consumer got, by arrival time.
    func publish(_ h: inout Harness, bitrate: Int = 1_500_000, seconds: Int64 = 2) -> [(Int64, [UInt8])] {
        let perSecond = bitrate / (1200 * 8)
        var sent: [(Int64, [UInt8])] = []
        var seq: UInt16 = 7000
        for ms in stride(from: Int64(0), to: seconds * 1000, by: 1) where (ms * Int64(perSecond)) / 1000 != ((ms - 1) * Int64(perSecond)) / 1000 {
            let i = Int(seq &- 7000)
            var b = rtp(ssrc: 0x1111, seq: seq, ts: UInt32(ms * 90), payload: i == 0 ? VP8.keyframe(1200) : VP8.delta(1200, fill: UInt8(i & 0xFF)))
            b.reserveCapacity(b.count + 16)  // as SRTP leaves it: the tag removed in place
            for o in h.rtp(1, b, t0 + ms).rtp(to: 2) { sent.append((t0 + ms, o)) }
            seq &+= 1
            if ms % 100 == 0 { _ = h.tick(t0 + ms) }
        }
        return sent
    }

    /// The byte budget shortens the window at 1.5 Mbit/s to ~750 ms, which still covers a NACK
    /// sent ~500 ms after the packet (a loss detected late plus a retry or two).
    @Test func nackForAPacket500msOldAt1500kbpsIsAnswered() throws {
        var (h, _, _) = try setUp(rtx: false, packets: 1)
        let sent = publish(&h)
        let now = sent.last!.0
        let old = sent.last { now - $0.0 >= 500 }!
        let oldSequence = try RTPPacket(decoding: old.1).sequenceNumber
        #expect(h.rtcp(2, [nack([oldSequence])], now).rtp(to: 2) == [old.1])
        // 900 ms back is within the 1 s age limit but past the byte budget at this rate: gone.
        let older = sent.last { now - $0.0 >= 900 }!
        #expect(h.rtcp(2, [nack([try RTPPacket(decoding: older.1).sequenceNumber])], now).rtp(to: 2).isEmpty)
        #expect(h.room.counters.nackUnknownOrTooOld == 1)
        let m = h.room.memoryFootprint()
        #expect(m.retransmissionBufferBytes <= RoomConfiguration().videoRetransmissionBytes + 16 * 1024)
    }

    /// Whatever the bitrate, a video layer keeps at most `videoRetransmissionBytes` of packets,
    /// stored at their length even when they arrive in larger arrays; at a low bitrate the age
    /// limit binds first.
    @Test func retransmissionBufferIsBoundedByBytesAndAge() throws {
        var config = RoomConfiguration()
        config.videoRetransmissionBytes = 64 * 1024
        var (fast, _, _) = try setUp(rtx: false, config, packets: 1)
        _ = publish(&fast, bitrate: 6_000_000)
        let layer = fast.room.producers[ProducerID(1)]!.layers[0].buffer
        #expect(layer.heldBytes <= 64 * 1024 && layer.heldBytes > 60 * 1024)
        var (slow, _, _) = try setUp(rtx: false, packets: 1)
        _ = publish(&slow, bitrate: 200_000)
        let held = slow.room.producers[ProducerID(1)]!.layers[0].buffer.heldBytes
        // ~21 packets/s for the 1 s age limit, each held in an array of about its 1,212 bytes.
        #expect(held > 18 * 1212 && held < 24 * 1300)
    }
}
