import Identity

/// The multiaddr protocols drtc understands, with their codes from multiformats/multiaddr
/// `protocols.csv` (the multicodec table). Anything else is rejected as unknown: a component
/// we cannot size cannot be skipped, so the rest of the address would be unreadable anyway.
public enum MultiaddrProtocol: CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case ip4, ip6, tcp, udp
    case dns, dns4, dns6, dnsaddr
    case p2p
    case quic, quicV1, webtransport, certhash
    case tls, sni, noise
    case http, ws, wss
    case p2pCircuit
    case webrtcDirect, webrtc

    /// How a protocol's value is laid out in the binary form.
    enum ValueLayout {
        /// No value (`/ws`).
        case none
        /// Exactly this many bytes (`/ip4`: 4).
        case fixed(Int)
        /// `uvarint(length) ‖ bytes` (`/dns4`, `/p2p`).
        case lengthPrefixed
    }

    /// The multicodec code.
    public var code: UInt64 {
        switch self {
        case .ip4: 0x04
        case .tcp: 0x06
        case .dns: 0x35
        case .dns4: 0x36
        case .dns6: 0x37
        case .dnsaddr: 0x38
        case .ip6: 0x29
        case .udp: 0x0111
        case .webrtcDirect: 0x0118
        case .webrtc: 0x0119
        case .p2pCircuit: 0x0122
        case .p2p: 0x01a5
        case .http: 0x01e0
        case .tls: 0x01c0
        case .sni: 0x01c1
        case .noise: 0x01c6
        // 0x01cc is the legacy draft-29 `/quic`; RFC 9000 QUIC is `/quic-v1`, 0x01cd.
        case .quic: 0x01cc
        case .quicV1: 0x01cd
        case .webtransport: 0x01d1
        case .certhash: 0x01d2
        case .ws: 0x01dd
        case .wss: 0x01de
        }
    }

    /// The text-form name.
    public var name: String {
        switch self {
        case .ip4: "ip4"
        case .ip6: "ip6"
        case .tcp: "tcp"
        case .udp: "udp"
        case .dns: "dns"
        case .dns4: "dns4"
        case .dns6: "dns6"
        case .dnsaddr: "dnsaddr"
        case .p2p: "p2p"
        case .quic: "quic"
        case .quicV1: "quic-v1"
        case .webtransport: "webtransport"
        case .certhash: "certhash"
        case .tls: "tls"
        case .sni: "sni"
        case .noise: "noise"
        case .http: "http"
        case .ws: "ws"
        case .wss: "wss"
        case .p2pCircuit: "p2p-circuit"
        case .webrtcDirect: "webrtc-direct"
        case .webrtc: "webrtc"
        }
    }

    public var description: String { name }

    var valueLayout: ValueLayout {
        switch self {
        case .ip4: .fixed(4)
        case .ip6: .fixed(16)
        case .tcp, .udp: .fixed(2)
        case .dns, .dns4, .dns6, .dnsaddr, .sni, .p2p, .certhash: .lengthPrefixed
        case .quic, .quicV1, .webtransport, .tls, .noise, .http, .ws, .wss, .p2pCircuit,
             .webrtcDirect, .webrtc: .none
        }
    }

    /// Looks a protocol up by its text name; `ipfs` is the historical alias of `p2p`.
    public init?(name: String) {
        guard let found = MultiaddrProtocol.byName[name] else { return nil }
        self = found
    }

    /// Looks a protocol up by its multicodec code.
    public init?(code: UInt64) {
        guard let found = MultiaddrProtocol.byCode[code] else { return nil }
        self = found
    }

    private static let byName: [String: MultiaddrProtocol] = {
        var table = Dictionary(uniqueKeysWithValues: allCases.map { ($0.name, $0) })
        table["ipfs"] = .p2p
        return table
    }()

    private static let byCode: [UInt64: MultiaddrProtocol] =
        Dictionary(uniqueKeysWithValues: allCases.map { ($0.code, $0) })
}

/// One `/protocol/value` step of a multiaddr.
///
/// Host names (`dns*`, `sni`) must be non-empty, at most 255 bytes, and free of `/` and control
/// characters; the parsers enforce this, and a component built in code that breaks it serialises
/// but will not parse back.
public enum MultiaddrComponent: Hashable, Sendable, CustomStringConvertible {
    case ip4(IPv4Address)
    case ip6(IPv6Address)
    case tcp(UInt16)
    case udp(UInt16)
    /// A name to resolve to IPv4 and/or IPv6 addresses.
    case dns(String)
    case dns4(String)
    case dns6(String)
    /// A name whose `_dnsaddr.` TXT records hold further multiaddrs.
    case dnsaddr(String)
    case p2p(PeerID)
    /// Legacy draft-29 QUIC; parsed so old peers' addresses can be read, never dialled.
    case quic
    case quicV1
    case webtransport
    /// A certificate hash as a multihash (`/webtransport` and `/webrtc-direct` addresses).
    case certhash([UInt8])
    case tls
    /// TLS Server Name Indication.
    case sni(String)
    case noise
    case http
    case ws
    case wss
    case p2pCircuit
    case webrtcDirect
    case webrtc

