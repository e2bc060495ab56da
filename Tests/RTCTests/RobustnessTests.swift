import Identity
import Testing
import RTC

/// Random and damaged inputs to every parser: each may throw or return anything, but must not trap.
@Suite struct RobustnessTests {
    /// Valid datagrams of every kind, to damage.
    static func seeds(_ rng: inout SplitMix64) -> [[UInt8]] {
        var out = STUNTests.file.vectors.map { unhex($0.hex) }
        var peer = Peer()
        out.append(peer.check(useCandidate: true).1)
        out.append(RTPTests.chromeLike)
        for _ in 0..<20 {
            out.append(Gen.rtpPacket(&rng).encoded())
            out.append(RTCPPacket.encodeCompound((0..<3).map { _ in Gen.rtcpPacket(&rng) }))
            out.append(Gen.stunMessage(&rng).encoded(integrityKey: [1], fingerprint: true))
        }
        return out
    }

    static func damage(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var b = bytes
        switch Int.random(in: 0..<4, using: &rng) {
        case 0 where !b.isEmpty:
            b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng)))
        case 1 where !b.isEmpty:
            for _ in 0..<Int.random(in: 1...4, using: &rng) { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
        case 2:
            b += rng.bytes(Int.random(in: 1...8, using: &rng))
        default:
            b = rng.bytes(Int.random(in: 0...300, using: &rng))
        }
        return b
    }

    static func exerciseAll(_ bytes: [UInt8], agent: inout ICELiteAgent) {
        _ = DatagramKind(classifying: bytes)
        _ = try? STUNMessage(decoding: bytes)
        _ = STUNMessage.checkIntegrity(bytes[...], key: [1, 2, 3])
        _ = STUNMessage.checkFingerprint(bytes[...])
        _ = ICELiteAgent.localUfrag(of: bytes)
        _ = agent.receive(bytes, from: SocketAddress(ip: .v4(1), port: 1), now: 1)
        _ = try? RTPPacket(decoding: bytes)
        if var buffer = try? RTPPacketBuffer(bytes) {
            _ = buffer.extensionValue(id: 3)
            buffer.setExtensionValue(id: 3, to: [1, 2])
            buffer.remapExtensionIDs(RTPExtensionIDMap([1: 2, 2: 15, 3: 200, 4: 4]))
            buffer.payloadType = 0xFF
            _ = try? buffer.decoded()
        }
        _ = try? RTCPPacket.decodeCompound(bytes)
        // Also with a sliced (non-zero start index) view.
        if bytes.count > 1 {
            let slice = bytes[1...]
            _ = try? STUNMessage(decoding: slice)
            _ = STUNMessage.checkIntegrity(slice, key: [1])
            _ = STUNMessage.checkFingerprint(slice)
            _ = try? RTPPacket(decoding: slice)
            _ = try? RTCPPacket.decodeCompound(slice)
            _ = DatagramKind(classifying: slice)
        }
    }

    @Test func binaryParsersSurviveRandomAndDamagedInput() {
        var rng = SplitMix64(seed: 0xF022)
        let seeds = RobustnessTests.seeds(&rng)
        var agent = ICELiteAgent(localUfrag: "srv1", localPassword: "server-password-0123456789", now: 0)
        for i in 0..<20_000 {
            let bytes = i % 4 == 0 ? rng.bytes(Int.random(in: 0...64, using: &rng))
                                   : RobustnessTests.damage(seeds.randomElement(using: &rng)!, &rng)
            RobustnessTests.exerciseAll(bytes, agent: &agent)
        }
    }

    /// Drip-feed: every prefix of every seed, one byte at a time.
    @Test func everyPrefixOfEverySeed() {
        var rng = SplitMix64(seed: 0xD819)
        var agent = ICELiteAgent(localUfrag: "srv1", localPassword: "x", now: 0)
        for seed in RobustnessTests.seeds(&rng) {
            for n in 0...seed.count { RobustnessTests.exerciseAll(Array(seed.prefix(n)), agent: &agent) }
        }
    }

    @Test func sdpParserAndAnswererSurviveDamagedOffers() throws {
        var rng = SplitMix64(seed: 0x5D9)
        let texts = try SDPTests.offers.map { try Fixtures.text("sdp/" + $0) }
        let vocabulary = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:", "a=extmap:", "a=ssrc:", "a=rid:", "a=simulcast:", "m=", "a=group:",
                          "a=fingerprint:", "a=setup:", "a=msid:", "a=ssrc-group:", " ", "/", ";", ":", "=", "~", ",", "\r\n", "\n", "\r",
                          "999999999999", "-1", "é", "\u{0}", "*", "apt=", "profile-level-id=", "packetization-mode=1"]
        var parsed = 0
        for i in 0..<3_000 {
            var lines = texts[i % texts.count].components(separatedBy: "\r\n")
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                let at = Int.random(in: 0..<lines.count, using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0: lines.remove(at: at); if lines.isEmpty { lines = [""] }
                case 1: lines[at] = String(lines[at].prefix(Int.random(in: 0...max(0, lines[at].count), using: &rng)))
                case 2: lines[at] += vocabulary.randomElement(using: &rng)!
                case 3: lines.insert(vocabulary.randomElement(using: &rng)! + vocabulary.randomElement(using: &rng)!, at: at)
                default: lines.swapAt(at, Int.random(in: 0..<lines.count, using: &rng))
                }
            }
            let text = lines.joined(separator: "\r\n")
            guard let offer = try? SessionDescription(parsing: text) else { continue }
            parsed += 1
            _ = offer.serialized
            if let answer = try? SessionDescription.answer(to: offer, options: SDPTests.options()) {
                _ = try? SessionDescription(parsing: answer.serialized)
            }
        }
        #expect(parsed > 100)  // the damage left enough offers intact to reach the answerer
        // Random bytes as text.
        for _ in 0..<2_000 {
            _ = try? SessionDescription(parsing: String(decoding: rng.bytes(Int.random(in: 0...200, using: &rng)), as: UTF8.self))
        }
    }
}
