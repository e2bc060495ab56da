// The per-packet hot path: header offsets of a packet RTC's `RTPPacketBuffer` already validated,
// the one-copy rewrite for each consumer (RFC 3550 §5.1 fields, RFC 8285 extension IDs), RTX
// encapsulation (RFC 4588 §4) and keyframe detection (RFC 7741 §4.2–4.3, RFC 6184 §5).
// Written against raw bytes rather than through `RTPPacketBuffer`'s setters so that one packet
// costs exactly one allocation per consumer: the extension remap there collects edits in an array.

/// Offsets into a validated RTP packet; computing them never traps on a packet that passed
/// `RTPPacketBuffer.init`.
struct RTPHeaderView: Sendable {
    var payloadType: UInt8
    var sequenceNumber: UInt16
    var timestamp: UInt32
    var ssrc: UInt32
    var extensionProfile: UInt16
    /// The extension data after its 4-byte header; empty when X is clear.
    var extensionData: Range<Int>
    var payload: Range<Int>

    init(validated b: [UInt8]) {
        payloadType = b[1] & 0x7F
        sequenceNumber = UInt16(b[2]) << 8 | UInt16(b[3])
        timestamp = UInt32(b[4]) << 24 | UInt32(b[5]) << 16 | UInt32(b[6]) << 8 | UInt32(b[7])
        ssrc = UInt32(b[8]) << 24 | UInt32(b[9]) << 16 | UInt32(b[10]) << 8 | UInt32(b[11])
        var offset = 12 + 4 * Int(b[0] & 0x0F)
        if b[0] & 0x10 != 0 {
            extensionProfile = UInt16(b[offset]) << 8 | UInt16(b[offset + 1])
            let length = 4 * (Int(b[offset + 2]) << 8 | Int(b[offset + 3]))
            extensionData = (offset + 4)..<(offset + 4 + length)
            offset += 4 + length
        } else {
            extensionProfile = 0
            extensionData = offset..<offset
        }
        let padding = b[0] & 0x20 != 0 ? Int(b[b.count - 1]) : 0
        payload = offset..<(b.count - padding)
    }

    /// The value of the first RFC 8285 element with `id` (for RID binding; rare path).
    func extensionValue(id: UInt8, in b: [UInt8]) -> ArraySlice<UInt8>? {
        var i = extensionData.lowerBound
        let end = extensionData.upperBound
        if extensionProfile == 0xBEDE {
            while i < end {
                let h = b[i]
                if h == 0 { i += 1; continue }
                let eid = h >> 4
                let length = Int(h & 0x0F) + 1
                if eid == 15 || i + 1 + length > end { return nil }
                if eid == id { return b[(i + 1)..<(i + 1 + length)] }
                i += 1 + length
            }
        } else if extensionProfile & 0xFFF0 == 0x1000 {
            while i < end {
                let eid = b[i]
                if eid == 0 { i += 1; continue }
                guard i + 2 <= end else { return nil }
                let length = Int(b[i + 1])
                if i + 2 + length > end { return nil }
                if eid == id { return b[(i + 2)..<(i + 2 + length)] }
                i += 2 + length
            }
        }
        return nil
    }
}

/// A consumer's extension ID translation as a 256-entry table (0 = drop).
struct ExtensionRemap: Sendable {
    let table: [UInt8]
    /// True when blocks are forwarded untouched.
    let isPassthrough: Bool

    init(_ pairs: [UInt8: UInt8]?) {
        guard let pairs else {
            table = []
            isPassthrough = true
            return
        }
        var t = [UInt8](repeating: 0, count: 256)
        for (old, new) in pairs where old != 0 { t[Int(old)] = new }
        table = t
        isPassthrough = false
    }