    public var `protocol`: MultiaddrProtocol {
        switch self {
        case .ip4: .ip4
        case .ip6: .ip6
        case .tcp: .tcp
        case .udp: .udp
        case .dns: .dns
        case .dns4: .dns4
        case .dns6: .dns6
        case .dnsaddr: .dnsaddr
        case .p2p: .p2p
        case .quic: .quic
        case .quicV1: .quicV1
        case .webtransport: .webtransport
        case .certhash: .certhash
        case .tls: .tls
        case .sni: .sni
        case .noise: .noise
        case .http: .http
        case .ws: .ws
        case .wss: .wss
        case .p2pCircuit: .p2pCircuit
        case .webrtcDirect: .webrtcDirect
        case .webrtc: .webrtc
        }
    }

    /// The value's text form, or nil for protocols without a value.
    public var valueText: String? {
        switch self {
        case .ip4(let address): address.description
        case .ip6(let address): address.description
        case .tcp(let port), .udp(let port): String(port)
        case .dns(let name), .dns4(let name), .dns6(let name), .dnsaddr(let name), .sni(let name): name
        case .p2p(let id): id.description
        case .certhash(let multihash): Multibase.encodeBase64URL(multihash)
        case .quic, .quicV1, .webtransport, .tls, .noise, .http, .ws, .wss, .p2pCircuit,
             .webrtcDirect, .webrtc: nil
        }
    }

