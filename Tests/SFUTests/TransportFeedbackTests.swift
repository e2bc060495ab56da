import Testing
import RTC
@testable import SFU

@Suite struct TransportFeedbackTests {
    func packet(seq twcc: UInt16, mediaSeq: UInt16, ssrc: UInt32 = 0x1111, pt: UInt8 = 96) -> [UInt8] {
        rtp(ssrc: ssrc, seq: mediaSeq, ts: UInt32(mediaSeq) * 3000, pt: pt, payload: VP8.delta(),
            ext: [RTPExtensionElement(id: 5, value: [UInt8(twcc >> 8), UInt8(twcc & 0xFF)])])
    }

    /// Arrivals (with a loss, a reordering and a sequence wrap) come back in the feedback with
    /// the right statuses and deltas that add up to the arrival times.
    @Test func feedbackReportsEveryArrivalOnce() throws {
        var h = Harness()
        _ = try h.producer(1, vp8Producer())
        h.room.enableTransportWideFeedback(on: TransportID(1), extensionID: 5)
        // twcc 65534, 65535, (0 lost), 2, 1 (late), 3 — arriving 1 ms after another from t0+10.
        let order: [UInt16] = [65534, 65535, 2, 1, 3]
        for (i, s) in order.enumerated() { _ = h.rtp(1, packet(seq: s, mediaSeq: UInt16(100 + i)), t0 + 10 + Int64(i)) }
        let feedback = h.tick(t0 + 20).rtcp(to: 1).compactMap { if case .transportFeedback(let f) = $0 { f } else { nil } }
        #expect(feedback.count == 1)
        let f = try #require(feedback.first)
        #expect(f.baseSequenceNumber == 65534)
        #expect(f.packets.count == 6)
        #expect(f.packets[2] == .notReceived)
        // Reconstruct arrival times (250 µs ticks) from the reference time and deltas.
        var ticks = Int64(f.referenceTime) * 64 * 4
        var arrival: [UInt16: Int64] = [:]
        for (i, status) in f.packets.enumerated() {
            if case .received(let d) = status {
                ticks += Int64(d)
                arrival[f.baseSequenceNumber &+ UInt16(i)] = ticks
            }
        }
        let base = ((t0 + 10) & (0x7F_FFFF * 64 + 63)) * 4
        #expect(arrival[65534].map { $0 - base } == 0)
        #expect(arrival[1].map { $0 - base } == 12, "seq 1 arrived 3 ms after the first")
        #expect(arrival[2].map { $0 - base } == 8)
        // Nothing new: no second feedback; new arrivals are reported from the next number on.
        #expect(h.tick(t0 + 80).rtcp(to: 1).isEmpty)
        _ = h.rtp(1, packet(seq: 4, mediaSeq: 200), t0 + 90)
        let next = h.tick(t0 + 140).rtcp(to: 1).compactMap { if case .transportFeedback(let f) = $0 { f } else { nil } }
        #expect(next.map(\.baseSequenceNumber) == [4])
        #expect(next.map(\.feedbackPacketCount) == [1])
    }

    /// A publisher that did not negotiate transport-cc gets no feedback.
    @Test func noFeedbackUnlessEnabled() throws {
        var h = Harness()
        _ = try h.producer(1, vp8Producer())
        _ = h.rtp(1, packet(seq: 1, mediaSeq: 1), t0)
        #expect(h.tick(t0 + 100).rtcp(to: 1).allSatisfy { if case .transportFeedback = $0 { false } else { true } })
    }

    /// libwebrtc's RTX padding probes carry the layer's rid; the RTX payload type must bind them
    /// as the layer's RTX stream, not as its media SSRC.
    @Test func ridOnAnRTXPacketBindsTheRTXStream() throws {
        var h = Harness()
        let d = ProducerDescription(kind: .video, codec: .vp8, payloadType: 96, clockRate: 90000, rtxPayloadType: 97,
                                    layers: ["q", "h"].map { ProducerLayerDescription(rid: $0) }, ridExtensionID: 10)
        let p = try h.producer(1, d)
        let rid = { (r: String) in [RTPExtensionElement(id: 10, value: Array(r.utf8))] }
        _ = h.rtp(1, rtp(ssrc: 0x9999, seq: 1, ts: 0, pt: 97, payload: [0, 0], ext: rid("h")), t0)
        _ = h.rtp(1, rtp(ssrc: 0x2000, seq: 1, ts: 0, pt: 96, payload: VP8.keyframe(), ext: rid("h")), t0 + 1)
        #expect(h.room.layerSSRCs(p) == [nil, 0x2000])
    }
}
