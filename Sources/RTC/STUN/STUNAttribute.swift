// STUN attributes, RFC 8489 §14 (registry §18.3) and the ICE ones of RFC 8445 §16.1.

/// Attribute type numbers.
public enum STUNAttributeType {
    public static let mappedAddress: UInt16 = 0x0001
    public static let username: UInt16 = 0x0006
    public static let messageIntegrity: UInt16 = 0x0008
    public static let errorCode: UInt16 = 0x0009
    public static let unknownAttributes: UInt16 = 0x000A
    public static let realm: UInt16 = 0x0014
    public static let nonce: UInt16 = 0x0015
    public static let messageIntegritySHA256: UInt16 = 0x001C
    public static let passwordAlgorithm: UInt16 = 0x001D
    public static let userhash: UInt16 = 0x001E
    public static let xorMappedAddress: UInt16 = 0x0020
    public static let priority: UInt16 = 0x0024
    public static let useCandidate: UInt16 = 0x0025
    public static let software: UInt16 = 0x8022
    public static let alternateServer: UInt16 = 0x8023
    public static let fingerprint: UInt16 = 0x8028
    public static let iceControlled: UInt16 = 0x8029
    public static let iceControlling: UInt16 = 0x802A

    /// Comprehension-required types that STUN defines but this codec keeps as `.other`; they
    /// are understood (so never trigger a 420) but not used by ICE-lite.
    static let knownUntyped: Set<UInt16> = [realm, nonce, messageIntegritySHA256, passwordAlgorithm, userhash]
}

/// ERROR-CODE value (RFC 8489 §14.8): a code 300–699 and a reason phrase.
public struct STUNErrorCode: Hashable, Sendable, CustomStringConvertible {
    public var code: UInt16
    public var reason: String

    public init(code: UInt16, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// 400: the request was malformed, e.g. missing USERNAME or MESSAGE-INTEGRITY (§9.1.3).
    public static let badRequest = STUNErrorCode(code: 400, reason: "Bad Request")
    /// 401: credentials missing or wrong (§9.1.3).
    public static let unauthorized = STUNErrorCode(code: 401, reason: "Unauthorized")
    /// 420: a comprehension-required attribute was not understood (§6.3.1).
    public static let unknownAttribute = STUNErrorCode(code: 420, reason: "Unknown Attribute")
    /// 487: both agents claim the same ICE role (RFC 8445 §7.3.1.1).
    public static let roleConflict = STUNErrorCode(code: 487, reason: "Role Conflict")

    public var description: String { "\(code) \(reason)" }
}

/// One attribute. Types this codec does not model are kept as `.other` so they round-trip.
public enum STUNAttribute: Hashable, Sendable {
    /// MAPPED-ADDRESS (§14.1), plain (not XOR-ed); only for RFC 3489 compatibility.
    case mappedAddress(SocketAddress)
    /// USERNAME (§14.3), UTF-8; for ICE it is "receiverUfrag:senderUfrag" (RFC 8445 §7.2.2).
    case username(String)
    /// MESSAGE-INTEGRITY (§14.5), the 20-byte HMAC-SHA1 as received.
    case messageIntegrity([UInt8])
    /// ERROR-CODE (§14.8).
    case errorCode(STUNErrorCode)
    /// UNKNOWN-ATTRIBUTES (§14.9): the types a 420 response rejects.
    case unknownAttributes([UInt16])
    /// XOR-MAPPED-ADDRESS (§14.2): the reflexive address, XOR-ed with the cookie (and ID) on the wire.
    case xorMappedAddress(SocketAddress)
    /// PRIORITY (RFC 8445 §7.1.1).
    case priority(UInt32)
    /// USE-CANDIDATE (RFC 8445 §7.1.2): the controlling agent nominates this pair.
    case useCandidate
    /// SOFTWARE (§14.14).
    case software(String)
    /// FINGERPRINT (§14.7), the value as received.
    case fingerprint(UInt32)
    /// ICE-CONTROLLED with the sender's tie-breaker (RFC 8445 §7.1.3).
    case iceControlled(UInt64)
    /// ICE-CONTROLLING with the sender's tie-breaker (RFC 8445 §7.1.3).
    case iceControlling(UInt64)
    /// Any other attribute, value without padding.
    case other(type: UInt16, value: [UInt8])

