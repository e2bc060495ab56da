import Identity
import Testing

@testable import Libp2p

@Suite struct NoiseFrameTests {
    /// Frame bodies covering the edges: empty, tiny, around 256 (the high length byte), maximal.
    static let bodies: [[UInt8]] = {
        var rng = SplitMix64(seed: 10)
        return [0, 1, 2, 255, 256, 257, 0, 1000, NoiseFrame.maxBodyLength, 3, 0].map { rng.bytes($0) }
    }()

    static var wire: [UInt8] {
        var out: [UInt8] = []
        for body in bodies { try! NoiseFrame.encode(body, into: &out) }
        return out
    }

    @Test func encodesBigEndianLengthPrefix() throws {
        #expect(try NoiseFrame.encode([]) == [0, 0])
        #expect(try NoiseFrame.encode([7]) == [0, 1, 7])
        #expect(try NoiseFrame.encode([UInt8](repeating: 1, count: 258)).prefix(2) == [0x01, 0x02])
        #expect(try NoiseFrame.encode([UInt8](repeating: 1, count: 65535)).prefix(2) == [0xff, 0xff])
    }

    @Test func oversizeBodyIsRejected() {
        #expect(throws: NoiseError.frameTooLarge(length: 70000, limit: 65535)) {
            try NoiseFrame.encode([UInt8](repeating: 0, count: 70000))
        }
        #expect(NoiseError.frameTooLarge(length: 70000, limit: 65535).description == "noise: frame length 70000 exceeds 65535")
        #expect(throws: NoiseError.frameTooLarge(length: 65536, limit: 65535)) {
            try NoiseFrame.encode([UInt8](repeating: 0, count: 65536))
        }
    }

    @Test func decoderRejectsLengthOverItsLimitAndStaysFailed() throws {
        var decoder = NoiseFrameDecoder(maxFrameLength: 1024)
        let wire: [UInt8] = [0x04, 0x00] + [UInt8](repeating: 1, count: 1024) + [0x04, 0x01]
        #expect(decoder.capacity == 1026)
        #expect(decoder.append(wire) == 1026)
        #expect(try decoder.nextFrame()?.count == 1024)
        #expect(decoder.append(wire[1026...]) == 2)
        #expect(throws: NoiseError.frameTooLarge(length: 1025, limit: 1024)) { try decoder.nextFrame() }
        // The stream cannot be resynchronised: the error repeats.
        #expect(throws: NoiseError.frameTooLarge(length: 1025, limit: 1024)) { try decoder.nextFrame() }
    }

    @Test func wholeInputYieldsAllFrames() throws {
        var decoder = NoiseFrameDecoder()
        #expect(try decoder.frames(from: Self.wire) == Self.bodies)
        #expect(decoder.bufferedByteCount == 0)
        #expect(try decoder.nextFrame() == nil)
    }

    /// NIO's ByteToMessageDecoderVerifier idea: one byte at a time must give the same frames.
    @Test func dripFeedYieldsSameFrames() throws {
        var decoder = NoiseFrameDecoder()
        var frames: [[UInt8]] = []
        for byte in Self.wire {
            #expect(decoder.append(CollectionOfOne(byte)) == 1)
            while let frame = try decoder.nextFrame() { frames.append(frame) }
            #expect(decoder.bufferedByteCount <= decoder.capacity)
        }
        #expect(frames == Self.bodies)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func randomChunkingYieldsSameFrames() throws {
        var rng = SplitMix64(seed: 11)
        let wire = Self.wire
        for _ in 0..<50 {
            var decoder = NoiseFrameDecoder()
            var frames: [[UInt8]] = []
            var offset = 0
            while offset < wire.count {
                let end = min(wire.count, offset + Int.random(in: 1...70_000, using: &rng))
                frames += try decoder.frames(from: wire[offset..<end])
                #expect(decoder.bufferedByteCount <= decoder.capacity)
                offset = end
            }
            #expect(frames == Self.bodies)
        }
    }

    @Test func bufferingIsBounded() throws {
        var decoder = NoiseFrameDecoder()
        let flood = [UInt8](repeating: 0xff, count: 200_000)  // a maximal frame, then more
        let taken = decoder.append(flood)
        #expect(taken == NoiseFrame.headerLength + NoiseFrame.maxBodyLength)
        #expect(decoder.freeCapacity == 0)
        #expect(decoder.append(flood) == 0)
        // Taking less than offered means a frame is ready; draining makes room.
        #expect(try decoder.nextFrame()?.count == 65535)
        #expect(decoder.append(flood[taken...]) == decoder.capacity)
    }

    @Test func partialHeaderAndBodyWait() throws {
        var decoder = NoiseFrameDecoder()
        #expect(decoder.append([0x00]) == 1)
        #expect(try decoder.nextFrame() == nil)
        #expect(decoder.append([0x03, 1, 2]) == 3)
        #expect(try decoder.nextFrame() == nil)
        #expect(decoder.append([3, 0x00, 0x00]) == 3)
        #expect(try decoder.nextFrame() == [1, 2, 3])
        #expect(try decoder.nextFrame() == [])  // zero-length frame
        #expect(try decoder.nextFrame() == nil)
    }

    /// 10,000 random inputs, in random pieces: the decoder either yields frames, waits, or
    /// throws `frameTooLarge`, and never holds more than its capacity.
    @Test func randomGarbageNeverCrashesDecoder() {
        var rng = SplitMix64(seed: 12)
        for n in 0..<10_000 {
            var decoder = NoiseFrameDecoder(maxFrameLength: n % 3 == 0 ? Int.random(in: 0...300, using: &rng) : 65535)
            let garbage = rng.bytes(Int.random(in: 0...600, using: &rng))
            var offset = 0
            do {
                while offset < garbage.count {
                    let end = min(garbage.count, offset + Int.random(in: 1...64, using: &rng))
                    for frame in try decoder.frames(from: garbage[offset..<end]) {
                        #expect(frame.count <= decoder.maxFrameLength)
                    }
                    #expect(decoder.bufferedByteCount <= decoder.capacity)
                    offset = end
                }
            } catch {
                guard case .frameTooLarge(let length, let limit) = error, length > limit else {
                    Issue.record("unexpected error \(error)")
                    return
                }
            }
        }
    }
}
