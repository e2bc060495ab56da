import Identity
// RTP fixed header, CSRCs, header extension and padding: RFC 3550 §5.1 and §5.3.1, with the
// RFC 8285 one-byte (0xBEDE) and two-byte (0x100X) extension element formats.

/// Codes for `RTPError`.
public enum RTPErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// Shorter than the fixed header, CSRC list, extension or padding says.
        case truncated
        /// Version field is not 2 (RFC 3550 §5.1).
        case badVersion
        /// P is set but the padding count is 0 or larger than what follows the header (§5.1).
        case badPadding
        /// An RFC 8285 extension element overruns the extension block or uses a reserved ID.
        case malformedExtension

        public var description: String { rawValue }
    }
}

/// An RTP packet that could not be decoded, and why.
public typealias RTPError = CodedError<RTPErrorDomain>

/// One RFC 8285 extension element: a local ID (negotiated by `a=extmap`) and its value.
public struct RTPExtensionElement: Hashable, Sendable {
    /// 1–14 in the one-byte form, 1–255 in the two-byte form (0 is padding, 15 is reserved in one-byte).
    public var id: UInt8
    public var value: [UInt8]

    public init(id: UInt8, value: [UInt8]) {
        self.id = id
        self.value = value
    }

    /// Whether this element can use the one-byte header (RFC 8285 §4.2: ID 1–14, 1–16 bytes).
    public var fitsOneByteForm: Bool { (1...14).contains(id) && (1...16).contains(value.count) }
}

/// The header extension block (RFC 3550 §5.3.1), decoded per RFC 8285 when its profile says so.
public enum RTPHeaderExtension: Hashable, Sendable {
    /// Profile 0xBEDE (RFC 8285 §4.2).
    case oneByte([RTPExtensionElement])
    /// Profile 0x1000–0x100F (RFC 8285 §4.3); `appBits` is the low 4 bits of the profile.
    case twoByte(appBits: UInt8, [RTPExtensionElement])
    /// Any other profile: opaque data, a whole number of 32-bit words.
    case raw(profile: UInt16, data: [UInt8])

    /// The one-byte profile value.
    public static let oneByteProfile: UInt16 = 0xBEDE

    /// The elements of an RFC 8285 block, empty for `.raw`.
    public var elements: [RTPExtensionElement] {
        switch self {
        case .oneByte(let e), .twoByte(_, let e): e
        case .raw: []
        }
    }

    /// The one-byte form when every element fits it, else the two-byte form (RFC 8285 §4.1.2).
    public static func make(_ elements: [RTPExtensionElement]) -> RTPHeaderExtension {
        elements.allSatisfy(\.fitsOneByteForm) ? .oneByte(elements) : .twoByte(appBits: 0, elements)
    }

    /// The first element with `id`.
    public func value(id: UInt8) -> [UInt8]? {
        elements.first { $0.id == id }?.value
    }

    static func decode(profile: UInt16, data: ArraySlice<UInt8>) throws(RTPError) -> RTPHeaderExtension {
        if profile == oneByteProfile {
            var elements: [RTPExtensionElement] = []
            var i = data.startIndex
            while i < data.endIndex {
                let b = data[i]
                if b == 0 { i += 1; continue }  // §4.2: padding byte
                let id = b >> 4
                if id == 15 { break }  // §4.2: reserved; stop processing the block
                let length = Int(b & 0x0F) + 1
                guard id != 0 else {
                    throw RTPError(.malformedExtension, "one-byte extension element with ID 0 and length \(length) at offset \(i - data.startIndex); ID 0 is padding only (RFC 8285 §4.2)")
                }
                guard i + 1 + length <= data.endIndex else {
                    throw RTPError(.malformedExtension, "one-byte extension element ID \(id) needs \(length) bytes, \(data.endIndex - i - 1) left in the block")
                }
                elements.append(RTPExtensionElement(id: id, value: Array(data[(i + 1)..<(i + 1 + length)])))
                i += 1 + length
            }
            return .oneByte(elements)
        }
        if profile & 0xFFF0 == 0x1000 {
            var elements: [RTPExtensionElement] = []
            var i = data.startIndex
            while i < data.endIndex {
                let id = data[i]
                if id == 0 { i += 1; continue }  // §4.3: padding byte
                guard i + 2 <= data.endIndex else {
                    throw RTPError(.malformedExtension, "two-byte extension element ID \(id) has no length byte")
                }
                let length = Int(data[i + 1])
                guard i + 2 + length <= data.endIndex else {
                    throw RTPError(.malformedExtension, "two-byte extension element ID \(id) needs \(length) bytes, \(data.endIndex - i - 2) left in the block")
                }
                elements.append(RTPExtensionElement(id: id, value: Array(data[(i + 2)..<(i + 2 + length)])))
                i += 2 + length
            }
            return .twoByte(appBits: UInt8(truncatingIfNeeded: profile & 0x0F), elements)
        }
        return .raw(profile: profile, data: Array(data))
    }

    /// Appends profile, length and the padded data. A `.oneByte` block holding an element that
    /// does not fit the one-byte form is written in the two-byte form instead; two-byte values
    /// longer than 255 bytes are cut to 255.
    func encode(into out: inout [UInt8]) {
        var data: [UInt8] = []
        let profile: UInt16
        switch self {
        case .oneByte(let elements) where elements.allSatisfy(\.fitsOneByteForm):
            profile = RTPHeaderExtension.oneByteProfile
            for e in elements {
                data.append(e.id << 4 | UInt8(truncatingIfNeeded: e.value.count - 1))
                data.append(contentsOf: e.value)
            }
        case .oneByte(let elements), .twoByte(_, let elements):
            var appBits: UInt8 = 0
            if case .twoByte(let bits, _) = self { appBits = bits & 0x0F }
            profile = 0x1000 | UInt16(appBits)
            for e in elements {
                let value = e.value.prefix(255)
                data.append(e.id)
                data.append(UInt8(truncatingIfNeeded: value.count))
                data.append(contentsOf: value)
            }
        case .raw(let p, let raw):
            profile = p
            data = raw
        }
        data.padToWord()
        out.appendUInt16(profile)
        out.appendUInt16(UInt16(truncatingIfNeeded: data.count / 4))
        out.append(contentsOf: data)
    }
}

