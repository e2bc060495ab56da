import Identity

/// Incremental decoder for uvarint-length-prefixed messages (`uvarint(n) ‖ n bytes`), the
/// framing of multistream-select lines, Identify and most libp2p protobuf streams.
///
/// Feed bytes as they arrive with `append(_:)`, then call `next()` until it returns `nil`.
/// A length above `maxMessageSize` is rejected as soon as the prefix is read, before any of the
/// body is buffered, so a peer cannot make us hold more than one bounded message at a time.
/// After an error the stream is unusable and every later `next()` rethrows it.
public struct LengthPrefixedDecoder: Sendable {
    /// The largest accepted message body, in bytes (the prefix is not counted).
    public let maxMessageSize: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failure: LengthPrefixError?

    public init(maxMessageSize: Int) {
        precondition(maxMessageSize >= 0, "maxMessageSize must not be negative")
        self.maxMessageSize = maxMessageSize
    }

    /// Frames `message` as `uvarint(count) ‖ message`.
    public static func frame<Bytes: Collection>(_ message: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + UVarint.encodedLength(UInt64(message.count)))
        UVarint.append(UInt64(message.count), to: &out)
        out.append(contentsOf: message)
        return out
    }

    /// Buffers received bytes.
    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    /// Bytes received but not yet returned as a message.
    public var bufferedBytes: ArraySlice<UInt8> { buffer[readIndex...] }

    /// Removes and returns the bytes not yet returned as a message — after a protocol switch
    /// they belong to whatever reads the stream next.
    public mutating func takeBufferedBytes() -> [UInt8] {
        let rest = Array(buffer[readIndex...])
        buffer.removeAll()
        readIndex = 0
        return rest
    }

    /// The next complete message body, or `nil` when more bytes are needed.
    public mutating func next() throws(LengthPrefixError) -> [UInt8]? {
        if let failure { throw failure }
        let available = buffer[readIndex...]
        let prefix: (value: UInt64, length: Int)?
        do {
            prefix = try UVarint.decode(available)
        } catch {
            return try fail(LengthPrefixError(.malformedLength, "length prefix: \(error.message)"))
        }
        guard let (length, prefixLength) = prefix else { return nil }
        guard length <= UInt64(maxMessageSize) else {
            return try fail(LengthPrefixError(
                .messageTooLarge,
                "length-prefixed message of \(length) bytes exceeds the \(maxMessageSize)-byte limit"))
        }
        let bodyStart = readIndex + prefixLength
        // Compared as a difference so a huge `maxMessageSize` cannot overflow the index.
        guard Int(length) <= buffer.count - bodyStart else { return nil }
        let bodyEnd = bodyStart + Int(length)
        let message = Array(buffer[bodyStart..<bodyEnd])
        readIndex = bodyEnd
        compactIfWorthwhile()
        return message
    }

    private mutating func fail(_ error: LengthPrefixError) throws(LengthPrefixError) -> [UInt8]? {
        failure = error
        throw error
    }

    /// Drops consumed bytes once they dominate the buffer, keeping appends amortised O(1).
    private mutating func compactIfWorthwhile() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex >= 4096 && readIndex * 2 >= buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
    }
}

/// A broken length-prefixed stream.
public typealias LengthPrefixError = CodedError<LengthPrefixErrorDomain>

public enum LengthPrefixErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// The length prefix is not a valid uvarint (too long or non-minimal).
        case malformedLength
        /// The announced length is above the decoder's `maxMessageSize`.
        case messageTooLarge
        public var description: String { rawValue }
    }
}
