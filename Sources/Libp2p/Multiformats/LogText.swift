/// Renders untrusted bytes for an error message or a log line: printable text stays as it is,
/// everything else is escaped, and the result is cut at `limit` characters so a hostile peer
/// can neither forge log lines (no raw newlines) nor flood them.
enum LogText {
    static func escape<Bytes: Sequence>(_ bytes: Bytes, limit: Int = 64) -> String where Bytes.Element == UInt8 {
        // A scalar is at most 4 bytes: this many bytes always covers `limit` shown characters
        // plus one more (to know whether to add "…"), without copying a huge input whole.
        let all = Array(bytes.prefix(limit * 4 + 4))
        var out = ""
        var shown = 0
        // Decode as UTF-8 where possible so non-ASCII names stay readable; any byte that is
        // not part of a valid scalar is shown as \xNN.
        var index = 0
        while index < all.count {
            if shown >= limit {
                out += "…"
                break
            }
            let (scalar, width) = decodeScalar(all, at: index)
            if let scalar {
                switch scalar {
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case "\\": out += "\\\\"
                case "'": out += "\\'"
                default:
                    if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) {
                        out += "\\u{\(String(scalar.value, radix: 16))}"
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            } else {
                let hex = String(all[index], radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
            index += width
            shown += 1
        }
        return out
    }

    static func escape(_ text: String, limit: Int = 64) -> String {
        escape(text.utf8, limit: limit)
    }

    /// One UTF-8 scalar at `index`, or nil (width 1) for an invalid byte.
    private static func decodeScalar(_ bytes: [UInt8], at index: Int) -> (Unicode.Scalar?, Int) {
        let lead = bytes[index]
        let width: Int
        switch lead {
        case 0x00...0x7f: return (Unicode.Scalar(lead), 1)
        case 0xc2...0xdf: width = 2
        case 0xe0...0xef: width = 3
        case 0xf0...0xf4: width = 4
        default: return (nil, 1)
        }
        guard index + width <= bytes.count,
              let string = String(validating: bytes[index..<index + width], as: UTF8.self),
              string.unicodeScalars.count == 1 else { return (nil, 1) }
        return (string.unicodeScalars.first, width)
    }
}