    /// Renumbers the elements of `data` in place; unmapped elements (and one-byte elements mapped
    /// above 14) become zero padding bytes (RFC 8285 §4.2/§4.3), so the length never changes.
    /// A malformed tail (an element overrunning the block, ID 0 with a length) is blanked too, so
    /// what the subscriber gets always parses.
    func apply(_ p: UnsafeMutableBufferPointer<UInt8>, profile: UInt16, data: Range<Int>) {
        var i = data.lowerBound
        let end = data.upperBound
        func blankRest() { for j in i..<end { p[j] = 0 } }
        if profile == 0xBEDE {
            while i < end {
                let h = p[i]
                if h == 0 { i += 1; continue }
                let id = h >> 4
                if id == 15 { return }
                let length = Int(h & 0x0F) + 1
                guard id != 0, i + 1 + length <= end else { return blankRest() }
                let new = table[Int(id)]
                if new == 0 || new > 14 {
                    for j in i..<(i + 1 + length) { p[j] = 0 }
                } else {
                    p[i] = new << 4 | (h & 0x0F)
                }
                i += 1 + length
            }
        } else if profile & 0xFFF0 == 0x1000 {
            while i < end {
                let id = p[i]
                if id == 0 { i += 1; continue }
                guard i + 2 <= end, i + 2 + Int(p[i + 1]) <= end else { return blankRest() }
                let length = Int(p[i + 1])
                let new = table[Int(id)]
                if new == 0 {
                    for j in i..<(i + 2 + length) { p[j] = 0 }
                } else {
                    p[i] = new
                }
                i += 2 + length
            }
        }
    }
}

@inline(__always)
private func store16(_ p: UnsafeMutableBufferPointer<UInt8>, _ v: UInt16, at i: Int) {
    p[i] = UInt8(truncatingIfNeeded: v >> 8)
    p[i + 1] = UInt8(truncatingIfNeeded: v)
}

@inline(__always)
private func store32(_ p: UnsafeMutableBufferPointer<UInt8>, _ v: UInt32, at i: Int) {
    p[i] = UInt8(truncatingIfNeeded: v >> 24)
    p[i + 1] = UInt8(truncatingIfNeeded: v >> 16)
    p[i + 2] = UInt8(truncatingIfNeeded: v >> 8)
    p[i + 3] = UInt8(truncatingIfNeeded: v)
}

enum PacketRewriter {
    /// Largest SRTP/SRTCP trailer of the profiles in use (AEAD_AES_128_GCM's 16-byte tag).
    static let srtpTrailerRoom = 16

    /// A verbatim copy with room for the SRTP trailer (pipe relays).
    static func copy(_ source: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: source.count + srtpTrailerRoom) { p, count in
            source.withUnsafeBufferPointer { s in _ = p.initialize(fromContentsOf: s) }
            count = source.count
        }
    }

    /// One copy of `source` with the consumer's PT, sequence number, timestamp and SSRC, and its
    /// extension IDs. Marker, CSRCs, payload and padding are unchanged.
    ///
    /// The copy is written into a buffer from `spare` when there is one (a previous copy's,
    /// given back by the shell once sent: `MediaServer.recycle`), so that forwarding does not
    /// allocate per consumer: a 1,216-byte block is above glibc's per-thread cache (1,032 bytes)
    /// and costs a trip through malloc's bins each time. A buffer still shared elsewhere is
    /// copied on write, as any array.
    static func rewrite(_ source: [UInt8], view: RTPHeaderView, payloadType: UInt8, sequenceNumber: UInt16,
                        timestamp: UInt32, ssrc: UInt32, remap: ExtensionRemap, reusing spare: inout [[UInt8]]) -> [UInt8] {
        var out = spare.popLast() ?? []
        out.removeAll(keepingCapacity: true)
        // Spare capacity for the SRTP trailer (≤ 16 bytes: GCM's tag), so the shell protects
        // in place instead of reallocating every forwarded copy.
        out.reserveCapacity(source.count + srtpTrailerRoom)
        out.append(contentsOf: source)
        out.withUnsafeMutableBufferPointer { p in
            p[1] = (p[1] & 0x80) | (payloadType & 0x7F)
            store16(p, sequenceNumber, at: 2)
            store32(p, timestamp, at: 4)
            store32(p, ssrc, at: 8)
            if !remap.isPassthrough, !view.extensionData.isEmpty {
                remap.apply(p, profile: view.extensionProfile, data: view.extensionData)
            }
        }
        return out
    }

    static func rewrite(_ source: [UInt8], view: RTPHeaderView, payloadType: UInt8, sequenceNumber: UInt16,
                        timestamp: UInt32, ssrc: UInt32, remap: ExtensionRemap) -> [UInt8] {
        var none: [[UInt8]] = []
        return rewrite(source, view: view, payloadType: payloadType, sequenceNumber: sequenceNumber, timestamp: timestamp,
                       ssrc: ssrc, remap: remap, reusing: &none)
    }

    /// RFC 4588 §4: the RTX packet carries the original header fields except SSRC, PT and
    /// sequence number (the repair stream's own), and the payload is the original sequence number
    /// (OSN) followed by the original payload. Padding is not carried over.
    static func rtx(_ source: [UInt8], view: RTPHeaderView, payloadType: UInt8, sequenceNumber: UInt16,
                    timestamp: UInt32, ssrc: UInt32, originalSequenceNumber: UInt16, remap: ExtensionRemap) -> [UInt8] {
        let headerLength = view.payload.lowerBound
        let total = headerLength + 2 + view.payload.count
        return [UInt8](unsafeUninitializedCapacity: total + srtpTrailerRoom) { p, count in
            source.withUnsafeBufferPointer { s in
                for i in 0..<headerLength { p[i] = s[i] }
                p[headerLength] = UInt8(truncatingIfNeeded: originalSequenceNumber >> 8)
                p[headerLength + 1] = UInt8(truncatingIfNeeded: originalSequenceNumber)
                var j = headerLength + 2
                for i in view.payload { p[j] = s[i]; j += 1 }
            }
            p[0] &= ~0x20  // P cleared: the padding stayed behind
            p[1] = (p[1] & 0x80) | (payloadType & 0x7F)
            store16(p, sequenceNumber, at: 2)
            store32(p, timestamp, at: 4)
            store32(p, ssrc, at: 8)
            if !remap.isPassthrough, !view.extensionData.isEmpty {
                remap.apply(p, profile: view.extensionProfile, data: view.extensionData)
            }
            count = total
        }
    }
}

