// Yamux framing, per hashicorp/yamux spec.md "Framing" (mirrored verbatim in libp2p/specs
// yamux/README.md). Every frame is a 12-byte big-endian header, followed by `length` payload
// bytes for Data frames only.

/// Frame type (spec "Type Field").
public enum YamuxFrameType: UInt8, Hashable, Sendable, CaseIterable {
    /// Carries `length` payload bytes for a stream.
    case data = 0x0
    /// `length` is a delta added to the peer's send window for a stream.
    case windowUpdate = 0x1
    /// `length` is an opaque value echoed back; stream id 0.
    case ping = 0x2
    /// `length` is a `YamuxGoAwayCode`; stream id 0.
    case goAway = 0x3
}

/// Frame flags (spec "Flag Field"). Unknown bits are preserved but ignored.
public struct YamuxFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Opens a stream (Data/WindowUpdate) or marks an outbound ping.
    public static let syn = YamuxFlags(rawValue: 0x1)
    /// Accepts a stream (Data/WindowUpdate) or marks a ping response.
    public static let ack = YamuxFlags(rawValue: 0x2)
    /// Half-closes the sender's side of a stream.
    public static let fin = YamuxFlags(rawValue: 0x4)
    /// Resets a stream immediately.
    public static let rst = YamuxFlags(rawValue: 0x8)
}

/// GoAway error code (spec "Session termination"). Other values are carried through as-is.
public struct YamuxGoAwayCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let normal = YamuxGoAwayCode(rawValue: 0)
    public static let protocolError = YamuxGoAwayCode(rawValue: 1)
    public static let internalError = YamuxGoAwayCode(rawValue: 2)

    public var description: String {
        switch self {
        case .normal: "normal"
        case .protocolError: "protocol error"
        case .internalError: "internal error"
        default: "unknown (\(rawValue))"
        }
    }
}

/// The 12-byte frame header: version (8) | type (8) | flags (16) | stream id (32) | length (32).
public struct YamuxHeader: Hashable, Sendable {
    /// Size of every header on the wire.
    public static let size = 12
    /// The only protocol version defined (spec "Version Field").
    public static let version: UInt8 = 0

    public var type: YamuxFrameType
    public var flags: YamuxFlags
    public var streamID: UInt32
    /// Payload length for Data, window delta for WindowUpdate, opaque for Ping, code for GoAway.
    public var length: UInt32

    public init(type: YamuxFrameType, flags: YamuxFlags = [], streamID: UInt32, length: UInt32) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.length = length
    }

    /// How many payload bytes follow this header on the wire.
    public var payloadLength: Int { type == .data ? Int(length) : 0 }

    /// Appends the 12 header bytes, big-endian.
    public func encode(into out: inout [UInt8]) {
        out.append(YamuxHeader.version)
        out.append(type.rawValue)
        out.append(UInt8(truncatingIfNeeded: flags.rawValue >> 8))
        out.append(UInt8(truncatingIfNeeded: flags.rawValue))
        YamuxHeader.appendUInt32(streamID, to: &out)
        YamuxHeader.appendUInt32(length, to: &out)
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(YamuxHeader.size)
        encode(into: &out)
        return out
    }

    /// Parses exactly 12 bytes. Throws on a version other than 0 or an unknown type.
    public init<Bytes: Collection>(decoding bytes: Bytes) throws(YamuxError) where Bytes.Element == UInt8 {
        guard bytes.count == YamuxHeader.size else {
            preconditionFailure("YamuxHeader(decoding:) needs exactly 12 bytes, got \(bytes.count)")
        }
        var i = bytes.startIndex
        func next() -> UInt8 {
            defer { i = bytes.index(after: i) }
            return bytes[i]
        }
        let version = next()
        guard version == YamuxHeader.version else {
            throw YamuxError(.unsupportedVersion,
                             "frame header has version \(version); only version 0 is defined (spec 'Version Field')")
        }
        let rawType = next()
        guard let type = YamuxFrameType(rawValue: rawType) else {
            throw YamuxError(.unknownFrameType,
                             "frame header has type 0x\(String(rawType, radix: 16)); expected 0x0 Data, 0x1 Window Update, 0x2 Ping or 0x3 Go Away")
        }
        let flags = UInt16(next()) << 8 | UInt16(next())
        var streamID: UInt32 = 0
        for _ in 0..<4 { streamID = streamID << 8 | UInt32(next()) }
        var length: UInt32 = 0
        for _ in 0..<4 { length = length << 8 | UInt32(next()) }
        self.init(type: type, flags: YamuxFlags(rawValue: flags), streamID: streamID, length: length)
    }

    static func appendUInt32(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: value >> 24))
        out.append(UInt8(truncatingIfNeeded: value >> 16))
        out.append(UInt8(truncatingIfNeeded: value >> 8))
        out.append(UInt8(truncatingIfNeeded: value))
    }
}

/// A whole frame: header plus, for Data frames, the payload (`header.length == payload.count`).
public struct YamuxFrame: Hashable, Sendable {
    public private(set) var header: YamuxHeader
    public private(set) var payload: [UInt8]

    /// Builds a frame from a decoded header and its payload; the payload length must match.
    init(header: YamuxHeader, payload: [UInt8]) {
        precondition(payload.count == header.payloadLength, "payload length must match the header")
        self.header = header
        self.payload = payload
    }

    /// A Data frame; `length` is set from the payload.
    public static func data(streamID: UInt32, flags: YamuxFlags = [], payload: [UInt8]) -> YamuxFrame {
        precondition(payload.count <= UInt32.max, "yamux data payload must fit a 32-bit length")
        return YamuxFrame(header: YamuxHeader(type: .data, flags: flags, streamID: streamID, length: UInt32(payload.count)),
                          payload: payload)
    }

    /// A Window Update frame granting `delta` more bytes on `streamID`.
    public static func windowUpdate(streamID: UInt32, flags: YamuxFlags = [], delta: UInt32) -> YamuxFrame {
        YamuxFrame(header: YamuxHeader(type: .windowUpdate, flags: flags, streamID: streamID, length: delta), payload: [])
    }

    /// A Ping frame: `.syn` for a request, `.ack` for the response echoing `opaque`.
    public static func ping(flags: YamuxFlags, opaque: UInt32) -> YamuxFrame {
        YamuxFrame(header: YamuxHeader(type: .ping, flags: flags, streamID: 0, length: opaque), payload: [])
    }

    /// A Go Away frame carrying `code`.
    public static func goAway(_ code: YamuxGoAwayCode) -> YamuxFrame {
        YamuxFrame(header: YamuxHeader(type: .goAway, streamID: 0, length: code.rawValue), payload: [])
    }

    public func encode(into out: inout [UInt8]) {
        header.encode(into: &out)
        out.append(contentsOf: payload)
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(YamuxHeader.size + payload.count)
        encode(into: &out)
        return out
    }
}
