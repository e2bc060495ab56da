/// An IPv4 or IPv6 address as plain bytes: no sockets involved, `Hashable` so it can key tables.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// Four bytes, network order packed big-endian into a `UInt32`.
    case v4(UInt32)
    /// Sixteen bytes, network order packed big-endian into two `UInt64`s.
    case v6(high: UInt64, low: UInt64)

    /// From 4 or 16 network-order bytes; `nil` for any other count.
    public init?<C: Collection>(bytes: C) where C.Element == UInt8 {
        let b = Array(bytes)
        switch b.count {
        case 4:
            self = .v4(b[...].readUInt32(at: 0))
        case 16:
            let s = b[...]
            self = .v6(high: UInt64(s.readUInt32(at: 0)) << 32 | UInt64(s.readUInt32(at: 4)),
                       low: UInt64(s.readUInt32(at: 8)) << 32 | UInt64(s.readUInt32(at: 12)))
        default:
            return nil
        }
    }

    /// Parses dotted-quad IPv4 (`192.0.2.1`) or RFC 4291 §2.2 IPv6 text (`2001:db8::1`,
    /// `::ffff:192.0.2.1`). `nil` if the text is not an address.
    public init?(_ text: String) {
        if let v4 = IPAddress.parseV4(Substring(text)) {
            self = .v4(v4)
            return
        }
        guard let bytes = IPAddress.parseV6(text) else { return nil }
        self.init(bytes: bytes)
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .v4(let a):
            out.appendUInt32(a)
        case .v6(let high, let low):
            out.appendUInt64(high)
            out.appendUInt64(low)
        }
        return out
    }

    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// Dotted quad, or RFC 5952 text (lowercase, longest zero run compressed).
    public var description: String {
        switch self {
        case .v4(let a):
            return "\(a >> 24).\((a >> 16) & 0xFF).\((a >> 8) & 0xFF).\(a & 0xFF)"
        case .v6(let high, let low):
            let groups: [UInt16] = (0..<8).map { i in
                let word = i < 4 ? high : low
                return UInt16(truncatingIfNeeded: word >> (UInt64(3 - i % 4) * 16))
            }
            // RFC 5952 §4.2: compress the longest run of two or more zero groups (first wins).
            var bestStart = -1, bestLength = 0, runStart = -1
            for i in 0...8 {
                if i < 8, groups[i] == 0 {
                    if runStart < 0 { runStart = i }
                } else if runStart >= 0 {
                    if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                    runStart = -1
                }
            }
            if bestLength < 2 { return groups.map { String($0, radix: 16) }.joined(separator: ":") }
            let head = groups[..<bestStart].map { String($0, radix: 16) }.joined(separator: ":")
            let tail = groups[(bestStart + bestLength)...].map { String($0, radix: 16) }.joined(separator: ":")
            return head + "::" + tail
        }
    }

    private static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        return value
    }

    private static func parseV6(_ text: String) -> [UInt8]? {
        guard text.contains(":"), text.count <= 45 else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String, allowV4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, piece) in pieces.enumerated() {
                if allowV4Tail, i == pieces.count - 1, piece.contains(".") {
                    guard let v4 = parseV4(piece) else { return nil }
                    out.append(UInt16(truncatingIfNeeded: v4 >> 16))
                    out.append(UInt16(truncatingIfNeeded: v4))
                } else {
                    guard (1...4).contains(piece.count), let g = UInt16(piece, radix: 16) else { return nil }
                    out.append(g)
                }
            }
            return out
        }
        if halves.count == 2 {
            guard let h = groups(halves[0], allowV4Tail: false), let t = groups(halves[1], allowV4Tail: true),
                  h.count + t.count <= 7 else { return nil }
            head = h
            tail = t
        } else {
            guard let all = groups(text, allowV4Tail: true), all.count == 8 else { return nil }
            head = all
        }
        let all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        var out: [UInt8] = []
        for g in all { out.appendUInt16(g) }
        return out
    }
}

/// A transport address: IP plus UDP port. The media I/O adapter converts to and from its
/// socket type; the cores only compare and hash these.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// `nil` when `ip` is not an IPv4 or IPv6 literal.
    public init?(_ ip: String, port: UInt16) {
        guard let address = IPAddress(ip) else { return nil }
        self.init(ip: address, port: port)
    }

    /// `192.0.2.1:3478` or `[2001:db8::1]:3478`.
    public var description: String {
        ip.isIPv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)"
    }
}
