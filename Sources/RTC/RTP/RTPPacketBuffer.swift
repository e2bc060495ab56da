// In-place header rewriting for forwarding (what an SFU does to every packet: LiveKit's
// Forwarder, mediasoup's RtpPacket setters). Validates once, then edits bytes where they are.

/// Maps RFC 8285 extension IDs from one `a=extmap` numbering to another; IDs not mapped are
/// removed. A table of 256 bytes, so lookups never allocate.
public struct RTPExtensionIDMap: Hashable, Sendable {
    private var table: [UInt8]

    /// `pairs[old] = new`; every other ID is dropped.
    public init(_ pairs: [UInt8: UInt8]) {
        table = [UInt8](repeating: 0, count: 256)
        for (old, new) in pairs { table[Int(old)] = new }
    }

    /// The new ID for `id`, or `nil` to drop the element.
    public subscript(id: UInt8) -> UInt8? {
        let new = table[Int(id)]
        return new == 0 ? nil : new
    }
}

/// A validated RTP packet whose header fields can be read and rewritten in place. The setters
/// write into `bytes` directly; the array is only copied if the caller still shares it.
public struct RTPPacketBuffer: Sendable {
    public private(set) var bytes: [UInt8]
    private let layout: RTPLayout

    /// Validates the packet's structure (header, CSRCs, extension block bounds, padding).
    public init(_ bytes: [UInt8]) throws(RTPError) {
        self.layout = try RTPLayout(bytes[...])
        self.bytes = bytes
    }

    public var marker: Bool {
        get { bytes[1] & 0x80 != 0 }
        set { bytes[1] = (bytes[1] & 0x7F) | (newValue ? 0x80 : 0) }
    }

    /// 7 bits; higher bits of a new value are ignored.
    public var payloadType: UInt8 {
        get { bytes[1] & 0x7F }
        set { bytes[1] = (bytes[1] & 0x80) | (newValue & 0x7F) }
    }

    public var sequenceNumber: UInt16 {
        get { bytes[...].readUInt16(at: 2) }
        set { bytes.writeUInt16(newValue, at: 2) }
    }

    public var timestamp: UInt32 {
        get { bytes[...].readUInt32(at: 4) }
        set { bytes.writeUInt32(newValue, at: 4) }
    }

    public var ssrc: UInt32 {
        get { bytes[...].readUInt32(at: 8) }
        set { bytes.writeUInt32(newValue, at: 8) }
    }

    /// The payload, without padding.
    public var payload: ArraySlice<UInt8> { bytes[layout.payload] }

    /// The fully decoded packet.
    public func decoded() throws(RTPError) -> RTPPacket {
        try RTPPacket(decoding: bytes)
    }

    /// Visits each RFC 8285 element: (id, index of its first header byte, header size, value range).
    private func forEachElement(_ body: (UInt8, Int, Int, Range<Int>) -> Void) {
        guard let data = layout.extensionData else { return }
        let profile = layout.extensionProfile
        var i = data.lowerBound
        if profile == RTPHeaderExtension.oneByteProfile {
            while i < data.upperBound {
                let b = bytes[i]
                if b == 0 { i += 1; continue }
                let id = b >> 4
                if id == 15 { return }
                let length = Int(b & 0x0F) + 1
                guard id != 0, i + 1 + length <= data.upperBound else { return }
                body(id, i, 1, (i + 1)..<(i + 1 + length))
                i += 1 + length
            }
        } else if profile & 0xFFF0 == 0x1000 {
            while i < data.upperBound {
                let id = bytes[i]
                if id == 0 { i += 1; continue }
                guard i + 2 <= data.upperBound else { return }
                let length = Int(bytes[i + 1])
                guard i + 2 + length <= data.upperBound else { return }
                body(id, i, 2, (i + 2)..<(i + 2 + length))
                i += 2 + length
            }
        }
    }

    /// The value of the first extension element with `id`.
    public func extensionValue(id: UInt8) -> ArraySlice<UInt8>? {
        var found: Range<Int>?
        forEachElement { elementID, _, _, range in
            if found == nil, elementID == id { found = range }
        }
        return found.map { bytes[$0] }
    }

    /// Overwrites the value of the first element with `id` when `value` has the same length
    /// (e.g. a rewritten transport-wide sequence number or abs-send-time). False otherwise.
    @discardableResult
    public mutating func setExtensionValue<C: Collection>(id: UInt8, to value: C) -> Bool where C.Element == UInt8 {
        var found: Range<Int>?
        forEachElement { elementID, _, _, range in
            if found == nil, elementID == id { found = range }
        }
        guard let range = found, range.count == value.count else { return false }
        bytes.replaceSubrange(range, with: value)
        return true
    }

    /// Renumbers extension elements through `map`, in place. Elements whose ID is unmapped (or
    /// maps to an ID the block's form cannot carry: above 14 in the one-byte form) become padding
    /// bytes (RFC 8285 §4.2/§4.3: a zero byte is padding), so the packet length never changes.
    public mutating func remapExtensionIDs(_ map: RTPExtensionIDMap) {
        let oneByte = layout.extensionProfile == RTPHeaderExtension.oneByteProfile
        var edits: [(Int, Int, UInt8?)] = []  // header index, header size, new id or nil
        forEachElement { id, headerIndex, headerSize, _ in
            var new = map[id]
            if oneByte, let n = new, n > 14 { new = nil }
            edits.append((headerIndex, headerSize, new))
        }
        for (headerIndex, headerSize, new) in edits {
            if let new {
                bytes[headerIndex] = oneByte ? (new << 4 | (bytes[headerIndex] & 0x0F)) : new
            } else {
                let length = oneByte ? Int(bytes[headerIndex] & 0x0F) + 1 : Int(bytes[headerIndex + 1])
                for j in headerIndex..<(headerIndex + headerSize + length) { bytes[j] = 0 }
            }
        }
    }
}