    /// The attribute's type number.
    public var type: UInt16 {
        switch self {
        case .mappedAddress: STUNAttributeType.mappedAddress
        case .username: STUNAttributeType.username
        case .messageIntegrity: STUNAttributeType.messageIntegrity
        case .errorCode: STUNAttributeType.errorCode
        case .unknownAttributes: STUNAttributeType.unknownAttributes
        case .xorMappedAddress: STUNAttributeType.xorMappedAddress
        case .priority: STUNAttributeType.priority
        case .useCandidate: STUNAttributeType.useCandidate
        case .software: STUNAttributeType.software
        case .fingerprint: STUNAttributeType.fingerprint
        case .iceControlled: STUNAttributeType.iceControlled
        case .iceControlling: STUNAttributeType.iceControlling
        case .other(let type, _): type
        }
    }

    // MARK: decoding

    init(type: UInt16, value: ArraySlice<UInt8>, transactionID: STUNTransactionID) throws(STUNError) {
        func malformed(_ why: String) -> STUNError {
            STUNError(.malformedAttribute, "attribute 0x\(String(type, radix: 16)): \(why)")
        }
        func exactly(_ n: Int, _ name: String) throws(STUNError) {
            guard value.count == n else { throw malformed("\(name) must be \(n) bytes, got \(value.count)") }
        }
        func utf8(_ name: String) throws(STUNError) -> String {
            guard let text = String(validating: value, as: UTF8.self) else {
                throw malformed("\(name) is not valid UTF-8")
            }
            return text
        }
        var r = ByteReader(value)
        switch type {
        case STUNAttributeType.mappedAddress:
            self = .mappedAddress(try STUNAttribute.decodeAddress(value, xor: nil, name: "MAPPED-ADDRESS"))
        case STUNAttributeType.xorMappedAddress:
            self = .xorMappedAddress(try STUNAttribute.decodeAddress(value, xor: transactionID, name: "XOR-MAPPED-ADDRESS"))
        case STUNAttributeType.username:
            // §14.3: at most 763 bytes (the 513-byte OpaqueString limit in UTF-8).
            guard value.count <= 763 else { throw malformed("USERNAME is \(value.count) bytes, at most 763 allowed") }
            self = .username(try utf8("USERNAME"))
        case STUNAttributeType.software:
            self = .software(try utf8("SOFTWARE"))
        case STUNAttributeType.messageIntegrity:
            try exactly(HMACSHA1.size, "MESSAGE-INTEGRITY")
            self = .messageIntegrity(Array(value))
        case STUNAttributeType.fingerprint:
            try exactly(4, "FINGERPRINT")
            self = .fingerprint(r.u32() ?? 0)
        case STUNAttributeType.priority:
            try exactly(4, "PRIORITY")
            self = .priority(r.u32() ?? 0)
        case STUNAttributeType.useCandidate:
            try exactly(0, "USE-CANDIDATE")
            self = .useCandidate
        case STUNAttributeType.iceControlled:
            try exactly(8, "ICE-CONTROLLED")
            self = .iceControlled(r.u64() ?? 0)
        case STUNAttributeType.iceControlling:
            try exactly(8, "ICE-CONTROLLING")
            self = .iceControlling(r.u64() ?? 0)
        case STUNAttributeType.errorCode:
            // §14.8: 21 reserved bits, class (3 bits, 3–6), number (8 bits, 0–99), reason.
            guard let head = r.u32() else { throw malformed("ERROR-CODE needs at least 4 bytes, got \(value.count)") }
            let errorClass = (head >> 8) & 0x7
            let number = head & 0xFF
            guard (3...6).contains(errorClass), number < 100 else {
                throw malformed("ERROR-CODE class \(errorClass) number \(number); class must be 3–6 and number 0–99")
            }
            guard let reason = String(validating: r.rest(), as: UTF8.self) else {
                throw malformed("ERROR-CODE reason phrase is not valid UTF-8")
            }
            self = .errorCode(STUNErrorCode(code: UInt16(errorClass * 100 + number), reason: reason))
        case STUNAttributeType.unknownAttributes:
            guard value.count % 2 == 0 else { throw malformed("UNKNOWN-ATTRIBUTES length \(value.count) is odd") }
            var types: [UInt16] = []
            while let t = r.u16() { types.append(t) }
            self = .unknownAttributes(types)
        default:
            self = .other(type: type, value: Array(value))
        }
    }

