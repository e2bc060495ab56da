import Identity
// RTCP compound packets: RFC 3550 §6.4–§6.6 (SR, RR, SDES, BYE), RFC 4585 §6.2–§6.3 (generic
// NACK, PLI), RFC 5104 §4.3.1 (FIR), draft-alvestrand-rmcat-remb-03 (REMB) and
// draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1 (transport-cc feedback).

/// Codes for `RTCPError`.
public enum RTCPErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// Fewer bytes than a header, length field or count says.
        case truncated
        /// Version is not 2 (RFC 3550 §6.4.1).
        case badVersion
        /// P is set but the padding count is 0 or exceeds the packet.
        case badPadding
        /// A packet body has the wrong size or shape for its type.
        case malformed

        public var description: String { rawValue }
    }
}

/// An RTCP packet that could not be decoded, and why.
public typealias RTCPError = CodedError<RTCPErrorDomain>

/// RTCP packet type numbers (RFC 3550 §12.1, RFC 4585 §6.1).
public enum RTCPPacketType {
    public static let senderReport: UInt8 = 200
    public static let receiverReport: UInt8 = 201
    public static let sourceDescription: UInt8 = 202
    public static let goodbye: UInt8 = 203
    public static let application: UInt8 = 204
    /// Transport-layer feedback (RFC 4585 §6.1); FMT 1 generic NACK, FMT 15 transport-cc.
    public static let transportFeedback: UInt8 = 205
    /// Payload-specific feedback (RFC 4585 §6.1); FMT 1 PLI, FMT 4 FIR, FMT 15 application (REMB).
    public static let payloadFeedback: UInt8 = 206
}

/// One reception report block (RFC 3550 §6.4.1).
public struct RTCPReportBlock: Hashable, Sendable {
    public var ssrc: UInt32
    /// Fraction lost since the last report, in 1/256 units.
    public var fractionLost: UInt8
    /// Cumulative packets lost, a 24-bit signed value (duplicates can make it negative).
    public var cumulativeLost: Int32
    public var extendedHighestSequence: UInt32
    public var jitter: UInt32
    /// Middle 32 bits of the last SR's NTP timestamp.
    public var lastSenderReport: UInt32
    /// Delay since that SR, in 1/65536 s.
    public var delaySinceLastSenderReport: UInt32

    public init(ssrc: UInt32, fractionLost: UInt8, cumulativeLost: Int32, extendedHighestSequence: UInt32,
                jitter: UInt32, lastSenderReport: UInt32, delaySinceLastSenderReport: UInt32) {
        self.ssrc = ssrc
        self.fractionLost = fractionLost
        self.cumulativeLost = cumulativeLost
        self.extendedHighestSequence = extendedHighestSequence
        self.jitter = jitter
        self.lastSenderReport = lastSenderReport
        self.delaySinceLastSenderReport = delaySinceLastSenderReport
    }

    static let size = 24

    init?(_ r: inout ByteReader) {
        guard let ssrc = r.u32(), let fraction = r.u8(), let lost = r.u24(), let highest = r.u32(),
              let jitter = r.u32(), let lsr = r.u32(), let dlsr = r.u32() else { return nil }
        // Sign-extend the 24-bit field.
        let signed = Int32(bitPattern: lost << 8) >> 8
        self.init(ssrc: ssrc, fractionLost: fraction, cumulativeLost: signed, extendedHighestSequence: highest,
                  jitter: jitter, lastSenderReport: lsr, delaySinceLastSenderReport: dlsr)
    }

    func encode(into out: inout [UInt8]) {
        out.appendUInt32(ssrc)
        out.append(fractionLost)
        out.appendUInt24(UInt32(bitPattern: cumulativeLost) & 0x00FF_FFFF)
        out.appendUInt32(extendedHighestSequence)
        out.appendUInt32(jitter)
        out.appendUInt32(lastSenderReport)
        out.appendUInt32(delaySinceLastSenderReport)
    }
}

