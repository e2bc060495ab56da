/// An IPv4 address, the value of a `/ip4` multiaddr component.
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    /// The address as a big-endian integer: `1.2.3.4` is `0x01020304`.
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// The four network-order bytes; nil unless `bytes` has exactly four.
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == 4 else { return nil }
        rawValue = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Parses dotted-quad text (`192.0.2.1`). Leading zeros (`01.2.3.4`) are rejected, as Go and
    /// Rust do, because some parsers read them as octal.
    public init?(_ text: String) {
        guard let value = IPv4Address.parse(Array(text.utf8)[...]) else { return nil }
        rawValue = value
    }

    /// Network-order bytes.
    public var bytes: [UInt8] {
        [UInt8(truncatingIfNeeded: rawValue >> 24), UInt8(truncatingIfNeeded: rawValue >> 16),
         UInt8(truncatingIfNeeded: rawValue >> 8), UInt8(truncatingIfNeeded: rawValue)]
    }

    public var description: String { bytes.map { String($0) }.joined(separator: ".") }

    static func parse(_ text: ArraySlice<UInt8>) -> UInt32? {
        guard text.count >= 7, text.count <= 15 else { return nil }
        var value: UInt32 = 0
        var octets = 0
        for part in text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard octets < 4, (1...3).contains(part.count),
                  part.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  part.count == 1 || part.first != UInt8(ascii: "0") else { return nil }
            let octet = part.reduce(0) { $0 * 10 + UInt32($1 - UInt8(ascii: "0")) }
            guard octet <= 255 else { return nil }
            value = value << 8 | octet
            octets += 1
        }
        return octets == 4 ? value : nil
    }
}

/// An IPv6 address, the value of a `/ip6` multiaddr component.
///
/// Parses every RFC 4291 §2.2 text form (full, `::`-compressed, trailing dotted IPv4) and
/// prints the RFC 5952 canonical form: lower-case hex without leading zeros, the longest run of
/// two or more zero groups (the first, on a tie) shortened to `::`, and IPv4-mapped addresses
/// (`::ffff:0:0/96`) in mixed notation as RFC 5952 §5 recommends (`::ffff:192.0.2.1`).
public struct IPv6Address: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    /// Bytes 0–7, big-endian.
    public var high: UInt64
    /// Bytes 8–15, big-endian.
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The sixteen network-order bytes; nil unless `bytes` has exactly sixteen.
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        let all = Array(bytes)
        high = all[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = all[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Eight 16-bit groups, most significant first.
    public init(groups: [UInt16]) {
        precondition(groups.count == 8, "an IPv6 address has 8 groups")
        high = groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    public init?(_ text: String) {
        guard let groups = IPv6Address.parse(Array(text.utf8)) else { return nil }
        self.init(groups: groups)
    }

    /// Network-order bytes.
    public var bytes: [UInt8] {
        (0..<16).map { i in
            let word = i < 8 ? high : low
            return UInt8(truncatingIfNeeded: word >> (8 * UInt64(7 - i % 8)))
        }
    }

    /// Eight 16-bit groups, most significant first.
    public var groups: [UInt16] {
        (0..<8).map { i in
            let word = i < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (16 * UInt64(3 - i % 4)))
        }
    }

    /// True for `::ffff:a.b.c.d`.
    public var isIPv4Mapped: Bool { high == 0 && low >> 32 == 0xffff }

    public var description: String {
        if isIPv4Mapped {
            return "::ffff:" + IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)).description
        }
        let groups = self.groups
        // RFC 5952 §4.2: compress the longest run of ≥ 2 zero groups, the first one on a tie.
        var bestStart = -1, bestLength = 0
        var runStart = -1
        for i in 0...8 {
            if i < 8 && groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength { (bestStart, bestLength) = (runStart, i - runStart) }
                runStart = -1
            }
        }
        func hex(_ slice: ArraySlice<UInt16>) -> String {
            slice.map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard bestLength >= 2 else { return hex(groups[...]) }
        return hex(groups[..<bestStart]) + "::" + hex(groups[(bestStart + bestLength)...])
    }

    /// RFC 4291 §2.2 text to eight groups.
    static func parse(_ text: [UInt8]) -> [UInt16]? {
        // The longest valid form is 45 characters (six full groups and a dotted quad).
        guard text.count >= 2, text.count <= 45 else { return nil }
        let colon = UInt8(ascii: ":")
        var doubleColon: Int?
        var i = 0
        while i + 1 < text.count {
            if text[i] == colon && text[i + 1] == colon {
                guard doubleColon == nil else { return nil }   // at most one "::"
                doubleColon = i
                i += 2
            } else {
                i += 1
            }
        }
        if let at = doubleColon {
            guard let head = parseGroups(text[..<at], mayEndInIPv4: false),
                  let tail = parseGroups(text[(at + 2)...], mayEndInIPv4: true),
                  head.count + tail.count <= 7 else { return nil }  // "::" stands for ≥ 1 group
            return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard let all = parseGroups(text[...], mayEndInIPv4: true), all.count == 8 else { return nil }
        return all
    }

    /// Colon-separated hex groups (no "::"); an empty slice is zero groups.
    private static func parseGroups(_ text: ArraySlice<UInt8>, mayEndInIPv4: Bool) -> [UInt16]? {
        guard !text.isEmpty else { return [] }
        let parts = text.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count <= 8 else { return nil }
        var groups: [UInt16] = []
        for (index, part) in parts.enumerated() {
            if index == parts.count - 1, mayEndInIPv4, part.contains(UInt8(ascii: ".")) {
                guard let v4 = IPv4Address.parse(part) else { return nil }
                groups.append(UInt16(truncatingIfNeeded: v4 >> 16))
                groups.append(UInt16(truncatingIfNeeded: v4))
                continue
            }
            guard (1...4).contains(part.count) else { return nil }
            var group: UInt16 = 0
            for c in part {
                guard let nibble = hexValue(c) else { return nil }
                group = group << 4 | UInt16(nibble)
            }
            groups.append(group)
        }
        return groups
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
