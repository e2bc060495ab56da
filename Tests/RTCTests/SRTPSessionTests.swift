import Testing
@testable import RTC

func rtpPacket(seq: UInt16, ssrc: UInt32 = 0x1234_5678, payload: Int = 1200) -> [UInt8] {
    var p: [UInt8] = [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xff), 0, 0, 0x10, 0,
                      UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xff), UInt8((ssrc >> 8) & 0xff), UInt8(ssrc & 0xff)]
    p += (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seq)) }
    return p
}

func rtcpReceiverReport(ssrc: UInt32 = 0xCAFE_BABE) -> [UInt8] {
    // RR with no report blocks: V=2, PT=201, length=1.
    [0x80, 201, 0, 1, UInt8(ssrc >> 24), UInt8((ssrc >> 16) & 0xff), UInt8((ssrc >> 8) & 0xff), UInt8(ssrc & 0xff)]
}

/// Keys from a real in-memory DTLS handshake.
func negotiatedKeys(_ profile: SRTPProfile) throws -> (client: SRTPKeyingMaterial, server: SRTPKeyingMaterial) {
    let p = try Pair(clientProfiles: [profile], serverProfiles: [profile])
    p.absorbClient(p.client.start(now: 0))
    p.run(now: 0)
    return (try #require(p.clientKeys), try #require(p.serverKeys))
}

@Suite struct SRTPSessionTests {
    @Test(arguments: SRTPProfile.allCases)
    func roundTripWithExportedKeys(profile: SRTPProfile) throws {
        let (client, server) = try negotiatedKeys(profile)
        #expect(client.profile == profile)
        let sender = try SRTPSession(profile: profile, key: client.localKey, salt: client.localSalt, direction: .outbound)
        let receiver = try SRTPSession(profile: profile, key: server.remoteKey, salt: server.remoteSalt, direction: .inbound)
        for seq in UInt16(65_530)...UInt16(65_535) {  // crosses into rollover below
            let rtp = rtpPacket(seq: seq)
            let srtp = try sender.protect(rtp: rtp)
            #expect(srtp.count == rtp.count + profile.rtpTagLength)
            #expect(srtp[12...] != rtp[12...])  // payload encrypted
            #expect(try receiver.unprotect(srtp: srtp) == rtp)
        }
        for seq in UInt16(0)...UInt16(5) {
            let rtp = rtpPacket(seq: seq)
            #expect(try receiver.unprotect(srtp: try sender.protect(rtp: rtp)) == rtp)
        }
        let rtcp = rtcpReceiverReport()
        let srtcp = try sender.protectRTCP(rtcp)
        #expect(srtcp.count == rtcp.count + profile.rtcpTrailerLength)
        #expect(try receiver.unprotectRTCP(srtcp) == rtcp)
        // The other direction uses the other keys.
        let back = try SRTPSession(profile: profile, key: server.localKey, salt: server.localSalt, direction: .outbound)
        let backIn = try SRTPSession(profile: profile, key: client.remoteKey, salt: client.remoteSalt, direction: .inbound)
        #expect(try backIn.unprotect(srtp: try back.protect(rtp: rtpPacket(seq: 9))) == rtpPacket(seq: 9))
    }

    @Test(arguments: SRTPProfile.allCases)
    func tamperedPacketFailsAuthentication(profile: SRTPProfile) throws {
        let (client, server) = try negotiatedKeys(profile)
        let sender = try SRTPSession(profile: profile, key: client.localKey, salt: client.localSalt, direction: .outbound)
        let receiver = try SRTPSession(profile: profile, key: server.remoteKey, salt: server.remoteSalt, direction: .inbound)
        var srtp = try sender.protect(rtp: rtpPacket(seq: 1))
        srtp[40] ^= 0x01
        do {
            _ = try receiver.unprotect(srtp: srtp)
            Issue.record("tampered packet accepted")
        } catch {
            #expect(error.status == .authFail)
            #expect(error.message.contains("srtp_err_status_auth_fail"))
        }
        var srtcp = try sender.protectRTCP(rtcpReceiverReport())
        srtcp[5] ^= 0x80
        #expect(throws: SRTPError.self) { try receiver.unprotectRTCP(srtcp) }
        // The session still works after a failure.
        let rtp = rtpPacket(seq: 2)
        #expect(try receiver.unprotect(srtp: try sender.protect(rtp: rtp)) == rtp)
    }

    @Test(arguments: SRTPProfile.allCases)
    func replayedPacketIsRejected(profile: SRTPProfile) throws {
        let (client, server) = try negotiatedKeys(profile)
        let sender = try SRTPSession(profile: profile, key: client.localKey, salt: client.localSalt, direction: .outbound)
        let receiver = try SRTPSession(profile: profile, key: server.remoteKey, salt: server.remoteSalt, direction: .inbound)
        let srtp = try sender.protect(rtp: rtpPacket(seq: 100))
        _ = try receiver.unprotect(srtp: srtp)
        do {
            _ = try receiver.unprotect(srtp: srtp)
            Issue.record("replay accepted")
        } catch {
            #expect(error.status == .replayFail)
            #expect(error.message.contains("srtp_err_status_replay_fail"))
        }
        // Far older than the 1024-packet window → replay_old.
        let old = try sender.protect(rtp: rtpPacket(seq: 101))
        for seq in UInt16(102)...UInt16(1200) { _ = try receiver.unprotect(srtp: try sender.protect(rtp: rtpPacket(seq: seq))) }
        #expect(throws: SRTPError.self) { try receiver.unprotect(srtp: old) }
        do { _ = try receiver.unprotect(srtp: old) } catch { #expect(error.status == .replayOld) }
    }

    @Test func retransmissionCanBeReprotected() throws {
        let keys = try negotiatedKeys(.aes128CMSHA1_80).client
        let sender = try SRTPSession(profile: .aes128CMSHA1_80, key: keys.localKey, salt: keys.localSalt, direction: .outbound)
        let first = try sender.protect(rtp: rtpPacket(seq: 7))
        let again = try sender.protect(rtp: rtpPacket(seq: 7))  // allow_repeat_tx
        #expect(first == again)
    }

    @Test func inPlaceFastPath() throws {
        let keys = try negotiatedKeys(.aeadAES128GCM).client
        let sender = try SRTPSession(profile: .aeadAES128GCM, key: keys.localKey, salt: keys.localSalt, direction: .outbound)
        let receiver = try SRTPSession(profile: .aeadAES128GCM, key: keys.localKey, salt: keys.localSalt, direction: .inbound)
        let rtp = rtpPacket(seq: 1, payload: 100)
        var buffer = [UInt8](repeating: 0, count: 1500)
        buffer.replaceSubrange(0..<rtp.count, with: rtp)
        let n = try buffer.withUnsafeMutableBytes { try sender.protect(rtpInPlace: $0, length: rtp.count) }
        #expect(n == rtp.count + 16)
        let m = try buffer.withUnsafeMutableBytes { try receiver.unprotect(srtpInPlace: $0, length: n) }
        #expect(Array(buffer[0..<m]) == rtp)
        // inout array variant keeps the buffer when capacity allows.
        var packet = rtpPacket(seq: 2, payload: 100)
        packet.reserveCapacity(1500)
        try sender.protect(rtp: &packet)
        try receiver.unprotect(srtp: &packet)
        #expect(packet == rtpPacket(seq: 2, payload: 100))
        // Not enough room for the tag.
        var tight = rtp
        #expect(throws: SRTPError.self) {
            try tight.withUnsafeMutableBytes { try sender.protect(rtpInPlace: $0, length: rtp.count) }
        }
    }

    @Test func badInputsThrowInsteadOfCrashing() throws {
        let key = [UInt8](repeating: 1, count: 16), salt = [UInt8](repeating: 2, count: 14)
        #expect(throws: SRTPError.self) { try SRTPSession(profile: .aes128CMSHA1_80, key: [1], salt: salt, direction: .inbound) }
        #expect(throws: SRTPError.self) { try SRTPSession(profile: .aeadAES128GCM, key: key, salt: salt, direction: .inbound) }
        let inbound = try SRTPSession(profile: .aes128CMSHA1_80, key: key, salt: salt, direction: .inbound)
        let outbound = try SRTPSession(profile: .aes128CMSHA1_80, key: key, salt: salt, direction: .outbound)
        #expect(throws: SRTPError.self) { try inbound.protect(rtp: rtpPacket(seq: 1)) }  // wrong direction
        #expect(throws: SRTPError.self) { try outbound.protect(rtp: [0x80, 0]) }  // too short
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0...300, using: &rng)
            var junk = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if n > 0 && Bool.random(using: &rng) { junk[0] = 0x80 | (junk[0] & 0x3f) }  // V=2
            _ = try? inbound.unprotect(srtp: junk)
            _ = try? inbound.unprotectRTCP(junk)
            _ = try? outbound.protect(rtp: junk)
            _ = try? outbound.protectRTCP(junk)
        }
        #expect(SRTPLibrary.version.contains("2."))
    }
}
