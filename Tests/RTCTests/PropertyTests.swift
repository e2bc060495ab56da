import Identity
import Testing
import RTC

/// Random well-formed values for `decode(encode(x)) == x`, from a seeded generator.
enum Gen {
    static func address(_ rng: inout SplitMix64) -> SocketAddress {
        let ip: IPAddress = Bool.random(using: &rng)
            ? .v4(UInt32.random(in: 0...UInt32.max, using: &rng))
            : .v6(high: UInt64.random(in: 0...UInt64.max, using: &rng), low: UInt64.random(in: 0...UInt64.max, using: &rng))
        return SocketAddress(ip: ip, port: UInt16.random(in: 0...UInt16.max, using: &rng))
    }

    static func stunAttribute(_ rng: inout SplitMix64) -> STUNAttribute {
        switch Int.random(in: 0..<12, using: &rng) {
        case 0: return .username(rng.ascii(Int.random(in: 0...80, using: &rng)))
        case 1: return .priority(UInt32.random(in: 0...UInt32.max, using: &rng))
        case 2: return .useCandidate
        case 3: return .iceControlling(UInt64.random(in: 0...UInt64.max, using: &rng))
        case 4: return .iceControlled(UInt64.random(in: 0...UInt64.max, using: &rng))
        case 5: return .xorMappedAddress(address(&rng))
        case 6: return .mappedAddress(address(&rng))
        case 7: return .errorCode(STUNErrorCode(code: UInt16.random(in: 300...699, using: &rng), reason: rng.ascii(Int.random(in: 0...30, using: &rng))))
        case 8: return .unknownAttributes((0..<Int.random(in: 0...5, using: &rng)).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) })
        case 9: return .software(rng.ascii(Int.random(in: 0...40, using: &rng)))
        default:
            let type = Bool.random(using: &rng) ? UInt16.random(in: 0x0100...0x7FFF, using: &rng) : UInt16.random(in: 0x8100...0xFFFF, using: &rng)
            return .other(type: type, value: rng.bytes(Int.random(in: 0...40, using: &rng)))
        }
    }

    static func stunMessage(_ rng: inout SplitMix64) -> STUNMessage {
        STUNMessage(method: STUNMethod(rawValue: UInt16.random(in: 0...0xFFF, using: &rng)),
                    messageClass: STUNMessageClass.allCases.randomElement(using: &rng)!,
                    transactionID: .random(using: &rng),
                    attributes: (0..<Int.random(in: 0...8, using: &rng)).map { _ in stunAttribute(&rng) })
    }

    static func rtpExtension(_ rng: inout SplitMix64) -> RTPHeaderExtension {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0:
            return .oneByte((0..<Int.random(in: 0...6, using: &rng)).map { _ in
                RTPExtensionElement(id: UInt8.random(in: 1...14, using: &rng), value: rng.bytes(Int.random(in: 1...16, using: &rng)))
            })
        case 1:
            return .twoByte(appBits: UInt8.random(in: 0...15, using: &rng), (0..<Int.random(in: 0...6, using: &rng)).map { _ in
                RTPExtensionElement(id: UInt8.random(in: 1...255, using: &rng), value: rng.bytes(Int.random(in: 0...40, using: &rng)))
            })
        default:
            var profile = UInt16.random(in: 0...UInt16.max, using: &rng)
            if profile == 0xBEDE || profile & 0xFFF0 == 0x1000 { profile = 0 }
            return .raw(profile: profile, data: rng.bytes(4 * Int.random(in: 0...8, using: &rng)))
        }
    }

    static func rtpPacket(_ rng: inout SplitMix64) -> RTPPacket {
        RTPPacket(marker: Bool.random(using: &rng), payloadType: UInt8.random(in: 0...127, using: &rng),
                  sequenceNumber: UInt16.random(in: 0...UInt16.max, using: &rng), timestamp: UInt32.random(in: 0...UInt32.max, using: &rng),
                  ssrc: UInt32.random(in: 0...UInt32.max, using: &rng),
                  csrcs: (0..<Int.random(in: 0...15, using: &rng)).map { _ in UInt32.random(in: 0...UInt32.max, using: &rng) },
                  headerExtension: Bool.random(using: &rng) ? rtpExtension(&rng) : nil,
                  payload: rng.bytes(Int.random(in: 0...300, using: &rng)),
                  paddingLength: Bool.random(using: &rng) ? 0 : UInt8.random(in: 1...255, using: &rng))
    }

    static func u32(_ rng: inout SplitMix64) -> UInt32 { UInt32.random(in: 0...UInt32.max, using: &rng) }

    static func reportBlock(_ rng: inout SplitMix64) -> RTCPReportBlock {
        RTCPReportBlock(ssrc: u32(&rng), fractionLost: UInt8.random(in: 0...255, using: &rng),
                        cumulativeLost: Int32.random(in: -(1 << 23)..<(1 << 23), using: &rng),
                        extendedHighestSequence: u32(&rng), jitter: u32(&rng), lastSenderReport: u32(&rng),
                        delaySinceLastSenderReport: u32(&rng))
    }

    static func rtcpPacket(_ rng: inout SplitMix64) -> RTCPPacket {
        let blocks = (0..<Int.random(in: 0...4, using: &rng)).map { _ in reportBlock(&rng) }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0:
            return .senderReport(RTCPSenderReport(ssrc: u32(&rng), ntpTimestamp: UInt64.random(in: 0...UInt64.max, using: &rng),
                                                  rtpTimestamp: u32(&rng), packetCount: u32(&rng), octetCount: u32(&rng), reports: blocks,
                                                  profileExtensions: rng.bytes(4 * Int.random(in: 0...2, using: &rng))))
        case 1:
            return .receiverReport(RTCPReceiverReport(ssrc: u32(&rng), reports: blocks))
        case 2:
            return .sourceDescription(RTCPSourceDescription(chunks: (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                .init(ssrc: u32(&rng), items: (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                    .init(type: UInt8.random(in: 1...8, using: &rng), value: Array(rng.ascii(Int.random(in: 0...40, using: &rng)).utf8))
                })
            }))
        case 3:
            return .goodbye(RTCPGoodbye(ssrcs: (0..<Int.random(in: 0...4, using: &rng)).map { _ in u32(&rng) },
                                        reason: Bool.random(using: &rng) ? rng.ascii(Int.random(in: 0...50, using: &rng)) : nil))
        case 4:
            return .nack(RTCPNack(senderSSRC: u32(&rng), mediaSSRC: u32(&rng), pairs: (0..<Int.random(in: 0...5, using: &rng)).map { _ in
                .init(packetID: UInt16.random(in: 0...UInt16.max, using: &rng), lostBitmask: UInt16.random(in: 0...UInt16.max, using: &rng))
            }))
        case 5:
            return .pictureLossIndication(RTCPPictureLossIndication(senderSSRC: u32(&rng), mediaSSRC: u32(&rng)))
        case 6:
            return .fullIntraRequest(RTCPFullIntraRequest(senderSSRC: u32(&rng), mediaSSRC: u32(&rng), entries: (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                .init(ssrc: u32(&rng), sequenceNumber: UInt8.random(in: 0...255, using: &rng))
            }))
        case 7:
            let bitrate = UInt64.random(in: 0..<(1 << 18), using: &rng) << UInt64.random(in: 0...40, using: &rng)
            return .receiverEstimatedMaxBitrate(RTCPReceiverEstimatedMaxBitrate(senderSSRC: u32(&rng), bitrate: bitrate,
                                                                                ssrcs: (0..<Int.random(in: 0...4, using: &rng)).map { _ in u32(&rng) }))
        case 8:
            return .transportFeedback(RTCPTransportFeedback(
                senderSSRC: u32(&rng), mediaSSRC: u32(&rng), baseSequenceNumber: UInt16.random(in: 0...UInt16.max, using: &rng),
                referenceTime: Int32.random(in: -(1 << 23)..<(1 << 23), using: &rng), feedbackPacketCount: UInt8.random(in: 0...255, using: &rng),
                packets: (0..<Int.random(in: 0...60, using: &rng)).map { _ in
                    switch Int.random(in: 0..<4, using: &rng) {
                    case 0: .notReceived
                    case 1: .received(delta: Int16.random(in: Int16.min...Int16.max, using: &rng))
                    default: .received(delta: Int16.random(in: 0...255, using: &rng))
                    }
                }))
        default:
            let type = [192, 193, 195, 204, 207, 208].randomElement(using: &rng)!
            return .raw(RTCPRawPacket(count: UInt8.random(in: 0...31, using: &rng), packetType: UInt8(type),
                                      body: rng.bytes(4 * Int.random(in: 0...5, using: &rng))))
        }
    }
}

