import Foundation
import Testing
@testable import RTC

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = s.filter { !$0.isWhitespace }.makeIterator()
    while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

/// `Fixtures/srtp-rfc3711.json`.
struct RFC3711Vectors: Decodable {
    struct Keystream: Decodable {
        var sessionKey: String
        var sessionSalt: String
        var ssrc: UInt32
        var rolloverCounter: UInt32
        var sequenceNumber: UInt16
        var keystreamFirst48: String
        var keystreamBlocksFEFF_to_FF01: String
    }
    struct KeyDerivation: Decodable {
        var masterKey: String
        var masterSalt: String
        var cipherKey: String
        var cipherSalt: String
        var authKey: String
    }
    var keystream: Keystream
    var keyDerivation: KeyDerivation
}

/// The EVP SRTP path (`EVPSRTP`, behind every `SRTPSession`'s RTP) against RFC 3711's vectors
/// and libsrtp2, byte for byte, with libsrtp2's acceptance rules (replay, rollover).
@Suite struct EVPSRTPTests {
    static let vectors: RFC3711Vectors = {
        do { return try Fixtures.load("srtp-rfc3711.json", as: RFC3711Vectors.self) } catch { fatalError("\(error)") }
    }()

    @Test func rfc3711KeyDerivationVectors() throws {
        let v = Self.vectors.keyDerivation
        let keys = try EVPSRTP.sessionKeys(key: hexBytes(v.masterKey), salt: hexBytes(v.masterSalt))
        #expect(keys.cipherKey == hexBytes(v.cipherKey))
        #expect(keys.salt == hexBytes(v.cipherSalt))
        #expect(keys.authKey == hexBytes(v.authKey))
    }

    /// RFC 3711 B.2: with SSRC 0 and index 0, the encrypted payload of zeros is the keystream,
    /// from counter block 0 through the 16-bit block counter's 0xFF01.
    @Test func rfc3711KeystreamVector() throws {
        let v = Self.vectors.keystream
        let context = try EVPSRTP(profile: .aes128CMSHA1_80, cipherKey: hexBytes(v.sessionKey), sessionSalt: hexBytes(v.sessionSalt),
                                  authKey: [UInt8](repeating: 0, count: 20), outbound: true)
        let payload = 16 * 0xFF02
        var packet = rtpPacket(seq: v.sequenceNumber, ssrc: v.ssrc, payload: 0) + [UInt8](repeating: 0, count: payload + 10)
        var length = 12 + payload
        let status = packet.withUnsafeMutableBufferPointer { context.protect($0.baseAddress!, length: &length) }
        #expect(status == EVPSRTP.ok)
        #expect(length == 12 + payload + 10)
        #expect(Array(packet[12..<60]) == hexBytes(v.keystreamFirst48))
        #expect(Array(packet[(12 + 16 * 0xFEFF)..<(12 + 16 * 0xFF02)]) == hexBytes(v.keystreamBlocksFEFF_to_FF01))
    }

