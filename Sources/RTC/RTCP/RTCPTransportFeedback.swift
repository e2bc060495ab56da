// Packet status chunks and receive deltas of transport-cc feedback,
// draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1.1–§3.1.5.

extension RTCPTransportFeedback {
    /// Wire symbols (§3.1.1): 00 not received, 01 small delta, 10 large or negative delta.
    private enum Symbol: UInt8 {
        case notReceived = 0
        case smallDelta = 1
        case largeDelta = 2
    }

    /// Parses the FCI (everything after the two SSRCs).
    init(sender: UInt32, media: UInt32, fci: ArraySlice<UInt8>) throws(RTCPError) {
        var r = ByteReader(fci)
        guard let base = r.u16(), let statusCount = r.u16(), let reference = r.u24(), let fbCount = r.u8() else {
            throw RTCPError(.malformed, "transport-cc FCI needs 8 bytes of header, got \(fci.count)")
        }
        var symbols: [Symbol] = []
        symbols.reserveCapacity(Int(statusCount))
        while symbols.count < Int(statusCount) {
            guard let chunk = r.u16() else {
                throw RTCPError(.malformed, "transport-cc declares \(statusCount) packet statuses but its chunks end after \(symbols.count)")
            }
            let needed = Int(statusCount) - symbols.count
            if chunk & 0x8000 == 0 {
                // §3.1.3 run length chunk: T=0, S (2 bits), run length (13 bits).
                let raw = UInt8(truncatingIfNeeded: (chunk >> 13) & 0x3)
                guard let symbol = Symbol(rawValue: raw) else {
                    throw RTCPError(.malformed, "transport-cc run length chunk uses reserved status symbol 11")
                }
                let run = Int(chunk & 0x1FFF)
                symbols.append(contentsOf: repeatElement(symbol, count: min(run, needed)))
            } else if chunk & 0x4000 == 0 {
                // §3.1.4 status vector chunk, 14 one-bit symbols: 0 not received, 1 small delta.
                for i in 0..<min(14, needed) {
                    symbols.append(chunk & (1 << (13 - i)) != 0 ? .smallDelta : .notReceived)
                }
            } else {
                // §3.1.4 status vector chunk, 7 two-bit symbols.
                for i in 0..<min(7, needed) {
                    let raw = UInt8(truncatingIfNeeded: (chunk >> (12 - 2 * i)) & 0x3)
                    guard let symbol = Symbol(rawValue: raw) else {
                        throw RTCPError(.malformed, "transport-cc status vector chunk uses reserved status symbol 11")
                    }
                    symbols.append(symbol)
                }
            }
        }
        var packets: [Status] = []
        packets.reserveCapacity(symbols.count)
        for (i, symbol) in symbols.enumerated() {
            switch symbol {
            case .notReceived:
                packets.append(.notReceived)
            case .smallDelta:
                guard let d = r.u8() else { throw RTCPError(.malformed, "transport-cc receive delta for packet \(i) is missing") }
                packets.append(.received(delta: Int16(d)))
            case .largeDelta:
                guard let d = r.u16() else { throw RTCPError(.malformed, "transport-cc receive delta for packet \(i) is missing") }
                packets.append(.received(delta: Int16(bitPattern: d)))
            }
        }
        // Whatever is left is padding to 32 bits (§3.1).
        self.init(senderSSRC: sender, mediaSSRC: media, baseSequenceNumber: base,
                  referenceTime: Int32(bitPattern: reference << 8) >> 8, feedbackPacketCount: fbCount, packets: packets)
    }

    /// Writes sender/media SSRC and the FCI: run length chunks for runs of 7 or more, otherwise
    /// one-bit vectors when no large delta is near, else two-bit vectors. At most 65535 packets.
    func encodeBody(into out: inout [UInt8]) {
        let packets = self.packets.prefix(0xFFFF)
        let symbols: [Symbol] = packets.map {
            switch $0 {
            case .notReceived: .notReceived
            case .received(let d): (0...255).contains(d) ? .smallDelta : .largeDelta
            }
        }
        out.appendUInt32(senderSSRC)
        out.appendUInt32(mediaSSRC)
        out.appendUInt16(baseSequenceNumber)
        out.appendUInt16(UInt16(symbols.count))
        out.appendUInt24(UInt32(bitPattern: referenceTime) & 0x00FF_FFFF)
        out.append(feedbackPacketCount)
        var i = 0
        while i < symbols.count {
            var run = 1
            while i + run < symbols.count, run < 0x1FFF, symbols[i + run] == symbols[i] { run += 1 }
            if run >= 7 {
                out.appendUInt16(UInt16(symbols[i].rawValue) << 13 | UInt16(run))
                i += run
            } else if !symbols[i..<min(i + 14, symbols.count)].contains(.largeDelta) {
                var chunk: UInt16 = 0x8000
                for j in 0..<min(14, symbols.count - i) where symbols[i + j] == .smallDelta {
                    chunk |= 1 << (13 - j)
                }
                out.appendUInt16(chunk)
                i += 14
            } else {
                var chunk: UInt16 = 0xC000
                for j in 0..<min(7, symbols.count - i) {
                    chunk |= UInt16(symbols[i + j].rawValue) << (12 - 2 * j)
                }
                out.appendUInt16(chunk)
                i += 7
            }
        }
        for packet in packets {
            if case .received(let d) = packet {
                if (0...255).contains(d) { out.append(UInt8(d)) } else { out.appendUInt16(UInt16(bitPattern: d)) }
            }
        }
    }
}