    /// §14.1/§14.2: 0x00, family (0x01 IPv4, 0x02 IPv6), port, address; XOR-ed with the cookie
    /// (port: its top 16 bits; IPv6 address: cookie ‖ transaction ID) when `xor` is given.
    private static func decodeAddress(_ value: ArraySlice<UInt8>, xor: STUNTransactionID?,
                                      name: String) throws(STUNError) -> SocketAddress {
        var r = ByteReader(value)
        guard let _ = r.u8(), let family = r.u8(), let rawPort = r.u16() else {
            throw STUNError(.malformedAttribute, "\(name) needs at least 4 bytes, got \(value.count)")
        }
        let addressLength: Int
        switch family {
        case 0x01: addressLength = 4
        case 0x02: addressLength = 16
        default: throw STUNError(.malformedAttribute, "\(name) has address family 0x\(String(family, radix: 16)); expected 0x01 (IPv4) or 0x02 (IPv6)")
        }
        guard r.remaining == addressLength, var address = r.take(addressLength).map(Array.init) else {
            throw STUNError(.malformedAttribute, "\(name) family 0x0\(family) needs \(addressLength) address bytes, got \(value.count - 4)")
        }
        var port = rawPort
        if let xor {
            port ^= UInt16(truncatingIfNeeded: STUNMessage.magicCookie >> 16)
            let key = xorKey(xor)
            for i in address.indices { address[i] ^= key[i] }
        }
        guard let ip = IPAddress(bytes: address) else {
            throw STUNError(.malformedAttribute, "\(name) address has \(address.count) bytes")
        }
        return SocketAddress(ip: ip, port: port)
    }

    /// Magic cookie followed by the transaction ID (RFC 8489 §14.2).
    private static func xorKey(_ id: STUNTransactionID) -> [UInt8] {
        var key: [UInt8] = []
        key.appendUInt32(STUNMessage.magicCookie)
        key.append(contentsOf: id.bytes)
        return key
    }

    // MARK: encoding

    func encode(into out: inout [UInt8], transactionID: STUNTransactionID, padding: UInt8) {
        var value: [UInt8] = []
        switch self {
        case .mappedAddress(let address):
            value = STUNAttribute.encodeAddress(address, xor: nil)
        case .xorMappedAddress(let address):
            value = STUNAttribute.encodeAddress(address, xor: transactionID)
        case .username(let text), .software(let text):
            value = Array(text.utf8)
        case .messageIntegrity(let mac):
            value = mac
        case .errorCode(let error):
            value.appendUInt16(0)
            value.append(UInt8(truncatingIfNeeded: (error.code / 100) & 0x7))
            value.append(UInt8(truncatingIfNeeded: error.code % 100))
            value.append(contentsOf: Array(error.reason.utf8))
        case .unknownAttributes(let types):
            for t in types { value.appendUInt16(t) }
        case .priority(let p), .fingerprint(let p):
            value.appendUInt32(p)
        case .useCandidate:
            break
        case .iceControlled(let t), .iceControlling(let t):
            value.appendUInt64(t)
        case .other(_, let raw):
            value = raw
        }
        out.appendUInt16(type)
        out.appendUInt16(UInt16(truncatingIfNeeded: value.count))
        out.append(contentsOf: value)
        out.padToWord(with: padding)
    }

    private static func encodeAddress(_ address: SocketAddress, xor: STUNTransactionID?) -> [UInt8] {
        var ip = address.ip.bytes
        var port = address.port
        if let xor {
            port ^= UInt16(truncatingIfNeeded: STUNMessage.magicCookie >> 16)
            let key = xorKey(xor)
            for i in ip.indices { ip[i] ^= key[i] }
        }
        var out: [UInt8] = [0, address.ip.isIPv4 ? 0x01 : 0x02]
        out.appendUInt16(port)
        out.append(contentsOf: ip)
        return out
    }
}