    /// Packets covering a sequence wrap (ROC 0 → 1), late packets from before it, two SSRCs,
    /// CSRCs, a header extension, empty and odd-sized payloads: EVP and libsrtp2 produce the
    /// same bytes, and each unprotects the other's.
    @Test(arguments: SRTPProfile.allCases)
    func matchesLibSRTPByteForByte(profile: SRTPProfile) throws {
        let key = (0..<16).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
        let salt = (0..<profile.saltLength).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ 9) }
        func session(_ direction: SRTPSession.Direction, _ implementation: SRTPSession.RTPImplementation) throws -> SRTPSession {
            try SRTPSession(profile: profile, key: key, salt: salt, direction: direction, rtpImplementation: implementation)
        }
        let reference = try session(.outbound, .libsrtp2), fast = try session(.outbound, .openSSLEVP)
        let referenceIn = try session(.inbound, .libsrtp2), fastIn = try session(.inbound, .openSSLEVP)
        var checked = 0
        for ssrc: UInt32 in [0x1234_5678, 0xDEAD_BEEF] {
            for seq in UInt16(65_500)...UInt16(65_535) { try check(rtpPacket(seq: seq, ssrc: ssrc, payload: Int(seq % 50) * 31)) }
            for seq in UInt16(0)...UInt16(40) { try check(rtpPacket(seq: seq, ssrc: ssrc, payload: 1200)) }
            // Late: from before the wrap, so ROC 0 again.
            for seq in UInt16(65_450)..<UInt16(65_460) { try check(rtpPacket(seq: seq, ssrc: ssrc, payload: 200)) }
            var withExtras = rtpPacket(seq: 41, ssrc: ssrc, payload: 100)
            withExtras[0] = 0x80 | 0x10 | 0x02  // X=1, CC=2
            withExtras.insert(contentsOf: [1, 2, 3, 4, 5, 6, 7, 8, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0], at: 12)
            try check(withExtras)
            try check(rtpPacket(seq: 42, ssrc: ssrc, payload: 0))
        }
        #expect(checked == 2 * (36 + 41 + 10 + 2))

        func check(_ rtp: [UInt8]) throws {
            let a = try reference.protect(rtp: rtp)
            let b = try fast.protect(rtp: rtp)
            #expect(a == b, "seq \(rtp[2]) \(rtp[3])")
            #expect(try referenceIn.unprotect(srtp: b) == rtp)
            #expect(try fastIn.unprotect(srtp: a) == rtp)
            checked += 1
        }
    }

    /// Rejections match libsrtp2's: a repeat is `replay_fail`, an index older than the window
    /// `replay_old`, a forged tag `auth_fail`; none of them moves the receiver's state.
    @Test(arguments: SRTPProfile.allCases)
    func replayAndForgeryAreRejectedLikeLibSRTP(profile: SRTPProfile) throws {
        let key = (0..<16).map { UInt8($0) }, salt = (0..<profile.saltLength).map { UInt8(0xA0 + $0) }
        let sender = try SRTPSession(profile: profile, key: key, salt: salt, direction: .outbound)
        let receivers = try [SRTPSession.RTPImplementation.openSSLEVP, .libsrtp2].map {
            try SRTPSession(profile: profile, key: key, salt: salt, direction: .inbound, replayWindow: 128, rtpImplementation: $0)
        }
        let packets = try (0..<400).map { try sender.protect(rtp: rtpPacket(seq: UInt16(1000 + $0), payload: 64)) }
        for receiver in receivers {
            func status(_ srtp: [UInt8]) -> SRTPStatus? {
                do { _ = try receiver.unprotect(srtp: srtp); return nil } catch { return error.status }
            }
            // In order except 100 and 350, which arrive later.
            for (i, p) in packets.enumerated() where i != 100 && i != 350 { #expect(status(p) == nil) }
            #expect(status(packets[399]) == .replayFail)
            #expect(status(packets[300]) == .replayFail)
            var forged = packets[350]
            forged[forged.count - 1] ^= 1
            #expect(status(forged) == .authFail)
            #expect(status(packets[350]) == nil, "49 behind, within the 128-packet window, and the forgery did not mark it")
            #expect(status(packets[100]) == .replayOld, "299 behind the highest, outside the window")
        }
    }

    /// The rollover counter follows the sequence number through several wraps, with reordering
    /// across each wrap, and packets from one ROC before are still authenticated with it.
    @Test(arguments: SRTPProfile.allCases)
    func rolloverCounterAcrossWraps(profile: SRTPProfile) throws {
        let key = (0..<16).map { UInt8(0x40 + $0) }, salt = (0..<profile.saltLength).map { UInt8(0x10 + $0) }
        let sender = try EVPSRTP(profile: profile, key: key, salt: salt, outbound: true)
        let receiver = try EVPSRTP(profile: profile, key: key, salt: salt, outbound: false)
        let reference = try SRTPSession(profile: profile, key: key, salt: salt, direction: .inbound, rtpImplementation: .libsrtp2)
        var index: UInt64 = 60_000
        var sent = 0
        while index < 3 * 65_536 + 100 {
            // Two packets swapped around every wrap: 65535 after 0.
            let batch = index & 0xFFFF == 0xFFFE ? [index, index + 2, index + 1] : [index]
            for i in batch {
                let seq = UInt16(truncatingIfNeeded: i)
                let rtp = rtpPacket(seq: seq, payload: 32)
                var buffer = rtp + [UInt8](repeating: 0, count: 16)
                var length = rtp.count
                #expect(buffer.withUnsafeMutableBufferPointer { sender.protect($0.baseAddress!, length: &length) } == EVPSRTP.ok)
                let srtp = Array(buffer[0..<length])
                #expect(try reference.unprotect(srtp: srtp) == rtp, "index \(i)")
                var inbound = srtp
                var inLength = srtp.count
                #expect(inbound.withUnsafeMutableBufferPointer { receiver.unprotect($0.baseAddress!, length: &inLength) } == EVPSRTP.ok)
                #expect(Array(inbound[0..<inLength]) == rtp)
                sent += 1
            }
            index += UInt64(batch.count == 3 ? 3 : 1) + (index > 70_000 && index & 0xFFFF < 0xFF00 ? 97 : 0)
        }
        #expect(sent > 1000)
        #expect(receiver.highestIndex(ssrc: 0x1234_5678)! >> 16 == 3)
        #expect(sender.highestIndex(ssrc: 0x1234_5678) == receiver.highestIndex(ssrc: 0x1234_5678))
    }
}
