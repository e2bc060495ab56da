/// Base58 with the Bitcoin alphabet (`base58btc`), the canonical text form of libp2p PeerIDs.
public enum Base58 {
    static let alphabet = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)
    static let reverse: [Int8] = {
        var table = [Int8](repeating: -1, count: 128)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = Int8(i) }
        return table
    }()

    public static func encode<Bytes: Collection>(_ input: Bytes) -> String where Bytes.Element == UInt8 {
        let bytes = Array(input)
        let zeros = bytes.prefix(while: { $0 == 0 }).count
        // log(256)/log(58) ≈ 1.37
        var digits = [UInt8](repeating: 0, count: bytes.count * 138 / 100 + 1)
        var length = 0
        for byte in bytes[zeros...] {
            var carry = Int(byte)
            var i = 0
            var k = digits.count - 1
            while (carry != 0 || i < length) && k >= 0 {
                carry += 256 * Int(digits[k])
                digits[k] = UInt8(carry % 58)
                carry /= 58
                i += 1
                k -= 1
            }
            length = i
        }
        let significant = digits.drop(while: { $0 == 0 })
        var out = [UInt8](repeating: alphabet[0], count: zeros)
        out.append(contentsOf: significant.map { alphabet[Int($0)] })
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ string: String) -> [UInt8]? {
        let chars = Array(string.utf8)
        let zeros = chars.prefix(while: { $0 == alphabet[0] }).count
        var bytes = [UInt8](repeating: 0, count: chars.count * 733 / 1000 + 1)
        var length = 0
        for c in chars[zeros...] {
            guard c < 128, reverse[Int(c)] >= 0 else { return nil }
            var carry = Int(reverse[Int(c)])
            var i = 0
            var k = bytes.count - 1
            while (carry != 0 || i < length) && k >= 0 {
                carry += 58 * Int(bytes[k])
                bytes[k] = UInt8(carry & 0xff)
                carry >>= 8
                i += 1
                k -= 1
            }
            guard carry == 0 else { return nil }
            length = i
        }
        var out = [UInt8](repeating: 0, count: zeros)
        out.append(contentsOf: bytes.drop(while: { $0 == 0 }))
        return out
    }
}

/// Lower-case hexadecimal helpers used by digests, fixtures and logs.
public enum Hex {
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ string: String) -> [UInt8]? {
        let chars = Array(string.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
