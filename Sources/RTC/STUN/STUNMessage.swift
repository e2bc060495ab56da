import Identity
// STUN message framing, RFC 8489 §5–§6 and §14. Only the parts ICE-lite needs are typed;
// every other attribute round-trips as `.other`.

/// Codes for `STUNError`.
public enum STUNErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// Fewer bytes than the header or an attribute says.
        case truncated
        /// The first two bits are not zero (RFC 8489 §5), so this is not STUN.
        case notSTUN
        /// The magic cookie is not 0x2112A442 (RFC 8489 §5); RFC 3489 STUN is not supported.
        case badMagicCookie
        /// The header's length is not a multiple of 4 or disagrees with the datagram (§5, §6.3).
        case badLength
        /// An attribute's value does not have the shape its type requires (§14).
        case malformedAttribute
        /// An attribute follows FINGERPRINT, which must be last (§14.7).
        case attributeAfterFingerprint

        public var description: String { rawValue }
    }
}

/// A STUN message that could not be decoded, and why.
public typealias STUNError = CodedError<STUNErrorDomain>

/// The message class, the two C bits of the message type (RFC 8489 §5).
public enum STUNMessageClass: UInt8, Hashable, Sendable, CaseIterable {
    case request = 0b00
    case indication = 0b01
    case successResponse = 0b10
    case errorResponse = 0b11
}

/// The 12-bit method of the message type (RFC 8489 §5, §18.2). Only Binding is defined for ICE.
public struct STUNMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    /// Binding (0x001), the only method ICE connectivity checks use (RFC 8445 §7.1).
    public static let binding = STUNMethod(rawValue: 0x001)

    public var description: String { self == .binding ? "Binding" : "method 0x\(String(rawValue, radix: 16))" }
}

/// The 96-bit transaction ID (RFC 8489 §5), held inline so it hashes without allocating.
public struct STUNTransactionID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt32
    public var low: UInt64

    public init(high: UInt32, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From exactly 12 bytes; `nil` otherwise.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        let b = Array(bytes)
        guard b.count == 12 else { return nil }
        var r = ByteReader(b[...])
        guard let high = r.u32(), let low = r.u64() else { return nil }
        self.init(high: high, low: low)
    }

    /// A fresh ID from `generator` (RFC 8489 §6: uniformly random, so responses can be matched).
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> STUNTransactionID {
        STUNTransactionID(high: UInt32.random(in: 0...UInt32.max, using: &generator),
                          low: UInt64.random(in: 0...UInt64.max, using: &generator))
    }

    /// The 12 bytes in network order.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(12)
        out.appendUInt32(high)
        out.appendUInt64(low)
        return out
    }

    public var description: String { hexString(bytes) }
}

/// One decoded STUN message. `attributes` keeps wire order, including MESSAGE-INTEGRITY and
/// FINGERPRINT when they were present; check those against the raw bytes with
/// `STUNMessage.checkIntegrity(_:key:)` and `STUNMessage.checkFingerprint(_:)`.
public struct STUNMessage: Hashable, Sendable {
    /// The magic cookie every RFC 5389+ message carries (RFC 8489 §5).
    public static let magicCookie: UInt32 = 0x2112_A442
    /// Header size on the wire.
    public static let headerSize = 20
    /// RFC 8489 §14.7: FINGERPRINT is CRC-32 XOR 0x5354554E ("STUN").
    public static let fingerprintXOR: UInt32 = 0x5354_554E

    public var method: STUNMethod
    public var messageClass: STUNMessageClass
    public var transactionID: STUNTransactionID
    public var attributes: [STUNAttribute]

    public init(method: STUNMethod = .binding, messageClass: STUNMessageClass,
                transactionID: STUNTransactionID, attributes: [STUNAttribute] = []) {
        self.method = method
        self.messageClass = messageClass
        self.transactionID = transactionID
        self.attributes = attributes
    }

    // MARK: decoding

