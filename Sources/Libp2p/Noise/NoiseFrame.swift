/// noise-libp2p framing (libp2p noise spec, "Wire Format"): every Noise message, handshake
/// or transport, travels as
///
///     | noise_message_len (2 bytes, big-endian) | noise_message |
///
/// so a body is at most 65535 bytes, and a zero-length body is legal.
public enum NoiseFrame {
    public static let headerLength = 2
    public static let maxBodyLength = Int(UInt16.max)

    /// Returns `body` with its length prefix.
    public static func encode(_ body: [UInt8]) throws(NoiseError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(headerLength + body.count)
        try encode(body, into: &out)
        return out
    }

    /// Appends `body` with its length prefix to `out`.
    public static func encode(_ body: [UInt8], into out: inout [UInt8]) throws(NoiseError) {
        guard body.count <= maxBodyLength else {
            throw .frameTooLarge(length: body.count, limit: maxBodyLength)
        }
        out.append(UInt8(body.count >> 8))
        out.append(UInt8(body.count & 0xff))
        out.append(contentsOf: body)
    }
}

/// Incremental decoder for `NoiseFrame`s arriving in arbitrary pieces.
///
/// Buffering is bounded: the decoder never holds more than one header plus one maximal frame
/// (`capacity` bytes). `append` therefore takes only what fits and returns how many bytes it
/// took; when it takes fewer than offered, a complete frame (or a length error) is waiting, so
/// draining `nextFrame()` always makes room. Typical use:
///
///     var input = bytesFromSocket[...]
///     while !input.isEmpty {
///         input = input.dropFirst(decoder.append(input))
///         while let frame = try decoder.nextFrame() { handle(frame) }
///     }
///
/// `frames(from:)` does exactly that. A length over `maxFrameLength` is an error the decoder
/// keeps: the stream cannot be resynchronised, so the connection must be closed.
public struct NoiseFrameDecoder: Sendable {
    /// The longest frame body accepted; at most `NoiseFrame.maxBodyLength`.
    public let maxFrameLength: Int
    /// Bytes at `readIndex...` are undelivered; bytes before it are delivered and dropped lazily.
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failure: NoiseError?

    /// - Parameter maxFrameLength: a lower limit than 65535 lets a caller refuse large frames
    ///   early (e.g. during the handshake); it is clamped to 0...65535.
    public init(maxFrameLength: Int = NoiseFrame.maxBodyLength) {
        self.maxFrameLength = min(max(maxFrameLength, 0), NoiseFrame.maxBodyLength)
    }

    /// The most bytes the decoder ever buffers: one header plus one maximal frame.
    public var capacity: Int { NoiseFrame.headerLength + maxFrameLength }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// How many more bytes `append` would take now.
    public var freeCapacity: Int { capacity - bufferedByteCount }

    /// Buffers as many leading bytes of `bytes` as fit and returns that count. Call
    /// `nextFrame()` until it returns nil, then append the rest.
    public mutating func append<Bytes: Collection>(_ bytes: Bytes) -> Int where Bytes.Element == UInt8 {
        let taken = Swift.min(bytes.count, freeCapacity)
        guard taken > 0 else { return 0 }
        if readIndex > 0 {
            // Drop delivered bytes before growing, so storage stays within `capacity`.
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes.prefix(taken))
        return taken
    }

    /// The next complete frame body, or nil if more bytes are needed.
    public mutating func nextFrame() throws(NoiseError) -> [UInt8]? {
        if let failure { throw failure }
        guard bufferedByteCount >= NoiseFrame.headerLength else { return nil }
        let length = Int(buffer[readIndex]) << 8 | Int(buffer[readIndex + 1])
        guard length <= maxFrameLength else {
            let error = NoiseError.frameTooLarge(length: length, limit: maxFrameLength)
            failure = error
            throw error
        }
        let start = readIndex + NoiseFrame.headerLength
        guard buffer.count - start >= length else { return nil }
        let frame = Array(buffer[start..<start + length])
        readIndex = start + length
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        }
        return frame
    }

    /// Feeds all of `bytes` through the bounded buffer and returns every frame completed; a
    /// trailing partial frame stays buffered for the next call.
    public mutating func frames<Bytes: Collection>(from bytes: Bytes) throws(NoiseError) -> [[UInt8]] where Bytes.Element == UInt8 {
        var frames: [[UInt8]] = []
        var input = bytes[...]
        repeat {
            input = input.dropFirst(append(input))
            while let frame = try nextFrame() { frames.append(frame) }
        } while !input.isEmpty
        return frames
    }
}
