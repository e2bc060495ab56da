import Testing
import RTC

@Suite struct DemuxTests {
    @Test func firstByteRangesFollowRFC7983() {
        for b in 0...255 {
            let kind = DatagramKind(classifying: [UInt8(b), 96])
            let expected: DatagramKind = switch b {
            case 0...3: .stun
            case 16...19: .zrtp
            case 20...63: .dtls
            case 64...79: .turnChannel
            case 128...191: .rtp
            default: .unknown
            }
            #expect(kind == expected, "first byte \(b)")
        }
    }

    @Test func rtcpIsTellsApartByPacketType() {
        // RFC 5761 §4: second byte 192–223 is RTCP (SR 200, RR 201, SDES 202, BYE 203, RTPFB 205, PSFB 206).
        for pt in [192, 200, 201, 202, 203, 204, 205, 206, 207, 223] {
            #expect(DatagramKind(classifying: [0x80, UInt8(pt)]) == .rtcp, "type \(pt)")
        }
        // RTP: PT 96 with and without marker, PT 111, PT 0, marker+PT 127 (=255).
        for second in [96, 0xE0, 111, 0, 255, 191, 224] {
            #expect(DatagramKind(classifying: [0x90, UInt8(second)]) == .rtp, "second byte \(second)")
        }
    }

    @Test func shortDatagrams() {
        #expect(DatagramKind(classifying: []) == .unknown)
        #expect(DatagramKind(classifying: [0x80]) == .unknown)
        #expect(DatagramKind(classifying: [0x00]) == .stun)
        #expect(DatagramKind(classifying: [0x16]) == .dtls)
    }
}
