import Identity

/// The multiformats unsigned varint (multiformats/unsigned-varint): 7 bits per byte, least
/// significant group first, the high bit of each byte set when another byte follows.
///
/// The spec caps varints at 63 bits, which is 9 bytes (9 × 7 = 63); go-varint calls this
/// `MaxLenUvarint63`. Decoding also rejects non-minimal encodings (`0x80 0x00` for 0), so each
/// value has exactly one encoding — codes and lengths are compared and hashed as bytes upstream.
public enum UVarint {
    /// The largest encodable value, 2^63 − 1.
    public static let maxValue: UInt64 = (1 << 63) - 1
    /// The longest valid encoding, in bytes.
    public static let maxLength = 9

    /// The encoding of `value`. `value` must be at most `maxValue`: anything larger cannot be
    /// decoded by any conforming peer, so producing it is a programming error.
    public static func encode(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedLength(value))
        append(value, to: &out)
        return out
    }

    /// Appends the encoding of `value` (at most `maxValue`) to `out`.
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        precondition(value <= maxValue, "uvarint: \(value) exceeds the 63-bit multiformats limit")
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// The number of bytes `encode(value)` produces.
    public static func encodedLength(_ value: UInt64) -> Int {
        var length = 1
        var v = value >> 7
        while v != 0 {
            length += 1
            v >>= 7
        }
        return length
    }

    /// Decodes a varint from the start of `bytes`.
    ///
    /// - Returns: the value and the number of bytes it occupied, or `nil` when `bytes` ends
    ///   before the varint does (feed more bytes and call again).
    /// - Throws: `UVarintError.overflow` when the varint runs past 9 bytes, and
    ///   `UVarintError.nonMinimal` when it ends in a redundant zero byte.
    public static func decode<Bytes: Collection>(
        _ bytes: Bytes
    ) throws(UVarintError) -> (value: UInt64, length: Int)? where Bytes.Element == UInt8 {
        var value: UInt64 = 0
        var length = 0
        for byte in bytes {
            value |= UInt64(byte & 0x7f) << (7 * UInt64(length))
            length += 1
            if byte & 0x80 == 0 {
                // A final zero byte after at least one other byte adds nothing: not minimal.
                if byte == 0 && length > 1 {
                    throw UVarintError(.nonMinimal, "uvarint: non-minimal encoding (\(length) bytes ending in 0x00) for \(value)")
                }
                return (value, length)
            }
            if length == maxLength {
                throw UVarintError(.overflow, "uvarint: longer than \(maxLength) bytes (values are limited to 63 bits)")
            }
        }
        return nil
    }
}

/// A malformed unsigned varint.
public typealias UVarintError = CodedError<UVarintErrorDomain>

public enum UVarintErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// The varint continues past 9 bytes (more than 63 bits).
        case overflow
        /// The varint ends in a redundant zero byte.
        case nonMinimal
        public var description: String { rawValue }
    }
}
