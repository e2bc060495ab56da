import Foundation
import RTC
@testable import SFU
import Identity


enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }
}

/// VP8 payloads (RFC 7741): descriptor byte (S=1 PID=0 for a frame start), then the frame tag
/// whose low bit P is 0 for a keyframe.
enum VP8 {
    static func keyframe(_ size: Int = 100, fill: UInt8 = 0xAB) -> [UInt8] { [0x10, 0x00] + [UInt8](repeating: fill, count: size - 2) }
    static func delta(_ size: Int = 100, fill: UInt8 = 0xCD) -> [UInt8] { [0x10, 0x01] + [UInt8](repeating: fill, count: size - 2) }
}

let t0: Int64 = 1_700_000_000_000

func rtp(ssrc: UInt32, seq: UInt16, ts: UInt32, pt: UInt8 = 96, payload: [UInt8], marker: Bool = true,
         ext: [RTPExtensionElement]? = nil) -> [UInt8] {
    RTPPacket(marker: marker, payloadType: pt, sequenceNumber: seq, timestamp: ts, ssrc: ssrc,
              headerExtension: ext.map { .oneByte($0) }, payload: payload).encoded()
}

/// A room plus the shell's reusable output array, with helpers that return what one input produced.
struct Harness {
    var room: Room
    var out: [RoomOutput] = []

    init(_ configuration: RoomConfiguration = RoomConfiguration()) { room = Room(configuration: configuration) }

    mutating func rtp(_ t: UInt64, _ bytes: [UInt8], _ now: Int64) -> [RoomOutput] {
        out.removeAll(keepingCapacity: true)
        room.receiveRTP(from: TransportID(t), bytes, now: now, into: &out)
        return out
    }
    mutating func rtcp(_ t: UInt64, _ packets: [RTCPPacket], _ now: Int64) -> [RoomOutput] {
        out.removeAll(keepingCapacity: true)
        room.receiveRTCP(from: TransportID(t), RTCPPacket.encodeCompound(packets), now: now, into: &out)
        return out
    }
    mutating func tick(_ now: Int64) -> [RoomOutput] {
        out.removeAll(keepingCapacity: true)
        room.tick(now: now, into: &out)
        return out
    }
    mutating func producer(_ t: UInt64, _ d: ProducerDescription) throws -> ProducerID {
        room.addTransport(TransportID(t))
        out.removeAll()
        return try room.addProducer(on: TransportID(t), d, into: &out)
    }
    mutating func consumer(_ t: UInt64, _ p: ProducerID, _ d: ConsumerDescription, _ now: Int64) throws -> (ConsumerID, [RoomOutput]) {
        room.addTransport(TransportID(t))
        out.removeAll()
        let id = try room.addConsumer(on: TransportID(t), of: p, d, now: now, into: &out)
        return (id, out)
    }
}

extension Array where Element == RoomOutput {
    func rtp(to t: UInt64) -> [[UInt8]] {
        compactMap { if case .sendRTP(let id, let b) = $0, id == TransportID(t) { b } else { nil } }
    }
    func rtcp(to t: UInt64) -> [RTCPPacket] {
        flatMap { o -> [RTCPPacket] in
            if case .sendRTCP(let id, let b) = o, id == TransportID(t) { (try? RTCPPacket.decodeCompound(b)) ?? [] } else { [] }
        }
    }
    var events: [RoomEvent] { compactMap { if case .event(let e) = $0 { e } else { nil } } }
}

func vp8Producer(ssrc: UInt32 = 0x1111, rtxSSRC: UInt32? = nil) -> ProducerDescription {
    ProducerDescription(kind: .video, codec: .vp8, payloadType: 96, clockRate: 90000, rtxPayloadType: 97,
                        layers: [ProducerLayerDescription(ssrc: ssrc, rtxSSRC: rtxSSRC)])
}