/// SR (RFC 3550 §6.4.1).
public struct RTCPSenderReport: Hashable, Sendable {
    public var ssrc: UInt32
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits).
    public var ntpTimestamp: UInt64
    public var rtpTimestamp: UInt32
    public var packetCount: UInt32
    public var octetCount: UInt32
    public var reports: [RTCPReportBlock]
    /// Profile-specific extension bytes after the report blocks, kept verbatim.
    public var profileExtensions: [UInt8]

    public init(ssrc: UInt32, ntpTimestamp: UInt64, rtpTimestamp: UInt32, packetCount: UInt32,
                octetCount: UInt32, reports: [RTCPReportBlock] = [], profileExtensions: [UInt8] = []) {
        self.ssrc = ssrc
        self.ntpTimestamp = ntpTimestamp
        self.rtpTimestamp = rtpTimestamp
        self.packetCount = packetCount
        self.octetCount = octetCount
        self.reports = reports
        self.profileExtensions = profileExtensions
    }
}

/// RR (RFC 3550 §6.4.2).
public struct RTCPReceiverReport: Hashable, Sendable {
    public var ssrc: UInt32
    public var reports: [RTCPReportBlock]
    public var profileExtensions: [UInt8]

    public init(ssrc: UInt32, reports: [RTCPReportBlock] = [], profileExtensions: [UInt8] = []) {
        self.ssrc = ssrc
        self.reports = reports
        self.profileExtensions = profileExtensions
    }
}

/// SDES (RFC 3550 §6.5).
public struct RTCPSourceDescription: Hashable, Sendable {
    /// An SDES item: type (1 CNAME, 2 NAME, … 8 PRIV) and up to 255 bytes of text.
    public struct Item: Hashable, Sendable {
        public var type: UInt8
        public var value: [UInt8]
        public init(type: UInt8, value: [UInt8]) {
            self.type = type
            self.value = value
        }
        /// CNAME (§6.5.1).
        public static func cname(_ text: String) -> Item { Item(type: 1, value: Array(text.utf8)) }
    }

    /// One source and its items.
    public struct Chunk: Hashable, Sendable {
        public var ssrc: UInt32
        public var items: [Item]
        public init(ssrc: UInt32, items: [Item]) {
            self.ssrc = ssrc
            self.items = items
        }
        /// The CNAME item's text, if any and valid UTF-8.
        public var cname: String? {
            items.first { $0.type == 1 }.flatMap { String(validating: $0.value, as: UTF8.self) }
        }
    }

    public var chunks: [Chunk]
    public init(chunks: [Chunk]) { self.chunks = chunks }
}

/// BYE (RFC 3550 §6.6).
public struct RTCPGoodbye: Hashable, Sendable {
    public var ssrcs: [UInt32]
    /// Optional reason; invalid UTF-8 from the wire is repaired with U+FFFD.
    public var reason: String?
    public init(ssrcs: [UInt32], reason: String? = nil) {
        self.ssrcs = ssrcs
        self.reason = reason
    }
}

/// Generic NACK (RFC 4585 §6.2.1): each pair names a lost packet (PID) and a bitmask of the
/// following 16 (BLP, bit i set = PID+i+1 lost).
public struct RTCPNack: Hashable, Sendable {
    public struct Pair: Hashable, Sendable {
        public var packetID: UInt16
        public var lostBitmask: UInt16
        public init(packetID: UInt16, lostBitmask: UInt16) {
            self.packetID = packetID
            self.lostBitmask = lostBitmask
        }
    }

    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    public var pairs: [Pair]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32, pairs: [Pair]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.pairs = pairs
    }

    /// Packs lost sequence numbers (in sending order; wrap-around is fine) into as few pairs as a
    /// single forward pass allows.
    public init(senderSSRC: UInt32, mediaSSRC: UInt32, lostSequenceNumbers: [UInt16]) {
        var pairs: [Pair] = []
        for seq in lostSequenceNumbers {
            if var last = pairs.last {
                let distance = seq &- last.packetID
                if (1...16).contains(distance) {
                    last.lostBitmask |= 1 << (distance - 1)
                    pairs[pairs.count - 1] = last
                    continue
                }
                if distance == 0 { continue }
            }
            pairs.append(Pair(packetID: seq, lostBitmask: 0))
        }
        self.init(senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, pairs: pairs)
    }

    /// Every sequence number the pairs report lost, in order.
    public var lostSequenceNumbers: [UInt16] {
        var out: [UInt16] = []
        for pair in pairs {
            out.append(pair.packetID)
            for bit in 0..<16 where pair.lostBitmask & (1 << bit) != 0 {
                out.append(pair.packetID &+ UInt16(bit + 1))
            }
        }
        return out
    }
}

/// PLI (RFC 4585 §6.3.1): no FCI.
public struct RTCPPictureLossIndication: Hashable, Sendable {
    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    public init(senderSSRC: UInt32, mediaSSRC: UInt32) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
    }
}

