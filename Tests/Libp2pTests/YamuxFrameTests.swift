import Identity
import Testing
import Libp2p

/// Byte-exact vectors, computed by hand from hashicorp/yamux spec.md "Framing":
/// version(1) type(1) flags(2, BE) stream id(4, BE) length(4, BE) [payload].
@Suite struct YamuxFrameCodecTests {
    static let vectors: [(String, YamuxFrame, [UInt8])] = [
        ("data SYN on stream 1 with 'hello'",
         .data(streamID: 1, flags: .syn, payload: Array("hello".utf8)),
         [0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]),
        ("window update ACK on stream 2 granting 256 KiB",
         .windowUpdate(streamID: 2, flags: .ack, delta: 262_144),
         [0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00]),
        ("window update RST on stream 0x01020304",
         .windowUpdate(streamID: 0x0102_0304, flags: .rst, delta: 0),
         [0x00, 0x01, 0x00, 0x08, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00]),
        ("empty data ACK|FIN on stream 2^32-1",
         .data(streamID: 0xFFFF_FFFF, flags: [.ack, .fin], payload: []),
         [0x00, 0x00, 0x00, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00]),
        ("ping SYN with opaque 0xdeadbeef",
         .ping(flags: .syn, opaque: 0xDEAD_BEEF),
         [0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF]),
        ("ping ACK with opaque 0xdeadbeef",
         .ping(flags: .ack, opaque: 0xDEAD_BEEF),
         [0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0xDE, 0xAD, 0xBE, 0xEF]),
        ("go away, protocol error",
         .goAway(.protocolError),
         [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]),
        ("go away, internal error",
         .goAway(.internalError),
         [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02]),
        ("window update with all four flags and a 2^32-1 delta",
         .windowUpdate(streamID: 7, flags: [.syn, .ack, .fin, .rst], delta: 0xFFFF_FFFF),
         [0x00, 0x01, 0x00, 0x0F, 0x00, 0x00, 0x00, 0x07, 0xFF, 0xFF, 0xFF, 0xFF]),
    ]

    @Test func encodesSpecVectors() {
        for (name, frame, bytes) in Self.vectors {
            #expect(frame.encoded == bytes, "\(name)")
        }
    }

    @Test func decodesSpecVectors() throws {
        for (name, frame, bytes) in Self.vectors {
            var decoder = YamuxFrameDecoder()
            decoder.append(bytes)
            #expect(try decoder.nextFrame() == frame, "\(name)")
            #expect(try decoder.nextFrame() == nil)
            #expect(decoder.bufferedByteCount == 0)
        }
    }

    @Test func decodesConcatenatedFramesDripFed() throws {
        let all = Self.vectors.flatMap(\.2)
        var decoder = YamuxFrameDecoder()
        var frames: [YamuxFrame] = []
        for byte in all {
            decoder.append([byte])
            while let frame = try decoder.nextFrame() { frames.append(frame) }
        }
        #expect(frames == Self.vectors.map(\.1))
    }

    @Test func roundTripsRandomFrames() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            let type = YamuxFrameType.allCases.randomElement(using: &rng)!
            let flags = YamuxFlags(rawValue: UInt16.random(in: 0...0xFFFF, using: &rng))
            let id = UInt32.random(in: 0...UInt32.max, using: &rng)
            let frame: YamuxFrame
            switch type {
            case .data:
                frame = .data(streamID: id, flags: flags, payload: (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            case .windowUpdate:
                frame = .windowUpdate(streamID: id, flags: flags, delta: UInt32.random(in: 0...UInt32.max, using: &rng))
            case .ping:
                frame = .ping(flags: flags, opaque: UInt32.random(in: 0...UInt32.max, using: &rng))
            case .goAway:
                frame = .goAway(YamuxGoAwayCode(rawValue: UInt32.random(in: 0...UInt32.max, using: &rng)))
            }
            var decoder = YamuxFrameDecoder()
            decoder.append(frame.encoded)
            #expect(try decoder.nextFrame() == frame)
        }
    }

    @Test func rejectsUnknownVersion() {
        var decoder = YamuxFrameDecoder()
        decoder.append([0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00])
        let error = #expect(throws: YamuxError.self) { try decoder.nextFrame() }
        #expect(error?.code == .unsupportedVersion)
        #expect(error?.description.contains("version 1") == true)
        // The decoder stays failed.
        #expect(throws: YamuxError.self) { try decoder.nextFrame() }
    }

    @Test func rejectsUnknownType() {
        var decoder = YamuxFrameDecoder()
        decoder.append([0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00])
        let error = #expect(throws: YamuxError.self) { try decoder.nextFrame() }
        #expect(error?.code == .unknownFrameType)
        #expect(error?.description.contains("type 0x4") == true)
    }

    @Test func rejectsOversizedDataAtTheHeaderWithoutBufferingThePayload() {
        var decoder = YamuxFrameDecoder(maxPayloadLength: 1024)
        // Data frame announcing 1025 bytes; only the header has arrived.
        decoder.append([0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x04, 0x01])
        let error = #expect(throws: YamuxError.self) { try decoder.nextFrame() }
        #expect(error?.code == .frameTooLarge)
        #expect(error?.description.contains("1025") == true)
    }

    @Test func acceptsPayloadExactlyAtTheLimitAndLargeNonDataLengths() throws {
        var decoder = YamuxFrameDecoder(maxPayloadLength: 4)
        decoder.append(YamuxFrame.data(streamID: 1, payload: [1, 2, 3, 4]).encoded)
        decoder.append(YamuxFrame.windowUpdate(streamID: 1, delta: 0xFFFF_FFFF).encoded)
        #expect(try decoder.nextFrame()?.payload == [1, 2, 3, 4])
        #expect(try decoder.nextFrame()?.header.length == 0xFFFF_FFFF)
    }

    @Test func bufferStaysBoundedWhileDrained() throws {
        var decoder = YamuxFrameDecoder(maxPayloadLength: 1000)
        var rng = SplitMix64(seed: 1)
        var stream: [UInt8] = []
        for i in 0..<500 {
            stream += YamuxFrame.data(streamID: UInt32(i), payload: Array(repeating: 7, count: Int.random(in: 0...1000, using: &rng))).encoded
        }
        var offset = 0
        var count = 0
        while offset < stream.count {
            let n = min(Int.random(in: 1...3000, using: &rng), stream.count - offset)
            decoder.append(stream[offset..<offset + n])
            offset += n
            while try decoder.nextFrame() != nil { count += 1 }
            #expect(decoder.bufferedByteCount < YamuxHeader.size + 1000)
        }
        #expect(count == 500)
    }
}

