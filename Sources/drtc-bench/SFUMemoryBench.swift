import Foundation
import RTC
import SFU

/// Memory per consumer of the SFU core: one publisher sending VP8 at ~1.5 Mbit/s (30 fps) and
/// Opus (50 packets/s) for 2 virtual seconds, with 1, 3, 10 and 100 subscribers. A "consumer"
/// here is one subscriber receiving both tracks (two `Room` consumers: video with RTX and
/// remapped extension IDs, and audio), which is what the 200 KiB target is about; the room's own
/// per-track figure is reported too. `bytesPerConsumer` is `Room.memoryFootprint()` (real array
/// capacities, the retransmission buffers shared equally) divided by the subscribers;
/// `rssBytesPerConsumer` is the process RSS growth (/proc/self/statm) while the room is alive,
/// divided the same way, as a cross-check of the estimate.
enum SFUMemoryBench {
    static let t0: Int64 = 1_700_000_000_000
    static let videoSSRC: UInt32 = 0x1111, rtxSSRC: UInt32 = 0x1112, audioSSRC: UInt32 = 0x2222
    static let videoBitrate = 1_500_000
    static let fps = 30
    static let maxPayload = 1200

    /// glibc's malloc_trim(0) (in <malloc.h>, which Glibc's module does not export), if present.
    static func mallocTrim() {
        guard let f = dlsym(nil, "malloc_trim") else { return }
        typealias Trim = @convention(c) (Int) -> Int32
        _ = unsafeBitCast(f, to: Trim.self)(0)
    }

