import Foundation
import Testing
import RTC

/// Replays every input libFuzzer once crashed on (`Fixtures/fuzz-regressions/<Target>/`, see
/// scripts/fuzz.sh) through the codec invariants that target checks, so a fixed bug stays fixed
/// without a fuzzing toolchain.
@Suite struct FuzzRegressionTests {
    static func inputs(_ target: String) -> [(String, [UInt8])] {
        let dir = Fixtures.directory.appendingPathComponent("fuzz-regressions").appendingPathComponent(target)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
        return names.compactMap { name in
            FileManager.default.contents(atPath: dir.appendingPathComponent(name).path).map { (name, [UInt8]($0)) }
        }
    }

    @Test func rtpFuzzInputs() throws {
        let inputs = Self.inputs("RTPFuzz")
        #expect(!inputs.isEmpty)
        for (name, bytes) in inputs {
            if let packet = try? RTPPacket(decoding: bytes) {
                #expect((try? RTPPacketBuffer(bytes)) != nil, "\(name)")
                #expect(try RTPPacket(decoding: packet.encoded()) == packet, "\(name)")
            }
            if let packets = try? RTCPPacket.decodeCompound(bytes) {
                #expect(try RTCPPacket.decodeCompound(RTCPPacket.encodeCompound(packets)) == packets, "\(name)")
            }
        }
    }

    @Test func sdpFuzzInputs() throws {
        let inputs = Self.inputs("SDPFuzz")
        #expect(!inputs.isEmpty)
        for (name, bytes) in inputs {
            guard let offer = try? SessionDescription(parsing: String(decoding: bytes, as: UTF8.self)) else { continue }
            let serialized = offer.serialized
            #expect(try SessionDescription(parsing: serialized).serialized == serialized, "\(name)")
            if let answer = try? SessionDescription.answer(to: offer, options: SDPTests.options()) {
                #expect((try? SessionDescription(parsing: answer.serialized)) != nil, "\(name)")
            }
        }
    }

    /// RTPFuzz found this: an unmodelled RTCP packet whose body, padding removed, is not whole
    /// words was re-encoded zero-filled, so it decoded one byte longer.
    @Test func rawRTCPWithPaddingRoundTrips() throws {
        let bytes: [UInt8] = [0xB1, 105, 0x00, 0x01, 0x0E, 0x00, 0x16, 0x01]  // P=1, count 17, PT 105, padding 1
        let packets = try RTCPPacket.decodeCompound(bytes)
        #expect(packets == [.raw(RTCPRawPacket(count: 17, packetType: 105, body: [0x0E, 0x00, 0x16]))])
        #expect(RTCPPacket.encodeCompound(packets) == bytes)
    }

    /// SDPFuzz found this: a bare CR inside a value was kept, then ended the line when the
    /// description was serialized again, so the parse of the output differed.
    @Test func sdpValueWithBareCRIsRejected() {
        #expect(throws: SDPError.self) { try SessionDescription(parsing: "v=0\r\ns=a\rb\r\nt=0 0\r\n") }
        #expect(throws: SDPError.self) { try SessionDescription(parsing: "v=0\r\ns=a\u{0}b\r\nt=0 0\r\n") }
        #expect((try? SessionDescription(parsing: "v=0\r\ns=ab\r\r\n")) != nil, "a CR before the line end is still tolerated")
    }
}