@Suite struct PropertyTests {
    @Test func stunRoundTrips() throws {
        var rng = SplitMix64(seed: 0x57E1)
        for _ in 0..<2_000 {
            let message = Gen.stunMessage(&rng)
            #expect(try STUNMessage(decoding: message.encoded()) == message)

            let key = Array(rng.ascii(Int.random(in: 1...30, using: &rng)).utf8)
            let padding = UInt8.random(in: 0...255, using: &rng)
            let signed = message.encoded(integrityKey: key, fingerprint: true, padding: padding)
            let decoded = try STUNMessage(decoding: signed)
            #expect(Array(decoded.attributes.dropLast(2)) == message.attributes)
            #expect(decoded.hasMessageIntegrity && decoded.hasFingerprint)
            #expect(STUNMessage.checkIntegrity(signed[...], key: key) == .valid)
            #expect(STUNMessage.checkFingerprint(signed[...]) == .valid)
            // Re-encoding the decoded message verbatim gives the same bytes.
            #expect(decoded.encoded(padding: padding) == signed)
        }
    }

    @Test func rtpRoundTrips() throws {
        var rng = SplitMix64(seed: 0x0A7B)
        for _ in 0..<2_000 {
            let packet = Gen.rtpPacket(&rng)
            let bytes = packet.encoded()
            #expect(try RTPPacket(decoding: bytes) == packet)
            // The in-place view agrees with the full decoder.
            var buffer = try RTPPacketBuffer(bytes)
            #expect(buffer.ssrc == packet.ssrc && buffer.sequenceNumber == packet.sequenceNumber)
            #expect(Array(buffer.payload) == packet.payload)
            buffer.ssrc = ~packet.ssrc
            buffer.sequenceNumber = packet.sequenceNumber &+ 1
            var expected = packet
            expected.ssrc = ~packet.ssrc
            expected.sequenceNumber = packet.sequenceNumber &+ 1
            #expect(try buffer.decoded() == expected)
            #expect(buffer.bytes.count == bytes.count)
        }
    }

    @Test func rtcpCompoundRoundTrips() throws {
        var rng = SplitMix64(seed: 0x2C9)
        for _ in 0..<2_000 {
            let packets = (0..<Int.random(in: 1...5, using: &rng)).map { _ in Gen.rtcpPacket(&rng) }
            let bytes = RTCPPacket.encodeCompound(packets)
            #expect(bytes.count % 4 == 0)
            #expect(try RTCPPacket.decodeCompound(bytes) == packets)
            #expect(DatagramKind(classifying: bytes) == .rtcp)
        }
    }

    @Test func nackListRoundTrips() {
        var rng = SplitMix64(seed: 0x1AC)
        for _ in 0..<1_000 {
            // Ascending (with wrap) distinct sequence numbers, as a receiver finds gaps.
            var seq = UInt16.random(in: 0...UInt16.max, using: &rng)
            var lost: [UInt16] = []
            for _ in 0..<Int.random(in: 1...40, using: &rng) {
                lost.append(seq)
                seq &+= UInt16.random(in: 1...40, using: &rng)
            }
            let nack = RTCPNack(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: lost)
            #expect(nack.lostSequenceNumbers == lost)
        }
    }
}
