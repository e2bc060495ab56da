// Big-endian readers and writers shared by the binary codecs (STUN, RTP, RTCP). Readers never
// trap: every access is bounds-checked and a short buffer yields `nil`, which each codec turns
// into its own typed error naming what was truncated.

/// A cursor over untrusted bytes. All reads are bounds-checked.
struct ByteReader {
    let bytes: ArraySlice<UInt8>
    private(set) var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    /// Bytes left to read.
    var remaining: Int { bytes.endIndex - index }
    /// Bytes read so far.
    var offset: Int { index - bytes.startIndex }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { index += 2 }
        return bytes.readUInt16(at: index)
    }

    mutating func u24() -> UInt32? {
        guard remaining >= 3 else { return nil }
        defer { index += 3 }
        return UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
    }

    mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { index += 4 }
        return bytes.readUInt32(at: index)
    }

    mutating func u64() -> UInt64? {
        guard let high = u32(), let low = u32() else { return nil }
        return UInt64(high) << 32 | UInt64(low)
    }

    /// The next `count` bytes, or `nil` (nothing consumed) when fewer remain.
    mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, remaining >= count else { return nil }
        defer { index += count }
        return bytes[index..<index + count]
    }

    /// Skips `count` bytes; false (nothing consumed) when fewer remain.
    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        index += count
        return true
    }

    /// Everything not yet read.
    mutating func rest() -> ArraySlice<UInt8> {
        defer { index = bytes.endIndex }
        return bytes[index...]
    }
}

extension ArraySlice<UInt8> {
    /// Big-endian UInt16 at absolute index `i`; the caller has checked `i + 2 <= endIndex`.
    func readUInt16(at i: Int) -> UInt16 {
        UInt16(self[i]) << 8 | UInt16(self[i + 1])
    }

    /// Big-endian UInt32 at absolute index `i`; the caller has checked `i + 4 <= endIndex`.
    func readUInt32(at i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }
}

extension Array<UInt8> {
    mutating func appendUInt16(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    mutating func appendUInt24(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    mutating func appendUInt32(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    mutating func appendUInt64(_ value: UInt64) {
        appendUInt32(UInt32(truncatingIfNeeded: value >> 32))
        appendUInt32(UInt32(truncatingIfNeeded: value))
    }

    /// Overwrites two bytes at `i` (caller guarantees the range exists).
    mutating func writeUInt16(_ value: UInt16, at i: Int) {
        self[i] = UInt8(truncatingIfNeeded: value >> 8)
        self[i + 1] = UInt8(truncatingIfNeeded: value)
    }

    /// Overwrites four bytes at `i` (caller guarantees the range exists).
    mutating func writeUInt32(_ value: UInt32, at i: Int) {
        self[i] = UInt8(truncatingIfNeeded: value >> 24)
        self[i + 1] = UInt8(truncatingIfNeeded: value >> 16)
        self[i + 2] = UInt8(truncatingIfNeeded: value >> 8)
        self[i + 3] = UInt8(truncatingIfNeeded: value)
    }

    /// Appends `byte` until the count is a multiple of 4 (STUN, RTP extensions and RTCP all pad
    /// to 32-bit words).
    mutating func padToWord(with byte: UInt8 = 0) {
        while count % 4 != 0 { append(byte) }
    }
}

/// Lowercase hex, for error messages.
func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let digits: [Character] = Array("0123456789abcdef")
    var out = ""
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xF)])
    }
    return out
}