    /// Decodes one whole STUN datagram. Attributes after MESSAGE-INTEGRITY other than
    /// FINGERPRINT are ignored (RFC 8489 §14.5); an attribute after FINGERPRINT is an error.
    public init(decoding bytes: ArraySlice<UInt8>) throws(STUNError) {
        var r = ByteReader(bytes)
        guard let rawType = r.u16(), let length = r.u16(), let cookie = r.u32(),
              let idBytes = r.take(12), let transactionID = STUNTransactionID(bytes: idBytes) else {
            throw STUNError(.truncated, "STUN header needs 20 bytes, got \(bytes.count)")
        }
        guard rawType & 0xC000 == 0 else {
            throw STUNError(.notSTUN, "first two bits of a STUN message must be zero (RFC 8489 §5), got type 0x\(String(rawType, radix: 16))")
        }
        guard cookie == STUNMessage.magicCookie else {
            throw STUNError(.badMagicCookie, "magic cookie is 0x\(String(cookie, radix: 16)), expected 0x2112a442 (RFC 8489 §5)")
        }
        guard length % 4 == 0 else {
            throw STUNError(.badLength, "message length \(length) is not a multiple of 4 (RFC 8489 §5)")
        }
        guard Int(length) == r.remaining else {
            throw STUNError(length > r.remaining ? .truncated : .badLength,
                            "header says \(length) attribute bytes, datagram has \(r.remaining)")
        }
        self.method = STUNMethod(rawValue: (rawType & 0x000F) | ((rawType >> 1) & 0x0070) | ((rawType >> 2) & 0x0F80))
        self.messageClass = STUNMessageClass(rawValue: UInt8(truncatingIfNeeded: ((rawType >> 7) & 0x2) | ((rawType >> 4) & 0x1))) ?? .request
        self.transactionID = transactionID

        var attributes: [STUNAttribute] = []
        var sawIntegrity = false
        var sawFingerprint = false
        while r.remaining > 0 {
            guard let type = r.u16(), let valueLength = r.u16() else {
                throw STUNError(.truncated, "attribute header at offset \(r.offset) needs 4 bytes, \(r.remaining) left")
            }
            let padded = (Int(valueLength) + 3) & ~3
            guard let padded = r.take(padded) else {
                throw STUNError(.truncated, "attribute 0x\(String(type, radix: 16)) declares \(valueLength) bytes (\((Int(valueLength) + 3) & ~3) padded), \(r.remaining) left")
            }
            let value = padded.prefix(Int(valueLength))
            if sawFingerprint {
                throw STUNError(.attributeAfterFingerprint, "attribute 0x\(String(type, radix: 16)) follows FINGERPRINT, which must be last (RFC 8489 §14.7)")
            }
            if sawIntegrity, type != STUNAttributeType.fingerprint, type != STUNAttributeType.messageIntegritySHA256 {
                continue  // RFC 8489 §14.5: ignored
            }
            let attribute = try STUNAttribute(type: type, value: value, transactionID: transactionID)
            if type == STUNAttributeType.messageIntegrity { sawIntegrity = true }
            if type == STUNAttributeType.fingerprint { sawFingerprint = true }
            attributes.append(attribute)
        }
        self.attributes = attributes
    }

    public init(decoding bytes: [UInt8]) throws(STUNError) {
        try self.init(decoding: bytes[...])
    }

    // MARK: encoding

