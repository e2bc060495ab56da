// libFuzzer entry point for the media path: the RTP codec and its in-place rewriter, the compound
// RTCP codec (SR/RR/SDES/BYE, NACK, PLI, FIR, REMB, transport-cc), and an SFU `Room` with
// publishers and subscribers fed the input as a sequence of RTP/RTCP datagrams and ticks.
// Built by scripts/fuzz.sh against the RTC and SFU modules.
//
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
// - RTP: whatever `RTPPacket` accepts, `RTPPacketBuffer` accepts too; decode(encode(p)) == p;
//   the buffer's header setters, extension write and ID remap keep a decodable packet decodable;
// - RTCP: decode(encode(packets)) == packets for every accepted compound datagram;
// - Room: no input traps; every RTP it emits is structurally valid RTP (and fully decodable for a
//   subscriber whose extension IDs are remapped, since the remap blanks malformed elements);
//   every RTCP it emits decodes.
import RTC
import SFU

// MARK: codecs

private func fuzzRTP(_ input: [UInt8]) {
    let packet = try? RTPPacket(decoding: input)
    guard var buffer = try? RTPPacketBuffer(input) else {
        precondition(packet == nil, "RTPPacket accepted what RTPPacketBuffer rejects: \(input)")
        return
    }
    if let packet {
        let encoded = packet.encoded()
        precondition((try? RTPPacket(decoding: encoded)) == packet, "RTP decode(encode(p)) != p for \(packet)")
        precondition(buffer.payload.elementsEqual(packet.payload), "buffer and packet disagree on the payload")
    }
    let id = input.count > 1 ? input[1] & 0x0F : 1
    let unmappedID = 6 + (input.count > 2 ? input[2] & 7 : 0)  // 6…13: not a key of the fixed pairs below
    if let value = buffer.extensionValue(id: id) {
        precondition(buffer.setExtensionValue(id: id, to: value.reversed()), "same-length extension write refused")
    }
    buffer.remapExtensionIDs(RTPExtensionIDMap([1: 2, 2: 1, 3: 14, 4: 15, 5: 200, 200: 3, unmappedID: 7]))
    buffer.sequenceNumber &+= 1
    buffer.timestamp &+= 3000
    buffer.ssrc = ~buffer.ssrc
    buffer.payloadType = 0xFF
    buffer.marker.toggle()
    if packet != nil {
        guard let rewritten = try? buffer.decoded() else { preconditionFailure("rewriting broke a valid packet: \(input)") }
        precondition(rewritten.payloadType == 0x7F && rewritten.ssrc == ~packet!.ssrc, "setters did not take")
    }
}

private func fuzzRTCP(_ input: [UInt8]) {
    guard let packets = try? RTCPPacket.decodeCompound(input) else { return }
    let encoded = RTCPPacket.encodeCompound(packets)
    guard let again = try? RTCPPacket.decodeCompound(encoded) else { preconditionFailure("re-encoded RTCP does not decode: \(packets)") }
    precondition(again == packets, "RTCP decode(encode(p)) != p: \(packets) vs \(again)")
    for case .nack(let nack) in packets { _ = nack.lostSequenceNumbers }
}

// MARK: room

/// SSRCs the input can stamp into a datagram so that it reaches a producer or consumer.
private let knownSSRCs: [UInt32] = [0x1000, 0x2000, 0x1001, 0x3000, 0xC0, 0xC1, 0xD0, 0xE0]

private struct Harness {
    var room = Room()
    var out: [RoomOutput] = []
    var consumers: [ConsumerID] = []
    var now: Int64 = 1_700_000_000_000

