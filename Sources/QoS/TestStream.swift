import RTC

/// The prover's generated video (Specs/qos.md "Test stream"), sans-I/O: VP8 RTP (RFC 7741) at
/// a target payload bitrate, 30 frames per second, a keyframe every 2 s (and on request), each
/// frame cut into packets of at most `maxPayload` bytes with the marker on its last packet.
/// Keyframes are three times the size of a delta frame; the average payload rate is the target.
///
/// The payload is the RFC 7741 payload descriptor (S bit and PID 0 on a frame's first packet)
/// and, on that packet, the VP8 frame tag (P = 0 on keyframes, with the keyframe start code and
/// a 640×360 size) — what the SFU's keyframe detection and any VP8 depacketiser read — followed
/// by filler. The challenger measures transport, not picture quality.
public struct TestVideoSource: Sendable {
    public let ssrc: UInt32
    public let payloadType: UInt8
    public let bitrateKbps: Int
    public static let framesPerSecond = 30
    public static let keyframeIntervalFrames = 60
    public let maxPayload: Int
    private let startMs: UInt64
    private var frame: UInt64 = 0
    private var sequence: UInt16
    private var keyframeRequested = true
    private var filler: UInt64

    public init(ssrc: UInt32, payloadType: UInt8 = 96, bitrateKbps: Int, startMs: UInt64, firstSequence: UInt16, maxPayload: Int = 1100) {
        self.ssrc = ssrc
        self.payloadType = payloadType
        self.bitrateKbps = max(1, bitrateKbps)
        self.startMs = startMs
        self.sequence = firstSequence
        self.maxPayload = max(64, maxPayload)
        filler = UInt64(ssrc) | 1
    }

    /// Bytes of one delta frame and of one keyframe (3 deltas), such that a 2-s group of
    /// pictures carries the target rate.
    var frameSizes: (delta: Int, key: Int) {
        let perGroup = Double(bitrateKbps) * 1000 / 8 * Double(Self.keyframeIntervalFrames) / Double(Self.framesPerSecond)
        let delta = max(16, Int(perGroup / Double(Self.keyframeIntervalFrames + 2)))
        return (delta, 3 * delta)
    }

    /// The next frame is a keyframe (a PLI from the SFU).
    public mutating func requestKeyframe() { keyframeRequested = true }

    /// When the next frame is due.
    public var nextFrameMs: UInt64 { startMs + frame * 1000 / UInt64(Self.framesPerSecond) }

    /// The packets of every frame due by `now`.
    public mutating func packets(upTo now: UInt64) -> [RTPPacket] {
        var out: [RTPPacket] = []
        // After a long stall (a suspended process) frames are skipped, not sent in a burst.
        if now > nextFrameMs + 1000 { frame = (now - startMs) * UInt64(Self.framesPerSecond) / 1000 }
        while nextFrameMs <= now {
            out += makeFrame()
            frame += 1
        }
        return out
    }

    private mutating func makeFrame() -> [RTPPacket] {
        let key = keyframeRequested || frame % UInt64(Self.keyframeIntervalFrames) == 0
        keyframeRequested = false
        let sizes = frameSizes
        var remaining = key ? sizes.key : sizes.delta
        let timestamp = UInt32(truncatingIfNeeded: frame * 90_000 / UInt64(Self.framesPerSecond))
        var packets: [RTPPacket] = []
        var first = true
        while remaining > 0 {
            let size = min(remaining, maxPayload)
            var payload = [UInt8](repeating: 0, count: size)
            // RFC 7741 §4.2: X=0, N=0, S on the first packet of the frame, PID 0.
            payload[0] = first ? 0x10 : 0x00
            var i = 1
            if first {
                // §4.3 / RFC 6386 §9.1 frame tag: P (bit 0) = 0 for keyframes; show_frame.
                let tag: [UInt8] = key ? [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01] : [0x11, 0x02, 0x00]
                for b in tag where i < size {
                    payload[i] = b
                    i += 1
                }
            }
            while i < size {
                filler = filler &* 6364136223846793005 &+ 1442695040888963407
                payload[i] = UInt8(truncatingIfNeeded: filler >> 56)
                i += 1
            }
            remaining -= size
            packets.append(RTPPacket(marker: remaining == 0, payloadType: payloadType, sequenceNumber: sequence,
                                     timestamp: timestamp, ssrc: ssrc, payload: payload))
            sequence &+= 1
            first = false
        }
        return packets
    }
}