/// FIR (RFC 5104 §4.3.1): one entry per requested source.
public struct RTCPFullIntraRequest: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var ssrc: UInt32
        /// Command sequence number; increment per new request (§4.3.1.2).
        public var sequenceNumber: UInt8
        public init(ssrc: UInt32, sequenceNumber: UInt8) {
            self.ssrc = ssrc
            self.sequenceNumber = sequenceNumber
        }
    }

    public var senderSSRC: UInt32
    /// RFC 5104 §4.3.1.2: media source SSRC is 0 for FIR; kept as received.
    public var mediaSSRC: UInt32
    public var entries: [Entry]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32 = 0, entries: [Entry]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.entries = entries
    }
}

/// REMB (draft-alvestrand-rmcat-remb-03 §2.2): PSFB FMT 15 with "REMB", a bitrate as 6-bit
/// exponent and 18-bit mantissa, and the SSRCs it applies to.
public struct RTCPReceiverEstimatedMaxBitrate: Hashable, Sendable {
    public var senderSSRC: UInt32
    /// Bits per second. Encoding rounds down to what exponent/mantissa can express.
    public var bitrate: UInt64
    public var ssrcs: [UInt32]

    public init(senderSSRC: UInt32, bitrate: UInt64, ssrcs: [UInt32]) {
        self.senderSSRC = senderSSRC
        self.bitrate = bitrate
        self.ssrcs = ssrcs
    }

    /// (exponent, mantissa) with mantissa < 2^18 and mantissa << exponent ≤ bitrate, as large as possible.
    var exponentAndMantissa: (UInt8, UInt32) {
        var exponent: UInt8 = 0
        var mantissa = bitrate
        while mantissa >= 1 << 18 {
            mantissa >>= 1
            exponent += 1
        }
        return (exponent, UInt32(mantissa))
    }
}

/// Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
/// §3.1): arrival status and time delta for each packet from `baseSequenceNumber` on.
public struct RTCPTransportFeedback: Hashable, Sendable {
    /// One packet's fate.
    public enum Status: Hashable, Sendable {
        case notReceived
        /// Received; arrival time minus the previous received packet's, in 250 µs ticks (the
        /// first is relative to `referenceTime`). 0…255 is a "small" delta on the wire.
        case received(delta: Int16)
    }

    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    public var baseSequenceNumber: UInt16
    /// 24-bit signed, in multiples of 64 ms.
    public var referenceTime: Int32
    /// Increments with each feedback packet sent, to detect lost feedback.
    public var feedbackPacketCount: UInt8
    /// One per packet from `baseSequenceNumber`, `packet status count` of them.
    public var packets: [Status]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32, baseSequenceNumber: UInt16, referenceTime: Int32,
                feedbackPacketCount: UInt8, packets: [Status]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.baseSequenceNumber = baseSequenceNumber
        self.referenceTime = referenceTime
        self.feedbackPacketCount = feedbackPacketCount
        self.packets = packets
    }
}

/// An RTCP packet this codec does not model (APP, XR, other feedback), kept verbatim.
public struct RTCPRawPacket: Hashable, Sendable {
    /// The 5-bit count/FMT field.
    public var count: UInt8
    public var packetType: UInt8
    /// Body after the 4-byte header, without padding.
    public var body: [UInt8]

    public init(count: UInt8, packetType: UInt8, body: [UInt8]) {
        self.count = count
        self.packetType = packetType
        self.body = body
    }
}