    /// Encodes the message. Attributes are written in order; `.messageIntegrity`/`.fingerprint`
    /// already in `attributes` are written verbatim. With `integrityKey` a MESSAGE-INTEGRITY is
    /// computed and appended (RFC 8489 §14.5; for short-term credentials the key is the password's
    /// UTF-8 bytes, §9.1.1), then with `fingerprint` a FINGERPRINT (§14.7). `padding` is the byte
    /// used to pad attribute values to 32 bits (any value is legal, §14; RFC 5769 uses 0x20).
    public func encoded(integrityKey: [UInt8]? = nil, fingerprint: Bool = false, padding: UInt8 = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        let m = method.rawValue
        let c = UInt16(messageClass.rawValue)
        let type = (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
        out.appendUInt16(type)
        out.appendUInt16(0)  // length, patched below
        out.appendUInt32(STUNMessage.magicCookie)
        out.appendUInt32(transactionID.high)
        out.appendUInt64(transactionID.low)
        for attribute in attributes {
            attribute.encode(into: &out, transactionID: transactionID, padding: padding)
        }
        if let integrityKey {
            // §14.5: the length used for the HMAC counts up to the end of MESSAGE-INTEGRITY.
            STUNMessage.setLength(&out, out.count - STUNMessage.headerSize + 24)
            let mac = HMACSHA1.authenticate(out[...], key: integrityKey)
            out.appendUInt16(STUNAttributeType.messageIntegrity)
            out.appendUInt16(UInt16(HMACSHA1.size))
            out.append(contentsOf: mac)
        }
        if fingerprint {
            STUNMessage.setLength(&out, out.count - STUNMessage.headerSize + 8)
            let crc = CRC32.checksum(out) ^ STUNMessage.fingerprintXOR
            out.appendUInt16(STUNAttributeType.fingerprint)
            out.appendUInt16(4)
            out.appendUInt32(crc)
        }
        STUNMessage.setLength(&out, out.count - STUNMessage.headerSize)
        return out
    }

    private static func setLength(_ out: inout [UInt8], _ length: Int) {
        out.writeUInt16(UInt16(truncatingIfNeeded: length), at: 2)
    }

    // MARK: integrity checks on raw bytes

    /// Result of checking MESSAGE-INTEGRITY or FINGERPRINT.
    public enum Check: Hashable, Sendable {
        case absent
        case valid
        case invalid
    }

    /// Byte offsets (from the start of the message) of the first MESSAGE-INTEGRITY and of
    /// FINGERPRINT, walking the attribute TLVs without decoding values.
    static func locateTrailer(_ bytes: ArraySlice<UInt8>) -> (integrity: Int?, fingerprint: Int?) {
        var integrity: Int?
        var fingerprint: Int?
        var offset = headerSize
        while offset + 4 <= bytes.count {
            let i = bytes.startIndex + offset
            let type = bytes.readUInt16(at: i)
            let length = Int(bytes.readUInt16(at: i + 2))
            if type == STUNAttributeType.messageIntegrity, integrity == nil { integrity = offset }
            if type == STUNAttributeType.fingerprint { fingerprint = offset; break }
            offset += 4 + ((length + 3) & ~3)
        }
        return (integrity, fingerprint)
    }

    /// Verifies MESSAGE-INTEGRITY of a raw message against `key` (RFC 8489 §14.5: HMAC-SHA1 over
    /// the message up to the attribute, with the header length adjusted to end just after it).
    public static func checkIntegrity(_ bytes: ArraySlice<UInt8>, key: [UInt8]) -> Check {
        guard bytes.count >= headerSize, let offset = locateTrailer(bytes).integrity else { return .absent }
        let start = bytes.startIndex
        guard offset + 4 + HMACSHA1.size <= bytes.count,
              bytes.readUInt16(at: start + offset + 2) == UInt16(HMACSHA1.size) else { return .invalid }
        var prefix = Array(bytes[start..<start + offset])
        setLength(&prefix, offset - headerSize + 4 + HMACSHA1.size)
        let mac = HMACSHA1.authenticate(prefix[...], key: key)
        let sent = bytes[(start + offset + 4)..<(start + offset + 4 + HMACSHA1.size)]
        return HMACSHA1.constantTimeEqual(sent, mac) ? .valid : .invalid
    }

    /// Verifies FINGERPRINT of a raw message (RFC 8489 §14.7: CRC-32 of the message up to the
    /// attribute, with the length covering it, XOR 0x5354554E).
    public static func checkFingerprint(_ bytes: ArraySlice<UInt8>) -> Check {
        guard bytes.count >= headerSize, let offset = locateTrailer(bytes).fingerprint else { return .absent }
        let start = bytes.startIndex
        guard offset + 8 <= bytes.count, bytes.readUInt16(at: start + offset + 2) == 4 else { return .invalid }
        var prefix = Array(bytes[start..<start + offset])
        setLength(&prefix, offset - headerSize + 8)
        let expected = CRC32.checksum(prefix) ^ fingerprintXOR
        return bytes.readUInt32(at: start + offset + 4) == expected ? .valid : .invalid
    }

    // MARK: attribute accessors

    /// The first attribute for which `extract` returns a value.
    public func first<T>(_ extract: (STUNAttribute) -> T?) -> T? {
        for attribute in attributes {
            if let value = extract(attribute) { return value }
        }
        return nil
    }

    public var username: String? { first { if case .username(let v) = $0 { v } else { nil } } }
    public var priority: UInt32? { first { if case .priority(let v) = $0 { v } else { nil } } }
    public var useCandidate: Bool { first { if case .useCandidate = $0 { true } else { nil } } ?? false }
    public var iceControlling: UInt64? { first { if case .iceControlling(let v) = $0 { v } else { nil } } }
    public var iceControlled: UInt64? { first { if case .iceControlled(let v) = $0 { v } else { nil } } }
    public var xorMappedAddress: SocketAddress? { first { if case .xorMappedAddress(let v) = $0 { v } else { nil } } }
    public var errorCode: STUNErrorCode? { first { if case .errorCode(let v) = $0 { v } else { nil } } }
    public var hasMessageIntegrity: Bool { first { if case .messageIntegrity = $0 { true } else { nil } } ?? false }
    public var hasFingerprint: Bool { first { if case .fingerprint = $0 { true } else { nil } } ?? false }

    /// Types of comprehension-required attributes (0x0000–0x7FFF) this codec does not know; a
    /// request carrying any must get a 420 listing them (RFC 8489 §6.3.1, §14.9).
    public var unknownComprehensionRequired: [UInt16] {
        attributes.compactMap { attribute in
            guard case .other(let type, _) = attribute, type < 0x8000,
                  !STUNAttributeType.knownUntyped.contains(type) else { return nil }
            return type
        }
    }

    // MARK: building responses

    /// A Binding success response to `request` carrying XOR-MAPPED-ADDRESS (RFC 8489 §7.3.1).
    public static func bindingSuccess(to request: STUNMessage, mappedAddress: SocketAddress) -> STUNMessage {
        STUNMessage(method: request.method, messageClass: .successResponse, transactionID: request.transactionID,
                    attributes: [.xorMappedAddress(mappedAddress)])
    }

    /// An error response to `request` (RFC 8489 §6.3.1.1), with UNKNOWN-ATTRIBUTES for a 420.
    public static func errorResponse(to request: STUNMessage, _ error: STUNErrorCode,
                                     unknownAttributes: [UInt16] = []) -> STUNMessage {
        var attributes: [STUNAttribute] = [.errorCode(error)]
        if !unknownAttributes.isEmpty { attributes.append(.unknownAttributes(unknownAttributes)) }
        return STUNMessage(method: request.method, messageClass: .errorResponse,
                           transactionID: request.transactionID, attributes: attributes)
    }
}