    init() {
        for t in 1...3 { room.addTransport(TransportID(UInt64(t))) }
        // Transport 1 publishes simulcast VP8 (two layers by SSRC and RID, one announced by RID
        // only) and Opus.
        let video = try! room.addProducer(on: TransportID(1), ProducerDescription(
            kind: .video, codec: .vp8, payloadType: 96, clockRate: 90000, rtxPayloadType: 97,
            layers: [.init(rid: "q", ssrc: 0x1000, rtxSSRC: 0x1001), .init(rid: "h", ssrc: 0x2000), .init(rid: "f")],
            ridExtensionID: 10, repairedRidExtensionID: 11, mid: "0", midExtensionID: 4), into: &out)
        let audio = try! room.addProducer(on: TransportID(1), ProducerDescription(
            kind: .audio, codec: .opus, payloadType: 111, clockRate: 48000, layers: [.init(ssrc: 0x3000)]), into: &out)
        // Transport 2 remaps extension IDs and has RTX; transport 3 passes extensions through.
        consumers.append(try! room.addConsumer(on: TransportID(2), of: video, ConsumerDescription(
            ssrc: 0xC0, payloadType: 100, rtxSSRC: 0xC1, rtxPayloadType: 101, extensionIDs: [4: 1, 10: 14, 11: 200, 3: 3]),
            now: now, into: &out))
        consumers.append(try! room.addConsumer(on: TransportID(2), of: audio, ConsumerDescription(
            ssrc: 0xE0, payloadType: 111, extensionIDs: [1: 1]), now: now, into: &out))
        consumers.append(try! room.addConsumer(on: TransportID(3), of: video, ConsumerDescription(
            ssrc: 0xD0, payloadType: 96, preferredLayer: 0), now: now, into: &out))
    }

    /// Input as chunks: [op][length][bytes…]. op bits 0–1: RTP, RTCP, tick, control; bits 2–3:
    /// transport (0 = one the room does not know); bits 4–6: SSRC to stamp (0 = none); bit 7: a
    /// longer pause before this input.
    mutating func run(_ input: [UInt8]) {
        var i = 0
        while i + 2 <= input.count {
            let op = input[i]
            let length = Int(input[i + 1])
            var bytes = Array(input[(i + 2)..<min(input.count, i + 2 + length)])
            i += 2 + length
            now += op & 0x80 != 0 ? 400 : 3
            let transport = TransportID(op & 0x0C == 0 ? 9 : UInt64((op >> 2) & 3))
            let stamp = Int((op >> 4) & 7)
            out.removeAll(keepingCapacity: true)
            switch op & 3 {
            case 0:
                if stamp != 0, bytes.count >= 12 {
                    bytes[0] = bytes[0] & 0x3F | 0x80
                    bytes.writeSSRC(knownSSRCs[stamp - 1], at: 8)
                }
                room.receiveRTP(from: transport, bytes, now: now, into: &out)
            case 1:
                if stamp != 0, bytes.count >= 12 {
                    bytes[0] = bytes[0] & 0x3F | 0x80
                    bytes.writeSSRC(knownSSRCs[stamp + 0], at: 8)
                }
                room.receiveRTCP(from: transport, bytes, now: now, into: &out)
            case 2:
                room.tick(now: now, into: &out)
            default:
                let c = consumers[stamp % consumers.count]
                let value = bytes.first ?? 0
                switch value & 3 {
                case 0: try? room.setPreferredLayer(c, rid: ["q", "h", "f", "x"][Int(value >> 2) & 3], now: now, into: &out)
                case 1: room.setEstimatedBandwidth(consumer: c, bitsPerSecond: value & 4 == 0 ? nil : Int(value) * 10_000, now: now, into: &out)
                case 2: room.setEstimatedBandwidth(transport: transport, bitsPerSecond: Int(value) * 20_000, now: now, into: &out)
                default: _ = room.consumerStats(c)
                }
            }
            check()
        }
        _ = room.memoryFootprint()
    }

    func check() {
        for o in out {
            switch o {
            case .sendRTP(let t, let bytes):
                precondition((try? RTPPacketBuffer(bytes)) != nil, "room emitted invalid RTP: \(bytes)")
                if t == TransportID(2) {
                    precondition((try? RTPPacket(decoding: bytes)) != nil, "room emitted undecodable RTP to a remapping subscriber: \(bytes)")
                }
            case .sendRTCP(_, let bytes):
                precondition((try? RTCPPacket.decodeCompound(bytes)) != nil, "room emitted undecodable RTCP: \(bytes)")
            case .event:
                break
            }
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate mutating func writeSSRC(_ v: UInt32, at i: Int) {
        for k in 0..<4 { self[i + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * k)) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func rtpFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzRTP(input)
    if input.count > 1 { fuzzRTP(Array(input[1...])) }
    _ = try? RTPPacket(decoding: input.dropFirst())
    fuzzRTCP(input)
    _ = try? RTCPPacket.decodeCompound(input.dropFirst())
    var harness = Harness()
    harness.run(input)
    return 0
}
