/// An error from the Yamux codec or session.
///
/// Two families share this type (STYLE §5):
/// - **protocol violations** (`isProtocolViolation == true`): thrown by `YamuxFrameDecoder` and
///   `YamuxSession.receive(_:)` when the *peer* broke the wire protocol. The session is then
///   failed for good; the shell should send what `takeOutbound()` holds (a GoAway with code
///   "protocol error" has been queued), close the connection and log `description`.
/// - **usage errors**: thrown by `openStream()` / `write(_:on:)` when the *local application*
///   asked for something impossible (writing on a closed stream, opening past a limit). The
///   session is unaffected.
public struct YamuxError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable, switchable identity; `message` carries the specifics.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Kind: Hashable, Sendable {
            // Protocol violations by the peer.
            case unsupportedVersion
            case unknownFrameType
            case frameTooLarge
            case invalidStreamID
            case wrongStreamIDParity
            case duplicateStream
            case streamIDReused
            case unknownStream
            case receiveWindowExceeded
            case sendWindowOverflow
            case dataAfterFIN
            case frameAfterReset
            // Local usage errors.
            case streamNotOpen
            case streamNotWritable
            case goingAway
            case tooManyStreams
            case ackBacklogFull
            case streamIDsExhausted
            case sessionFailed
        }

        let kind: Kind

        /// The frame header's version byte is not 0 (spec "Version Field").
        public static let unsupportedVersion = Code(kind: .unsupportedVersion)
        /// The frame type is not Data/WindowUpdate/Ping/GoAway (spec "Type Field").
        public static let unknownFrameType = Code(kind: .unknownFrameType)
        /// A data frame announces more payload than this endpoint ever grants.
        public static let frameTooLarge = Code(kind: .frameTooLarge)
        /// A Data/WindowUpdate frame addresses stream 0, which is reserved for the session.
        public static let invalidStreamID = Code(kind: .invalidStreamID)
        /// A SYN uses an id of the wrong parity (clients open odd ids, servers even).
        public static let wrongStreamIDParity = Code(kind: .wrongStreamIDParity)
        /// A SYN names a stream that is currently open.
        public static let duplicateStream = Code(kind: .duplicateStream)
        /// A SYN names an id whose stream already existed and ended.
        public static let streamIDReused = Code(kind: .streamIDReused)
        /// A frame without SYN addresses a stream id that was never opened.
        public static let unknownStream = Code(kind: .unknownStream)
        /// The peer sent more data than the receive window it was granted.
        public static let receiveWindowExceeded = Code(kind: .receiveWindowExceeded)
        /// Window updates pushed the send window past 2^32-1.
        public static let sendWindowOverflow = Code(kind: .sendWindowOverflow)
        /// The peer sent data on a stream after half-closing it with FIN.
        public static let dataAfterFIN = Code(kind: .dataAfterFIN)
        /// The peer sent a frame on a stream after resetting it with RST.
        public static let frameAfterReset = Code(kind: .frameAfterReset)

        /// Usage: the stream id is not open (never opened, fully closed, or reset).
        public static let streamNotOpen = Code(kind: .streamNotOpen)
        /// Usage: `write` after `close` on the stream.
        public static let streamNotWritable = Code(kind: .streamNotWritable)
        /// Usage: `openStream` after a GoAway was sent or received.
        public static let goingAway = Code(kind: .goingAway)
        /// Usage: `openStream` while `maxConcurrentStreams` streams are open.
        public static let tooManyStreams = Code(kind: .tooManyStreams)
        /// Usage: `openStream` while `maxUnacknowledgedOutboundStreams` SYNs await an ACK.
        public static let ackBacklogFull = Code(kind: .ackBacklogFull)
        /// Usage: every stream id of this role's parity has been used.
        public static let streamIDsExhausted = Code(kind: .streamIDsExhausted)
        /// Usage: the session already failed with a protocol violation.
        public static let sessionFailed = Code(kind: .sessionFailed)

        public var description: String { "\(kind)" }
    }

    public var code: Code
    /// A human explanation naming the offending values.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether the peer broke the protocol (the connection must be closed), as opposed to a
    /// local usage error.
    public var isProtocolViolation: Bool {
        switch code.kind {
        case .unsupportedVersion, .unknownFrameType, .frameTooLarge, .invalidStreamID,
             .wrongStreamIDParity, .duplicateStream, .streamIDReused, .unknownStream,
             .receiveWindowExceeded, .sendWindowOverflow, .dataAfterFIN, .frameAfterReset:
            return true
        case .streamNotOpen, .streamNotWritable, .goingAway, .tooManyStreams, .ackBacklogFull,
             .streamIDsExhausted, .sessionFailed:
            return false
        }
    }

    public var description: String {
        isProtocolViolation ? "yamux protocol violation (\(code)): \(message)" : "yamux (\(code)): \(message)"
    }
}
