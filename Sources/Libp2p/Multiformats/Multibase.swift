import Identity

/// The few multibase encodings (multiformats/multibase) that `/certhash` values use in practice.
/// Text is written as base64url (`u`), which go- and js-multiaddr also emit.
enum Multibase {
    /// Decodes `u` (base64url, no padding), `z` (base58btc), `f` (lower-case hex) and `b`
    /// (lower-case RFC 4648 base32, no padding). Returns nil for anything else or bad digits.
    static func decode(_ text: String) -> [UInt8]? {
        var chars = Array(text.utf8)
        guard !chars.isEmpty else { return nil }
        let prefix = chars.removeFirst()
        switch prefix {
        case UInt8(ascii: "u"): return base64URLDecode(chars)
        case UInt8(ascii: "z"):
            guard !chars.isEmpty else { return nil }
            return Base58.decode(String(decoding: chars, as: UTF8.self))
        case UInt8(ascii: "f"):
            guard chars.allSatisfy({ !(UInt8(ascii: "A")...UInt8(ascii: "F")).contains($0) }) else { return nil }
            return Hex.decode(String(decoding: chars, as: UTF8.self))
        case UInt8(ascii: "b"): return base32Decode(chars)
        default: return nil
        }
    }

    /// `u` + base64url without padding.
    static func encodeBase64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = [UInt8(ascii: "u")]
        var i = 0
        while i < bytes.count {
            let chunk = bytes[i..<min(i + 3, bytes.count)]
            var word: UInt32 = 0
            for (k, b) in chunk.enumerated() { word |= UInt32(b) << (16 - 8 * UInt32(k)) }
            for k in 0...chunk.count {
                out.append(alphabet[Int((word >> (18 - 6 * UInt32(k))) & 0x3f)])
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func base64URLDecode(_ chars: [UInt8]) -> [UInt8]? {
        // Unpadded length mod 4 == 1 cannot come from whole bytes.
        guard chars.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var accumulator: UInt32 = 0
        var bits = 0
        for c in chars {
            let v: UInt8
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): v = 62
            case UInt8(ascii: "_"): v = 63
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        // Leftover bits must be zero, or two texts would name one byte string.
        return accumulator == 0 ? out : nil
    }

    private static func base32Decode(_ chars: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var accumulator: UInt32 = 0
        var bits = 0
        for c in chars {
            let v: UInt8
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = c - UInt8(ascii: "a")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): v = c - UInt8(ascii: "2") + 26
            default: return nil
            }
            accumulator = accumulator << 5 | UInt32(v)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        return accumulator == 0 && bits < 5 ? out : nil
    }
}