/// A decoded RTP packet (RFC 3550 §5.1).
public struct RTPPacket: Hashable, Sendable {
    public var marker: Bool
    /// 7 bits.
    public var payloadType: UInt8
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    /// Up to 15 contributing sources.
    public var csrcs: [UInt32]
    public var headerExtension: RTPHeaderExtension?
    public var payload: [UInt8]
    /// Number of padding bytes after the payload, including the count byte; 0 means P is clear.
    public var paddingLength: UInt8

    public init(marker: Bool = false, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32,
                ssrc: UInt32, csrcs: [UInt32] = [], headerExtension: RTPHeaderExtension? = nil,
                payload: [UInt8], paddingLength: UInt8 = 0) {
        self.marker = marker
        self.payloadType = payloadType
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.csrcs = csrcs
        self.headerExtension = headerExtension
        self.payload = payload
        self.paddingLength = paddingLength
    }

    public init(decoding bytes: ArraySlice<UInt8>) throws(RTPError) {
        let layout = try RTPLayout(bytes)
        let s = bytes.startIndex
        marker = bytes[s + 1] & 0x80 != 0
        payloadType = bytes[s + 1] & 0x7F
        sequenceNumber = bytes.readUInt16(at: s + 2)
        timestamp = bytes.readUInt32(at: s + 4)
        ssrc = bytes.readUInt32(at: s + 8)
        let csrcCount = Int(bytes[s] & 0x0F)
        csrcs = (0..<csrcCount).map { bytes.readUInt32(at: s + 12 + 4 * $0) }
        if let ext = layout.extensionData {
            headerExtension = try RTPHeaderExtension.decode(profile: layout.extensionProfile, data: bytes[ext])
        } else {
            headerExtension = nil
        }
        payload = Array(bytes[layout.payload])
        paddingLength = UInt8(truncatingIfNeeded: bytes.endIndex - layout.payload.upperBound)
    }

    public init(decoding bytes: [UInt8]) throws(RTPError) {
        try self.init(decoding: bytes[...])
    }

    /// The packet on the wire. At most 15 CSRCs are written; padding bytes are zero but the last.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12 + 4 * csrcs.count + payload.count + Int(paddingLength) + 32)
        let csrcs = self.csrcs.prefix(15)
        var first: UInt8 = 2 << 6 | UInt8(csrcs.count)
        if paddingLength > 0 { first |= 0x20 }
        if headerExtension != nil { first |= 0x10 }
        out.append(first)
        out.append((marker ? 0x80 : 0) | (payloadType & 0x7F))
        out.appendUInt16(sequenceNumber)
        out.appendUInt32(timestamp)
        out.appendUInt32(ssrc)
        for c in csrcs { out.appendUInt32(c) }
        headerExtension?.encode(into: &out)
        out.append(contentsOf: payload)
        if paddingLength > 0 {
            out.append(contentsOf: repeatElement(0, count: Int(paddingLength) - 1))
            out.append(paddingLength)
        }
        return out
    }
}

/// Where the parts of a validated RTP packet sit, as absolute indices into the buffer.
struct RTPLayout: Hashable, Sendable {
    var extensionProfile: UInt16 = 0
    /// The extension data (after the 4-byte extension header), when X is set.
    var extensionData: Range<Int>?
    var payload: Range<Int>

    init(_ bytes: ArraySlice<UInt8>) throws(RTPError) {
        let s = bytes.startIndex
        guard bytes.count >= 12 else {
            throw RTPError(.truncated, "RTP fixed header needs 12 bytes, got \(bytes.count)")
        }
        let first = bytes[s]
        guard first >> 6 == 2 else {
            throw RTPError(.badVersion, "RTP version is \(first >> 6), expected 2 (RFC 3550 §5.1)")
        }
        var offset = 12 + 4 * Int(first & 0x0F)
        guard bytes.count >= offset else {
            throw RTPError(.truncated, "\(first & 0x0F) CSRCs need \(offset) header bytes, got \(bytes.count)")
        }
        if first & 0x10 != 0 {
            guard bytes.count >= offset + 4 else {
                throw RTPError(.truncated, "X is set but the extension header needs 4 bytes at offset \(offset), \(bytes.count - offset) left")
            }
            extensionProfile = bytes.readUInt16(at: s + offset)
            let length = 4 * Int(bytes.readUInt16(at: s + offset + 2))
            offset += 4
            guard bytes.count >= offset + length else {
                throw RTPError(.truncated, "header extension declares \(length) bytes, \(bytes.count - offset) left")
            }
            extensionData = (s + offset)..<(s + offset + length)
            offset += length
        }
        var end = bytes.endIndex
        if first & 0x20 != 0 {
            let count = Int(bytes[bytes.endIndex - 1])
            guard count > 0, count <= bytes.count - offset else {
                throw RTPError(.badPadding, "padding count \(count) with \(bytes.count - offset) bytes after the header (must be 1…that)")
            }
            end -= count
        }
        payload = (s + offset)..<end
    }
}