    static func rssBytes() -> Int {
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? ""
        let resident = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// A packet as the shell hands it over: SRTP removed in place, so the array still has the
    /// room the tag took (as `SRTPSession.unprotect(srtp:)` leaves it).
    static func received(_ packet: RTPPacket, tag: Int) -> [UInt8] {
        var bytes = packet.encoded()
        bytes.reserveCapacity(bytes.count + tag)
        return bytes
    }

    static func run() throws {
        try measure(subscribers: 3, emit: false)  // warm-up: first-use allocations stay out of the RSS figures
        for n in [1, 3, 10, 100] { try measure(subscribers: n) }
    }

    static func measure(subscribers n: Int, emit: Bool = true) throws {
        mallocTrim()  // give back what earlier cases freed, so the RSS delta is this room's
        let rssBefore = rssBytes()
        var room = Room()
        var out: [RoomOutput] = []
        out.reserveCapacity(4 * n + 16)
        let publisher = TransportID(1)
        room.addTransport(publisher)
        // Chrome's publisher extension IDs: 1 ssrc-audio-level, 2 abs-send-time, 3 transport-cc, 4 mid.
        let video = try room.addProducer(on: publisher, ProducerDescription(
            kind: .video, codec: .vp8, payloadType: 96, clockRate: 90000, rtxPayloadType: 97,
            layers: [ProducerLayerDescription(ssrc: videoSSRC, rtxSSRC: rtxSSRC)], mid: "1", midExtensionID: 4), into: &out)
        let audio = try room.addProducer(on: publisher, ProducerDescription(
            kind: .audio, codec: .opus, payloadType: 111, clockRate: 48000,
            layers: [ProducerLayerDescription(ssrc: audioSSRC)], mid: "0", midExtensionID: 4), into: &out)
        for i in 0..<n {
            let t = TransportID(UInt64(100 + i))
            room.addTransport(t)
            let base = UInt32(0x10000 + 16 * i)
            _ = try room.addConsumer(on: t, of: video, ConsumerDescription(
                ssrc: base, payloadType: 96, rtxSSRC: base + 1, rtxPayloadType: 97, extensionIDs: [2: 3, 3: 5]), now: t0, into: &out)
            _ = try room.addConsumer(on: t, of: audio, ConsumerDescription(
                ssrc: base + 2, payloadType: 111, extensionIDs: [1: 1, 3: 5]), now: t0, into: &out)
        }

        var videoSequence: UInt16 = 1000, audioSequence: UInt16 = 5000, transportWide: UInt16 = 0
        var packets = 0, bytesIn = 0
        var rng = SystemRandomNumberGenerator()
        let frameBytes = videoBitrate / 8 / fps
        for ms in 0..<2000 {
            let now = t0 + Int64(ms)
            out.removeAll(keepingCapacity: true)
            if ms % (1000 / fps) == 0 {  // a video frame: ±25 % around the mean, the first a 4x keyframe
                let frame = ms / (1000 / fps)
                var remaining = frame == 0 ? 4 * frameBytes : Int.random(in: (frameBytes * 3 / 4)...(frameBytes * 5 / 4), using: &rng)
                let count = (remaining + maxPayload - 1) / maxPayload
                for k in 0..<count {
                    let size = min(maxPayload, (remaining + (count - k) - 1) / (count - k))  // equal split
                    remaining -= size
                    var payload = [UInt8](repeating: 0xCD, count: size)
                    payload[0] = k == 0 ? 0x10 : 0x00
                    payload[1] = frame == 0 ? 0x00 : 0x01
                    transportWide &+= 1
                    let packet = RTPPacket(marker: k == count - 1, payloadType: 96, sequenceNumber: videoSequence,
                                           timestamp: UInt32(frame * 3000), ssrc: videoSSRC,
                                           headerExtension: .oneByte([.init(id: 2, value: [0, 0, 0]),
                                                                      .init(id: 3, value: [UInt8(transportWide >> 8), UInt8(transportWide & 0xFF)]),
                                                                      .init(id: 4, value: [0x31])]),
                                           payload: payload)
                    videoSequence &+= 1
                    let bytes = received(packet, tag: 16)
                    bytesIn += bytes.count
                    packets += 1
                    room.receiveRTP(from: publisher, bytes, now: now, into: &out)
                }
            }
            if ms % 20 == 0 {  // Opus, 20 ms frames at ~32 kbit/s
                transportWide &+= 1
                let packet = RTPPacket(marker: false, payloadType: 111, sequenceNumber: audioSequence, timestamp: UInt32(ms * 48),
                                       ssrc: audioSSRC,
                                       headerExtension: .oneByte([.init(id: 1, value: [0x90]),
                                                                  .init(id: 3, value: [UInt8(transportWide >> 8), UInt8(transportWide & 0xFF)]),
                                                                  .init(id: 4, value: [0x30])]),
                                       payload: [UInt8](repeating: 0xAB, count: Int.random(in: 60...100, using: &rng)))
                audioSequence &+= 1
                let bytes = received(packet, tag: 16)
                bytesIn += bytes.count
                packets += 1
                room.receiveRTP(from: publisher, bytes, now: now, into: &out)
            }
            if ms % 100 == 0 { room.tick(now: now, into: &out) }
        }
        out = []
        let m = room.memoryFootprint()
        mallocTrim()  // and what the forwarded copies used in passing
        let rssAfter = rssBytes()
        let total = m.totalBytes
        let perSubscriber = total / n
        let stats = room.consumerStats(ConsumerID(1))
        defer { withExtendedLifetime(room) {} }
        guard emit else { return }
        Bench.emit(["benchmark": "sfu-memory", "consumers": n, "roomConsumers": m.consumers,
                    "bytesPerConsumer": perSubscriber, "kibPerConsumer": Bench.round3(Double(perSubscriber) / 1024),
                    "roomBytesPerConsumer": m.bytesPerConsumer,
                    "retransmissionBufferBytes": m.retransmissionBufferBytes, "producerStateBytes": m.producerStateBytes,
                    "consumerStateBytes": m.consumerStateBytes, "transportStateBytes": m.transportStateBytes,
                    "rssBytesPerConsumer": (rssAfter - rssBefore) / n,
                    "publisherKbps": bytesIn * 8 / 2 / 1000, "packetsIn": packets,
                    "videoPacketsSent": Int(stats?.packetsSent ?? 0),
                    "target": 200 * 1024, "pass": perSubscriber <= 200 * 1024,
                    "method": "VP8 1.5 Mbit/s 30 fps + Opus 50 pkt/s for 2 virtual s; consumer = subscriber of both tracks; Room.memoryFootprint / subscribers"])
    }
}