/// Whether a packet starts a frame a decoder can begin with.
public enum KeyframeDetector {
    public static func isKeyframeStart(codec: CodecFamily, payload: ArraySlice<UInt8>) -> Bool {
        switch codec {
        case .opus, .other: true
        case .vp8: isVP8KeyframeStart(payload)
        case .h264: isH264Keyframe(payload)
        }
    }

    /// RFC 7741 §4.2 payload descriptor, then §4.3 payload header: the first packet of a
    /// keyframe has S=1, PID=0, and the frame tag's inverse key frame bit P=0.
    public static func isVP8KeyframeStart(_ p: ArraySlice<UInt8>) -> Bool {
        var i = p.startIndex
        guard i < p.endIndex else { return false }
        let first = p[i]
        guard first & 0x10 != 0, first & 0x07 == 0 else { return false }  // S=1, PID=0
        i += 1
        if first & 0x80 != 0 {  // X: extension byte I L T K
            guard i < p.endIndex else { return false }
            let x = p[i]
            i += 1
            if x & 0x80 != 0 {  // I: PictureID, 7 or 15 bits (M bit)
                guard i < p.endIndex else { return false }
                i += p[i] & 0x80 != 0 ? 2 : 1
            }
            if x & 0x40 != 0 { i += 1 }  // L: TL0PICIDX
            if x & 0x30 != 0 { i += 1 }  // T or K: TID/Y/KEYIDX
        }
        guard i < p.endIndex else { return false }
        return p[i] & 0x01 == 0
    }

    /// RFC 6184 §5: a single NAL unit (type 1–23), STAP-A (24) aggregating NALs, or FU-A (28)
    /// whose start fragment names the type. IDR (5) or SPS (7) marks a keyframe.
    public static func isH264Keyframe(_ p: ArraySlice<UInt8>) -> Bool {
        guard let first = p.first else { return false }
        let type = first & 0x1F
        switch type {
        case 5, 7:
            return true
        case 24:
            var i = p.startIndex + 1
            while i + 2 < p.endIndex {
                let size = Int(p[i]) << 8 | Int(p[i + 1])
                let nal = p[i + 2] & 0x1F
                if nal == 5 || nal == 7 { return true }
                i += 2 + size
            }
            return false
        case 28:
            guard p.count >= 2 else { return false }
            let header = p[p.startIndex + 1]
            return header & 0x80 != 0 && (header & 0x1F == 5 || header & 0x1F == 7)
        default:
            return false
        }
    }
}
