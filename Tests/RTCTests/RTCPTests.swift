import Identity
import Testing
import RTC

@Suite struct RTCPTests {
    @Test func compoundSRSDESDecodesByteExact() throws {
        // SR with one report block, then SDES CNAME "ab", as RFC 3550 §6.4.1 / §6.5.1 lay them out.
        let bytes: [UInt8] = [
            0x81, 200, 0x00, 0x0C,                  // SR, RC=1, 13 words
            0x00, 0x00, 0x00, 0x01,                 // SSRC 1
            0xE7, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, // NTP
            0x00, 0x00, 0x10, 0x00,                 // RTP ts 4096
            0x00, 0x00, 0x00, 0x0A,                 // 10 packets
            0x00, 0x00, 0x03, 0xE8,                 // 1000 octets
            0x00, 0x00, 0x00, 0x02,                 // block: SSRC 2
            0x40, 0xFF, 0xFF, 0xFF,                 // fraction 64, cumulative -1
            0x00, 0x01, 0x00, 0x05,                 // ext highest seq
            0x00, 0x00, 0x00, 0x20,                 // jitter
            0x11, 0x22, 0x33, 0x44,                 // LSR
            0x00, 0x01, 0x00, 0x00,                 // DLSR
            0x81, 202, 0x00, 0x03,                  // SDES, SC=1, length 3 (16 bytes)
            0x00, 0x00, 0x00, 0x01,                 // SSRC 1
            0x01, 0x02, 0x61, 0x62,                 // CNAME "ab"
            0x00, 0x00, 0x00, 0x00,                 // end + pad
        ]
        let packets = try RTCPPacket.decodeCompound(bytes)
        #expect(packets.count == 2)
        guard case .senderReport(let sr) = packets[0], case .sourceDescription(let sdes) = packets[1] else {
            Issue.record("unexpected \(packets)")
            return
        }
        #expect(sr.ssrc == 1)
        #expect(sr.ntpTimestamp == 0xE700_0000_8000_0000)
        #expect(sr.packetCount == 10 && sr.octetCount == 1000)
        #expect(sr.reports == [RTCPReportBlock(ssrc: 2, fractionLost: 64, cumulativeLost: -1, extendedHighestSequence: 0x10005,
                                               jitter: 32, lastSenderReport: 0x1122_3344, delaySinceLastSenderReport: 0x10000)])
        #expect(sdes.chunks.first?.cname == "ab")
        #expect(RTCPPacket.encodeCompound(packets) == bytes)
    }

    @Test func nackExpandsAndBuildsFromSequenceNumbers() throws {
        // RFC 4585 §6.2.1: PID 100, BLP 0b101 → 100, 101, 103.
        let bytes: [UInt8] = [0x81, 205, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x64, 0x00, 0x05]
        guard case .nack(let nack) = try RTCPPacket.decodeCompound(bytes).first else { Issue.record("not a NACK"); return }
        #expect(nack.lostSequenceNumbers == [100, 101, 103])
        #expect(RTCPPacket.nack(nack).encoded == bytes)

        let built = RTCPNack(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: [65530, 65535, 0, 5, 6, 30])
        // 65530 covers up to 65530+16 = 10 (wrapping): 65535, 0, 5, 6; 30 starts a new pair.
        #expect(built.pairs.map(\.packetID) == [65530, 30])
        #expect(built.lostSequenceNumbers == [65530, 65535, 0, 5, 6, 30])
    }

    @Test func pliFirRemb() throws {
        let pli = RTCPPacket.pictureLossIndication(RTCPPictureLossIndication(senderSSRC: 1, mediaSSRC: 0xABCD))
        #expect(pli.encoded == [0x81, 206, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0xAB, 0xCD])
        let fir = RTCPPacket.fullIntraRequest(RTCPFullIntraRequest(senderSSRC: 1, entries: [.init(ssrc: 9, sequenceNumber: 3)]))
        #expect(fir.encoded == [0x84, 206, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 3, 0, 0, 0])

        // REMB for 1 Mbit/s: 1_000_000 = 250000 << 2, and 250000 < 2^18.
        let remb = RTCPPacket.receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate(senderSSRC: 1, bitrate: 1_000_000, ssrcs: [5, 6]))
        let bytes = remb.encoded
        #expect(Array(bytes[12..<16]) == Array("REMB".utf8))
        #expect(bytes[16] == 2)
        #expect(Array(bytes[17..<20]) == [0x0B, 0xD0, 0x90])  // exp 2 << 18 | mantissa 250000 (0x3D090)
        guard case .receiverEstimatedMaxBitrate(let decoded) = try RTCPPacket.decodeCompound(bytes)[0] else { Issue.record("not REMB"); return }
        #expect(decoded.bitrate == 1_000_000)
        #expect(decoded.ssrcs == [5, 6])
        // Large exponents saturate rather than overflow.
        var huge = bytes
        huge[17] = 0xFF
        guard case .receiverEstimatedMaxBitrate(let big) = try RTCPPacket.decodeCompound(huge)[0] else { Issue.record("not REMB"); return }
        #expect(big.bitrate == UInt64.max)
    }

    @Test func transportCCParsesRunLengthAndVectorChunks() throws {
        // 12 statuses from base 5 (draft-holmer-…-01 §3.1.3–§3.1.4):
        //   run length chunk, 4 × small delta               0x2004 (T=0, S=01, length 4)
        //   2-bit vector: small nr small small nr large small 0xD149 (T=1 S=1 01 00 01 01 00 10 01)
        //   1-bit vector: nr (13 unused symbols follow)       0x8000
        // deltas: 1 2 3 4 | 5 6 7 -8 (large, 0xFFF8) 9
        let fci: [UInt8] = [
            0x00, 0x05, 0x00, 0x0C,  // base 5, 12 statuses
            0xFF, 0xFF, 0xFE, 0x11,  // reference time -2, fb count 17
            0x20, 0x04, 0xD1, 0x49, 0x80, 0x00,
            1, 2, 3, 4, 5, 6, 7, 0xFF, 0xF8, 9,
        ]
        var body: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 2] + fci
        while body.count % 4 != 0 { body.append(0) }
        let bytes: [UInt8] = [0x8F, 205, 0x00, UInt8(body.count / 4)] + body
        guard case .transportFeedback(let tcc) = try RTCPPacket.decodeCompound(bytes)[0] else { Issue.record("not TWCC"); return }
        #expect(tcc.baseSequenceNumber == 5)
        #expect(tcc.referenceTime == -2)
        #expect(tcc.feedbackPacketCount == 0x11)
        #expect(tcc.packets == [
            .received(delta: 1), .received(delta: 2), .received(delta: 3), .received(delta: 4),
            .received(delta: 5), .notReceived, .received(delta: 6), .received(delta: 7), .notReceived,
            .received(delta: -8), .received(delta: 9), .notReceived,
        ])
        // Our encoder may choose other chunks, but the statuses survive.
        #expect(try RTCPPacket.decodeCompound(RTCPPacket.transportFeedback(tcc).encoded) == [.transportFeedback(tcc)])
    }

    @Test func transportCCErrors() {
        // Declares 20 statuses, has one 1-bit chunk (14).
        let body: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 20, 0, 0, 0, 0, 0x80, 0x00, 0, 0]
        #expect(throws: RTCPError.self) { try RTCPPacket.decodeCompound([0x8F, 205, 0, 5] + body) }
        // Run of 3 small deltas with no delta bytes.
        let short: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0x20, 0x03, 0, 0]
        #expect(throws: RTCPError.self) { try RTCPPacket.decodeCompound([0x8F, 205, 0, 5] + short) }
    }

    @Test func byeUnknownAndPadding() throws {
        let bye = RTCPPacket.goodbye(RTCPGoodbye(ssrcs: [1, 2], reason: "bye!"))
        let app = RTCPPacket.raw(RTCPRawPacket(count: 3, packetType: 204, body: [0, 0, 0, 1, 0x61, 0x62, 0x63, 0x64]))
        let bytes = RTCPPacket.encodeCompound([bye, app])
        #expect(try RTCPPacket.decodeCompound(bytes) == [bye, app])
        // P bit with a 4-byte padding on an RR.
        let rr: [UInt8] = [0xA0, 201, 0x00, 0x02, 0, 0, 0, 7, 0, 0, 0, 4]
        #expect(try RTCPPacket.decodeCompound(rr) == [.receiverReport(RTCPReceiverReport(ssrc: 7))])
    }

    @Test func errorsNameTheProblem() {
        func code(_ bytes: [UInt8]) -> RTCPErrorDomain.Code? {
            do { _ = try RTCPPacket.decodeCompound(bytes); return nil } catch { return error.code }
        }
        #expect(code([]) == .truncated)
        #expect(code([0x80, 201, 0]) == .truncated)
        #expect(code([0x40, 201, 0, 1, 0, 0, 0, 0]) == .badVersion)
        #expect(code([0x80, 201, 0, 2, 0, 0, 0, 0]) == .truncated)
        #expect(code([0xA0, 201, 0, 1, 0, 0, 0, 0]) == .badPadding)
        #expect(code([0x81, 201, 0, 1, 0, 0, 0, 0]) == .malformed)  // RC=1, no block
        #expect(code([0x81, 205, 0, 1, 0, 0, 0, 0]) == .malformed)  // NACK without media SSRC
    }
}
