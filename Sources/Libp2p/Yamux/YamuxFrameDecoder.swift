/// Incremental Yamux frame decoder: bytes go in as they arrive from the transport, whole frames
/// come out. Pure value type, no I/O.
///
/// Rejects, as soon as the 12 header bytes are in (before any payload is buffered):
/// a version other than 0, an unknown frame type, and a Data frame longer than
/// `maxPayloadLength`. The owner can inspect the header with `peekHeader()` and apply its own
/// per-stream limit (the session checks the stream's current receive window there) before the
/// payload is waited for.
///
/// Buffer bound: after the owner drains every complete frame, at most
/// `YamuxHeader.size + maxPayloadLength - 1` bytes stay buffered.
public struct YamuxFrameDecoder: Sendable {
    /// Largest Data payload accepted. A peer may never send more than the receive window we
    /// grant, so the session sets this to its configured receive window.
    public let maxPayloadLength: Int

    private enum State: Sendable {
        case awaitingHeader
        case awaitingPayload(YamuxHeader)
        case failed(YamuxError)
    }

    private var state: State = .awaitingHeader
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(maxPayloadLength: Int = YamuxConfiguration.defaultWindow) {
        precondition(maxPayloadLength >= 0 && maxPayloadLength <= Int(UInt32.max))
        self.maxPayloadLength = maxPayloadLength
    }

    /// Bytes received but not yet returned as part of a frame.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Feeds transport bytes.
    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        } else if readIndex >= 4096 && readIndex * 2 >= buffer.count {
            // Amortised compaction: only when the consumed prefix dominates the buffer.
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The header of the next frame once its 12 bytes are buffered (its payload may still be
    /// incomplete), or nil if fewer than 12 bytes are in. Throws if the header is invalid; the
    /// decoder then stays failed and rethrows the same error.
    public mutating func peekHeader() throws(YamuxError) -> YamuxHeader? {
        switch state {
        case .failed(let error):
            throw error
        case .awaitingPayload(let header):
            return header
        case .awaitingHeader:
            guard bufferedByteCount >= YamuxHeader.size else { return nil }
            let header: YamuxHeader
            do {
                header = try YamuxHeader(decoding: buffer[readIndex..<readIndex + YamuxHeader.size])
            } catch {
                state = .failed(error)
                throw error
            }
            if header.payloadLength > maxPayloadLength {
                let error = YamuxError(.frameTooLarge,
                                       "data frame on stream \(header.streamID) announces \(header.length) payload bytes; this endpoint never grants more than \(maxPayloadLength)")
                state = .failed(error)
                throw error
            }
            readIndex += YamuxHeader.size
            state = .awaitingPayload(header)
            return header
        }
    }

    /// The next complete frame, or nil if more bytes are needed.
    public mutating func nextFrame() throws(YamuxError) -> YamuxFrame? {
        guard let header = try peekHeader() else { return nil }
        let length = header.payloadLength
        guard bufferedByteCount >= length else { return nil }
        let payload = length == 0 ? [] : Array(buffer[readIndex..<readIndex + length])
        readIndex += length
        state = .awaitingHeader
        return YamuxFrame(header: header, payload: payload)
    }
}
