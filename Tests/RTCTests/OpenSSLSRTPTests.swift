import Testing
@testable import RTC

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = s.filter { !$0.isWhitespace }.makeIterator()
    while let a = it.next(), let b = it.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

@Suite struct OpenSSLSRTPTests {
    @Test func rfc3711KeyDerivationVectors() throws {
        // RFC 3711 Appendix B.3.
        let keys = try OpenSSLSRTPProtector.sessionKeys(
            key: hexBytes("E1F97A0D3E018BE0D64FA32C06DE4139"), salt: hexBytes("0EC675AD498AFEEBB6960B3AABE6"))
        #expect(keys.cipherKey == hexBytes("C61E7A93744F39EE10734AFE3FF7A087"))
        #expect(keys.salt == hexBytes("30CBBC08863D8C85D49DB34A9AE1"))
        #expect(keys.authKey == hexBytes("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"))
    }

    @Test func matchesLibSRTPByteForByte() throws {
        let key = (0..<16).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }, salt = (0..<14).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ 9) }
        let reference = try SRTPSession(profile: .aes128CMSHA1_80, key: key, salt: salt, direction: .outbound)
        let fast = try OpenSSLSRTPProtector(key: key, salt: salt)
        let inbound = try SRTPSession(profile: .aes128CMSHA1_80, key: key, salt: salt, direction: .inbound)
        var checked = 0
        // Two SSRCs, a sequence wrap (ROC 0 → 1), CSRCs, a header extension, empty and odd payloads.
        for ssrc: UInt32 in [0x1234_5678, 0xDEAD_BEEF] {
            for seq in UInt16(65_500)...UInt16(65_535) { try check(rtpPacket(seq: seq, ssrc: ssrc, payload: Int(seq % 50) * 31)) }
            for seq in UInt16(0)...UInt16(40) { try check(rtpPacket(seq: seq, ssrc: ssrc, payload: 1200)) }
            var withExtras = rtpPacket(seq: 41, ssrc: ssrc, payload: 100)
            withExtras[0] = 0x80 | 0x10 | 0x02  // X=1, CC=2
            withExtras.insert(contentsOf: [1, 2, 3, 4, 5, 6, 7, 8, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0], at: 12)
            try check(withExtras)
            try check(rtpPacket(seq: 42, ssrc: ssrc, payload: 0))
        }
        #expect(checked == 2 * (36 + 41 + 2))

        func check(_ rtp: [UInt8]) throws {
            let a = try reference.protect(rtp: rtp)
            let b = try fast.protect(rtp: rtp)
            #expect(a == b, "seq \(rtp[2]) \(rtp[3])")
            #expect(try inbound.unprotect(srtp: b) == rtp)
            checked += 1
        }
    }
}