    /// Components are equal when their binary forms are: host names compare byte for byte,
    /// not by Swift's Unicode canonical equivalence (under which "\u{212A}" equals "K").
    public static func == (lhs: MultiaddrComponent, rhs: MultiaddrComponent) -> Bool {
        lhs.protocol == rhs.protocol && lhs.valueBytes == rhs.valueBytes
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.protocol.code)
        hasher.combine(valueBytes)
    }

    /// `/name` or `/name/value`.
    public var description: String {
        if let value = valueText { return "/\(self.protocol.name)/\(value)" }
        return "/\(self.protocol.name)"
    }

    /// The value's binary form, without the length prefix of length-prefixed protocols.
    var valueBytes: [UInt8] {
        switch self {
        case .ip4(let address): address.bytes
        case .ip6(let address): address.bytes
        case .tcp(let port), .udp(let port): [UInt8(port >> 8), UInt8(truncatingIfNeeded: port)]
        case .dns(let name), .dns4(let name), .dns6(let name), .dnsaddr(let name), .sni(let name): Array(name.utf8)
        case .p2p(let id): id.bytes
        case .certhash(let multihash): multihash
        case .quic, .quicV1, .webtransport, .tls, .noise, .http, .ws, .wss, .p2pCircuit,
             .webrtcDirect, .webrtc: []
        }
    }

    /// Appends `code ‖ value` (with the length prefix where the protocol has one).
    func appendBinary(to out: inout [UInt8]) {
        UVarint.append(self.protocol.code, to: &out)
        let value = valueBytes
        if case .lengthPrefixed = self.protocol.valueLayout {
            UVarint.append(UInt64(value.count), to: &out)
        }
        out.append(contentsOf: value)
    }

    /// Builds a component from its protocol and value text. Throws a reason (without the
    /// component prefix, which the caller adds).
    static func parse(_ proto: MultiaddrProtocol, text: String?) throws(ComponentReason) -> MultiaddrComponent {
        func require() throws(ComponentReason) -> String {
            guard let text else { throw ComponentReason(.missingValue, "missing value") }
            return text
        }
        switch proto {
        case .ip4:
            guard let address = IPv4Address(try require()) else { throw ComponentReason(.invalidValue, "not an IPv4 address") }
            return .ip4(address)
        case .ip6:
            guard let address = IPv6Address(try require()) else { throw ComponentReason(.invalidValue, "not an IPv6 address") }
            return .ip6(address)
        case .tcp:
            return .tcp(try parsePort(try require()))
        case .udp:
            return .udp(try parsePort(try require()))
        case .dns: return .dns(try validHostName(try require()))
        case .dns4: return .dns4(try validHostName(try require()))
        case .dns6: return .dns6(try validHostName(try require()))
        case .dnsaddr: return .dnsaddr(try validHostName(try require()))
        case .sni: return .sni(try validHostName(try require()))
        case .p2p:
            let value = try require()
            do {
                return .p2p(try PeerID(value))
            } catch {
                throw ComponentReason(.invalidValue, "not a PeerID (\(error))")
            }
        case .certhash:
            guard let multihash = Multibase.decode(try require()) else {
                throw ComponentReason(.invalidValue, "not a multibase string (u, z, f or b prefix)")
            }
            return .certhash(try validMultihash(multihash))
        case .quic: return .quic
        case .quicV1: return .quicV1
        case .webtransport: return .webtransport
        case .tls: return .tls
        case .noise: return .noise
        case .http: return .http
        case .ws: return .ws
        case .wss: return .wss
        case .p2pCircuit: return .p2pCircuit
        case .webrtcDirect: return .webrtcDirect
        case .webrtc: return .webrtc
        }
    }

    /// Builds a component from its protocol and binary value (length prefix already removed).
    static func decode(_ proto: MultiaddrProtocol, value: ArraySlice<UInt8>) throws(ComponentReason) -> MultiaddrComponent {
        switch proto {
        case .ip4: return .ip4(IPv4Address(bytes: value)!)
        case .ip6: return .ip6(IPv6Address(bytes: value)!)
        case .tcp: return .tcp(UInt16(value[value.startIndex]) << 8 | UInt16(value[value.startIndex + 1]))
        case .udp: return .udp(UInt16(value[value.startIndex]) << 8 | UInt16(value[value.startIndex + 1]))
        case .dns, .dns4, .dns6, .dnsaddr, .sni:
            guard let name = String(validating: value, as: UTF8.self) else {
                throw ComponentReason(.invalidValue, "host name is not UTF-8")
            }
            let valid = try validHostName(name)
            switch proto {
            case .dns: return .dns(valid)
            case .dns4: return .dns4(valid)
            case .dns6: return .dns6(valid)
            case .dnsaddr: return .dnsaddr(valid)
            default: return .sni(valid)
            }
        case .p2p:
            do {
                return .p2p(try PeerID(multihash: Array(value)))
            } catch {
                throw ComponentReason(.invalidValue, "not a PeerID multihash (\(error))")
            }
        case .certhash:
            return .certhash(try validMultihash(Array(value)))
        case .quic, .quicV1, .webtransport, .tls, .noise, .http, .ws, .wss, .p2pCircuit,
             .webrtcDirect, .webrtc:
            return try parse(proto, text: nil)
        }
    }

    private static func parsePort(_ text: String) throws(ComponentReason) -> UInt16 {
        let digits = Array(text.utf8)
        guard (1...5).contains(digits.count),
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let port = UInt16(text) else {
            throw ComponentReason(.invalidValue, "not a port number (0-65535)")
        }
        return port
    }

    static let maxHostNameLength = 255

    private static func validHostName(_ name: String) throws(ComponentReason) -> String {
        let bytes = name.utf8
        guard !bytes.isEmpty else { throw ComponentReason(.invalidValue, "empty host name") }
        guard bytes.count <= maxHostNameLength else {
            throw ComponentReason(.invalidValue, "host name longer than \(maxHostNameLength) bytes")
        }
        guard !bytes.contains(UInt8(ascii: "/")) else { throw ComponentReason(.invalidValue, "host name contains '/'") }
        guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw ComponentReason(.invalidValue, "host name contains a control character")
        }
        return name
    }

    /// `uvarint(hash code) ‖ uvarint(digest length) ‖ digest`, with the length matching.
    private static func validMultihash(_ bytes: [UInt8]) throws(ComponentReason) -> [UInt8] {
        let header: (codeLength: Int, digestLength: UInt64, lengthLength: Int)?
        do {
            if let (_, codeLength) = try UVarint.decode(bytes),
               let (digestLength, lengthLength) = try UVarint.decode(bytes[codeLength...]) {
                header = (codeLength, digestLength, lengthLength)
            } else {
                header = nil
            }
        } catch {
            throw ComponentReason(.invalidValue, "not a multihash (\(error))")
        }
        guard let header, header.digestLength == UInt64(bytes.count - header.codeLength - header.lengthLength) else {
            throw ComponentReason(.invalidValue, "not a multihash (length does not match digest)")
        }
        return bytes
    }
}

/// Why one component failed, before the caller names the component.
struct ComponentReason: Error {
    var code: MultiaddrError.Code
    var message: String
    init(_ code: MultiaddrError.Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
