import Identity
import Testing
import RTC

@Suite struct RTPTests {
    /// A VP8 packet as Chrome sends it: marker, PT 96, one-byte extensions (mid "0" id 4,
    /// transport-cc seq id 3, abs-send-time id 2), 4 payload bytes.
    static let chromeLike: [UInt8] = [
        0x90, 0xE0, 0x12, 0x34,              // V=2 X=1, M=1 PT=96, seq 0x1234
        0x00, 0x01, 0xE2, 0x40,              // timestamp 123456
        0xDE, 0xAD, 0xBE, 0xEF,              // SSRC
        0xBE, 0xDE, 0x00, 0x03,              // one-byte profile, 3 words
        0x40, 0x30,                          // id 4, len 1: "0"
        0x31, 0x00, 0x07,                    // id 3, len 2: 7
        0x22, 0x01, 0x02, 0x03,              // id 2, len 3
        0x00, 0x00, 0x00,                    // padding
        0x10, 0x00, 0x9D, 0x01,              // payload
    ]

    @Test func decodesChromeLikePacket() throws {
        let p = try RTPPacket(decoding: RTPTests.chromeLike)
        #expect(p.marker)
        #expect(p.payloadType == 96)
        #expect(p.sequenceNumber == 0x1234)
        #expect(p.timestamp == 123_456)
        #expect(p.ssrc == 0xDEAD_BEEF)
        #expect(p.csrcs.isEmpty)
        #expect(p.headerExtension == .oneByte([
            RTPExtensionElement(id: 4, value: [0x30]),
            RTPExtensionElement(id: 3, value: [0x00, 0x07]),
            RTPExtensionElement(id: 2, value: [1, 2, 3]),
        ]))
        #expect(p.payload == [0x10, 0x00, 0x9D, 0x01])
        #expect(p.paddingLength == 0)
        // Elements pack into 9 bytes + 3 padding: re-encoding reproduces the packet.
        #expect(p.encoded() == RTPTests.chromeLike)
    }

    @Test func csrcsPaddingAndTwoByteExtensions() throws {
        let p = RTPPacket(payloadType: 111, sequenceNumber: 65535, timestamp: .max, ssrc: 1, csrcs: [7, 8],
                          headerExtension: .twoByte(appBits: 3, [RTPExtensionElement(id: 200, value: []),
                                                                 RTPExtensionElement(id: 1, value: Array(repeating: 9, count: 20))]),
                          payload: [1, 2, 3], paddingLength: 5)
        let bytes = p.encoded()
        #expect(bytes[0] == 0xB2)  // V=2 P=1 X=1 CC=2
        #expect(Array(bytes[20..<22]) == [0x10, 0x03])  // profile 0x1003
        #expect(bytes.last == 5)
        #expect(try RTPPacket(decoding: bytes) == p)
    }

    @Test func oneByteBlockWithElementsThatDoNotFitIsWrittenTwoByte() throws {
        let p = RTPPacket(payloadType: 96, sequenceNumber: 1, timestamp: 1, ssrc: 1,
                          headerExtension: .oneByte([RTPExtensionElement(id: 15, value: [1])]), payload: [])
        #expect(try RTPPacket(decoding: p.encoded()).headerExtension == .twoByte(appBits: 0, [RTPExtensionElement(id: 15, value: [1])]))
        #expect(RTPHeaderExtension.make([RTPExtensionElement(id: 14, value: [1])]) == .oneByte([RTPExtensionElement(id: 14, value: [1])]))
    }

    @Test func oneByteId15StopsParsing() throws {
        var bytes = Array(RTPTests.chromeLike)
        bytes[18] = 0xF1  // the transport-cc element header becomes ID 15
        let p = try RTPPacket(decoding: bytes)
        #expect(p.headerExtension?.elements.map(\.id) == [4])
    }

    @Test func errorsNameTheProblem() {
        func code(_ bytes: [UInt8]) -> RTPErrorDomain.Code? {
            do { _ = try RTPPacket(decoding: bytes); return nil } catch { return error.code }
        }
        #expect(code(Array(RTPTests.chromeLike.prefix(11))) == .truncated)
        var b = RTPTests.chromeLike; b[0] = 0x50
        #expect(code(b) == .badVersion)
        b = RTPTests.chromeLike; b[0] = 0x9F  // 15 CSRCs
        #expect(code(b) == .truncated)
        b = RTPTests.chromeLike; b[15] = 0x09  // extension longer than the packet
        #expect(code(b) == .truncated)
        b = RTPTests.chromeLike; b[0] |= 0x20; b[b.count - 1] = 0
        #expect(code(b) == .badPadding)
        b = RTPTests.chromeLike; b[0] |= 0x20; b[b.count - 1] = 5  // only 4 payload bytes
        #expect(code(b) == .badPadding)
        b = RTPTests.chromeLike; b[21] = 0x2F  // id 2 claims 16 bytes
        #expect(code(b) == .malformedExtension)
        b = RTPTests.chromeLike; b[16] = 0x01  // ID 0 with length 2
        #expect(code(b) == .malformedExtension)
    }

    @Test func bufferRewritesHeaderInPlace() throws {
        var buffer = try RTPPacketBuffer(RTPTests.chromeLike)
        buffer.ssrc = 0x0102_0304
        buffer.payloadType = 0xFF  // only 7 bits are kept
        buffer.sequenceNumber = 7
        buffer.timestamp = 0xAABB_CCDD
        buffer.marker = false
        #expect(buffer.bytes.count == RTPTests.chromeLike.count)
        let p = try buffer.decoded()
        #expect(p.ssrc == 0x0102_0304)
        #expect(p.payloadType == 0x7F)
        #expect(!p.marker)
        #expect(p.sequenceNumber == 7)
        #expect(p.timestamp == 0xAABB_CCDD)
        #expect(p.payload == [0x10, 0x00, 0x9D, 0x01])
        #expect(Array(buffer.payload) == [0x10, 0x00, 0x9D, 0x01])
    }

    @Test func bufferRemapsAndDropsExtensionIDs() throws {
        var buffer = try RTPPacketBuffer(RTPTests.chromeLike)
        // mid 4 → 1, transport-cc 3 → 5, abs-send-time 2 dropped.
        buffer.remapExtensionIDs(RTPExtensionIDMap([4: 1, 3: 5]))
        #expect(buffer.bytes.count == RTPTests.chromeLike.count)
        #expect(try buffer.decoded().headerExtension == .oneByte([
            RTPExtensionElement(id: 1, value: [0x30]), RTPExtensionElement(id: 5, value: [0x00, 0x07]),
        ]))
        #expect(buffer.extensionValue(id: 5).map(Array.init) == [0x00, 0x07])
        #expect(buffer.extensionValue(id: 2) == nil)
        let set = buffer.setExtensionValue(id: 5, to: [0x12, 0x34])
        #expect(set)
        let wrongLength = buffer.setExtensionValue(id: 5, to: [0x12])  // length must match
        #expect(!wrongLength)
        #expect(try buffer.decoded().headerExtension?.value(id: 5) == [0x12, 0x34])
        // A one-byte block cannot carry ID 20: that element is dropped instead.
        buffer.remapExtensionIDs(RTPExtensionIDMap([1: 20, 5: 5]))
        #expect(try buffer.decoded().headerExtension?.elements.map(\.id) == [5])
    }

    @Test func bufferRemapsTwoByteExtensions() throws {
        let p = RTPPacket(payloadType: 96, sequenceNumber: 1, timestamp: 1, ssrc: 1,
                          headerExtension: .twoByte(appBits: 0, [RTPExtensionElement(id: 100, value: [1, 2]),
                                                                 RTPExtensionElement(id: 3, value: [])]),
                          payload: [9])
        var buffer = try RTPPacketBuffer(p.encoded())
        buffer.remapExtensionIDs(RTPExtensionIDMap([100: 200]))
        #expect(try buffer.decoded().headerExtension == .twoByte(appBits: 0, [RTPExtensionElement(id: 200, value: [1, 2])]))
    }
}