/// One packet of a compound RTCP datagram.
public enum RTCPPacket: Hashable, Sendable {
    case senderReport(RTCPSenderReport)
    case receiverReport(RTCPReceiverReport)
    case sourceDescription(RTCPSourceDescription)
    case goodbye(RTCPGoodbye)
    case nack(RTCPNack)
    case pictureLossIndication(RTCPPictureLossIndication)
    case fullIntraRequest(RTCPFullIntraRequest)
    case receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate)
    case transportFeedback(RTCPTransportFeedback)
    case raw(RTCPRawPacket)

    // MARK: compound

    /// Decodes every packet of a compound RTCP datagram (RFC 3550 §6.1). It does not insist on
    /// SR/RR first, since reduced-size RTCP (RFC 5506) sends feedback alone.
    public static func decodeCompound(_ bytes: ArraySlice<UInt8>) throws(RTCPError) -> [RTCPPacket] {
        var packets: [RTCPPacket] = []
        var r = ByteReader(bytes)
        guard r.remaining > 0 else { throw RTCPError(.truncated, "empty RTCP datagram") }
        while r.remaining > 0 {
            let offset = r.offset
            guard let first = r.u8(), let type = r.u8(), let words = r.u16() else {
                throw RTCPError(.truncated, "RTCP header at offset \(offset) needs 4 bytes, \(bytes.count - offset) left")
            }
            guard first >> 6 == 2 else {
                throw RTCPError(.badVersion, "RTCP packet at offset \(offset) has version \(first >> 6), expected 2 (RFC 3550 §6.4.1)")
            }
            let bodyLength = 4 * Int(words)
            guard var body = r.take(bodyLength) else {
                throw RTCPError(.truncated, "RTCP packet type \(type) at offset \(offset) declares \(bodyLength + 4) bytes, \(bytes.count - offset) left")
            }
            if first & 0x20 != 0 {
                let padding = Int(body.last ?? 0)
                guard padding > 0, padding <= body.count else {
                    throw RTCPError(.badPadding, "RTCP packet type \(type) at offset \(offset) has padding count \(padding) with a \(body.count)-byte body")
                }
                body = body.dropLast(padding)
            }
            packets.append(try decode(count: first & 0x1F, type: type, body: body))
        }
        return packets
    }

    public static func decodeCompound(_ bytes: [UInt8]) throws(RTCPError) -> [RTCPPacket] {
        try decodeCompound(bytes[...])
    }

    /// Encodes packets back to back into one compound datagram.
    public static func encodeCompound(_ packets: [RTCPPacket]) -> [UInt8] {
        var out: [UInt8] = []
        for packet in packets { packet.encode(into: &out) }
        return out
    }

    /// This one packet on the wire.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    // MARK: per-type decoding

    static func decode(count: UInt8, type: UInt8, body: ArraySlice<UInt8>) throws(RTCPError) -> RTCPPacket {
        var r = ByteReader(body)
        func malformed(_ why: String) -> RTCPError { RTCPError(.malformed, why) }
        func reports(_ n: UInt8, _ name: String) throws(RTCPError) -> [RTCPReportBlock] {
            var blocks: [RTCPReportBlock] = []
            for _ in 0..<n {
                guard let block = RTCPReportBlock(&r) else {
                    throw malformed("\(name) declares \(n) report blocks but the body holds only \(blocks.count)")
                }
                blocks.append(block)
            }
            return blocks
        }
        switch type {
        case RTCPPacketType.senderReport:
            guard let ssrc = r.u32(), let ntp = r.u64(), let rtp = r.u32(), let packets = r.u32(), let octets = r.u32() else {
                throw malformed("SR body needs 24 bytes of sender info, got \(body.count)")
            }
            let blocks = try reports(count, "SR")
            return .senderReport(RTCPSenderReport(ssrc: ssrc, ntpTimestamp: ntp, rtpTimestamp: rtp, packetCount: packets,
                                                  octetCount: octets, reports: blocks, profileExtensions: Array(r.rest())))
        case RTCPPacketType.receiverReport:
            guard let ssrc = r.u32() else { throw malformed("RR body needs a 4-byte SSRC, got \(body.count)") }
            let blocks = try reports(count, "RR")
            return .receiverReport(RTCPReceiverReport(ssrc: ssrc, reports: blocks, profileExtensions: Array(r.rest())))
        case RTCPPacketType.sourceDescription:
            var chunks: [RTCPSourceDescription.Chunk] = []
            for _ in 0..<count {
                guard let ssrc = r.u32() else { throw malformed("SDES declares \(count) chunks but holds only \(chunks.count)") }
                var items: [RTCPSourceDescription.Item] = []
                while true {
                    guard let itemType = r.u8() else { throw malformed("SDES chunk for SSRC \(ssrc) has no terminating null item") }
                    if itemType == 0 {
                        // §6.5: the null item ends the chunk; pad to the next 32-bit boundary.
                        let misalignment = r.offset % 4
                        if misalignment != 0, !r.skip(4 - misalignment) {
                            throw malformed("SDES chunk for SSRC \(ssrc) is not padded to 32 bits")
                        }
                        break
                    }
                    guard let length = r.u8(), let value = r.take(Int(length)) else {
                        throw malformed("SDES item type \(itemType) for SSRC \(ssrc) overruns the packet")
                    }
                    items.append(.init(type: itemType, value: Array(value)))
                }
                chunks.append(.init(ssrc: ssrc, items: items))
            }
            return .sourceDescription(RTCPSourceDescription(chunks: chunks))
        case RTCPPacketType.goodbye:
            var ssrcs: [UInt32] = []
            for _ in 0..<count {
                guard let ssrc = r.u32() else { throw malformed("BYE declares \(count) SSRCs but holds only \(ssrcs.count)") }
                ssrcs.append(ssrc)
            }
            var reason: String?
            if let length = r.u8() {
                guard let text = r.take(Int(length)) else { throw malformed("BYE reason declares \(length) bytes, \(r.remaining) left") }
                reason = String(decoding: text, as: UTF8.self)
            }
            return .goodbye(RTCPGoodbye(ssrcs: ssrcs, reason: reason))
        case RTCPPacketType.transportFeedback, RTCPPacketType.payloadFeedback:
            guard let sender = r.u32(), let media = r.u32() else {
                throw malformed("feedback packet (type \(type) FMT \(count)) needs 8 bytes of SSRCs, got \(body.count)")
            }
            return try decodeFeedback(type: type, format: count, sender: sender, media: media, fci: r.rest(), body: body)
        default:
            return .raw(RTCPRawPacket(count: count, packetType: type, body: Array(body)))
        }
    }

    static func decodeFeedback(type: UInt8, format: UInt8, sender: UInt32, media: UInt32,
                               fci: ArraySlice<UInt8>, body: ArraySlice<UInt8>) throws(RTCPError) -> RTCPPacket {
        var r = ByteReader(fci)
        switch (type, format) {
        case (RTCPPacketType.transportFeedback, 1):
            guard fci.count % 4 == 0 else { throw RTCPError(.malformed, "generic NACK FCI is \(fci.count) bytes, not a multiple of 4") }
            var pairs: [RTCPNack.Pair] = []
            while let pid = r.u16(), let blp = r.u16() { pairs.append(.init(packetID: pid, lostBitmask: blp)) }
            return .nack(RTCPNack(senderSSRC: sender, mediaSSRC: media, pairs: pairs))
        case (RTCPPacketType.transportFeedback, 15):
            return .transportFeedback(try RTCPTransportFeedback(sender: sender, media: media, fci: fci))
        case (RTCPPacketType.payloadFeedback, 1):
            return .pictureLossIndication(RTCPPictureLossIndication(senderSSRC: sender, mediaSSRC: media))
        case (RTCPPacketType.payloadFeedback, 4):
            guard fci.count % 8 == 0 else { throw RTCPError(.malformed, "FIR FCI is \(fci.count) bytes, not a multiple of 8") }
            var entries: [RTCPFullIntraRequest.Entry] = []
            while let ssrc = r.u32(), let seq = r.u8(), r.skip(3) { entries.append(.init(ssrc: ssrc, sequenceNumber: seq)) }
            return .fullIntraRequest(RTCPFullIntraRequest(senderSSRC: sender, mediaSSRC: media, entries: entries))
        case (RTCPPacketType.payloadFeedback, 15) where fci.starts(with: Array("REMB".utf8)):
            _ = r.skip(4)
            guard let n = r.u8(), let expMantissa = r.u24() else { throw RTCPError(.malformed, "REMB needs 8 bytes after the SSRCs, got \(fci.count)") }
            let exponent = UInt64(expMantissa >> 18)
            let mantissa = UInt64(expMantissa & 0x3FFFF)
            // Saturate instead of overflowing for exponents the 64-bit value cannot hold.
            let bitrate = mantissa == 0 ? 0 : (mantissa.leadingZeroBitCount >= exponent ? mantissa << exponent : UInt64.max)
            var ssrcs: [UInt32] = []
            for _ in 0..<n {
                guard let ssrc = r.u32() else { throw RTCPError(.malformed, "REMB declares \(n) SSRCs but holds \(ssrcs.count)") }
                ssrcs.append(ssrc)
            }
            return .receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate(senderSSRC: sender, bitrate: bitrate, ssrcs: ssrcs))
        default:
            return .raw(RTCPRawPacket(count: format, packetType: type, body: Array(body)))
        }
    }

    // MARK: encoding

    func encode(into out: inout [UInt8]) {
        var body: [UInt8] = []
        var padded = false
        let count: UInt8
        let type: UInt8
        switch self {
        case .senderReport(let sr):
            type = RTCPPacketType.senderReport
            let blocks = sr.reports.prefix(31)
            count = UInt8(blocks.count)
            body.appendUInt32(sr.ssrc)
            body.appendUInt64(sr.ntpTimestamp)
            body.appendUInt32(sr.rtpTimestamp)
            body.appendUInt32(sr.packetCount)
            body.appendUInt32(sr.octetCount)
            for b in blocks { b.encode(into: &body) }
            body.append(contentsOf: sr.profileExtensions)
        case .receiverReport(let rr):
            type = RTCPPacketType.receiverReport
            let blocks = rr.reports.prefix(31)
            count = UInt8(blocks.count)
            body.appendUInt32(rr.ssrc)
            for b in blocks { b.encode(into: &body) }
            body.append(contentsOf: rr.profileExtensions)
        case .sourceDescription(let sdes):
            type = RTCPPacketType.sourceDescription
            let chunks = sdes.chunks.prefix(31)
            count = UInt8(chunks.count)
            for chunk in chunks {
                body.appendUInt32(chunk.ssrc)
                for item in chunk.items {
                    let value = item.value.prefix(255)
                    body.append(item.type)
                    body.append(UInt8(value.count))
                    body.append(contentsOf: value)
                }
                // §6.5: at least one null octet ends the item list, then pad to 32 bits.
                body.append(0)
                body.padToWord()
            }
        case .goodbye(let bye):
            type = RTCPPacketType.goodbye
            let ssrcs = bye.ssrcs.prefix(31)
            count = UInt8(ssrcs.count)
            for s in ssrcs { body.appendUInt32(s) }
            if let reason = bye.reason {
                let text = Array(reason.utf8.prefix(255))
                body.append(UInt8(text.count))
                body.append(contentsOf: text)
                body.padToWord()
            }
        case .nack(let nack):
            type = RTCPPacketType.transportFeedback
            count = 1
            body.appendUInt32(nack.senderSSRC)
            body.appendUInt32(nack.mediaSSRC)
            for pair in nack.pairs {
                body.appendUInt16(pair.packetID)
                body.appendUInt16(pair.lostBitmask)
            }
        case .pictureLossIndication(let pli):
            type = RTCPPacketType.payloadFeedback
            count = 1
            body.appendUInt32(pli.senderSSRC)
            body.appendUInt32(pli.mediaSSRC)
        case .fullIntraRequest(let fir):
            type = RTCPPacketType.payloadFeedback
            count = 4
            body.appendUInt32(fir.senderSSRC)
            body.appendUInt32(fir.mediaSSRC)
            for entry in fir.entries {
                body.appendUInt32(entry.ssrc)
                body.append(entry.sequenceNumber)
                body.append(contentsOf: [0, 0, 0])
            }
        case .receiverEstimatedMaxBitrate(let remb):
            type = RTCPPacketType.payloadFeedback
            count = 15
            body.appendUInt32(remb.senderSSRC)
            body.appendUInt32(0)  // media source SSRC is unused (0) for REMB
            body.append(contentsOf: Array("REMB".utf8))
            let ssrcs = remb.ssrcs.prefix(255)
            body.append(UInt8(ssrcs.count))
            let (exponent, mantissa) = remb.exponentAndMantissa
            body.appendUInt24(UInt32(exponent) << 18 | mantissa)
            for s in ssrcs { body.appendUInt32(s) }
        case .transportFeedback(let feedback):
            type = RTCPPacketType.transportFeedback
            count = 15
            feedback.encodeBody(into: &body)
        case .raw(let raw):
            type = raw.packetType
            count = raw.count & 0x1F
            body = raw.body
            // A body that is not whole words came with padding (RFC 3550 §6.4.1, P bit): pad it
            // the same way, the last octet counting the padding, so it decodes to the same
            // bytes; zero-filling would lengthen the body.
            if body.count % 4 != 0 {
                let padding = 4 - body.count % 4
                body.append(contentsOf: repeatElement(0, count: padding - 1))
                body.append(UInt8(padding))
                padded = true
            }
        }
        body.padToWord()
        out.append(2 << 6 | (padded ? 0x20 : 0) | count)
        out.append(type)
        out.appendUInt16(UInt16(truncatingIfNeeded: body.count / 4))
        out.append(contentsOf: body)
    }
}
