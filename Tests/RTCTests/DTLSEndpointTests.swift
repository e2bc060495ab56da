import Testing
@testable import RTC

/// Two endpoints wired back to back in memory; the test decides what reaches whom.
final class Pair {
    let client: DTLSEndpoint
    let server: DTLSEndpoint
    var clientEvents: [DTLSEvent] = []
    var serverEvents: [DTLSEvent] = []
    var toServer: [[UInt8]] = []
    var toClient: [[UInt8]] = []
    var clientTimeout: UInt64?
    var serverTimeout: UInt64?

    init(clientExpects: DTLSFingerprint? = nil, serverExpects: DTLSFingerprint? = nil,
         clientProfiles: [SRTPProfile] = [.aeadAES128GCM, .aes128CMSHA1_80],
         serverProfiles: [SRTPProfile] = [.aeadAES128GCM, .aes128CMSHA1_80],
         initialTimeoutMillis: UInt32 = 1000) throws {
        let clientCert = try DTLSCertificate()
        let serverCert = try DTLSCertificate()
        client = try DTLSEndpoint(configuration: .init(
            role: .client, certificate: clientCert, remoteFingerprint: clientExpects ?? serverCert.fingerprint,
            srtpProfiles: clientProfiles, initialRetransmitTimeoutMillis: initialTimeoutMillis))
        server = try DTLSEndpoint(configuration: .init(
            role: .server, certificate: serverCert, remoteFingerprint: serverExpects ?? clientCert.fingerprint,
            srtpProfiles: serverProfiles, initialRetransmitTimeoutMillis: initialTimeoutMillis))
    }

    func absorbClient(_ o: DTLSOutput) { toServer += o.datagrams; clientEvents += o.events; clientTimeout = o.nextTimeout }
    func absorbServer(_ o: DTLSOutput) { toClient += o.datagrams; serverEvents += o.events; serverTimeout = o.nextTimeout }

    /// Delivers everything in flight, both ways, until quiet. `drop` may discard a datagram.
    func run(now: UInt64, drop: (_ toServer: Bool, _ datagram: [UInt8]) -> Bool = { _, _ in false }) {
        var rounds = 0
        while (!toServer.isEmpty || !toClient.isEmpty) && rounds < 100 {
            rounds += 1
            let s = toServer; toServer = []
            for d in s where !drop(true, d) { absorbServer(server.receive(datagram: d, now: now)) }
            let c = toClient; toClient = []
            for d in c where !drop(false, d) { absorbClient(client.receive(datagram: d, now: now)) }
        }
    }

    var clientKeys: SRTPKeyingMaterial? { keys(clientEvents) }
    var serverKeys: SRTPKeyingMaterial? { keys(serverEvents) }
    private func keys(_ events: [DTLSEvent]) -> SRTPKeyingMaterial? {
        for case .connected(let k) in events { return k }
        return nil
    }
    func failure(_ events: [DTLSEvent]) -> DTLSError? {
        for case .failed(let e) in events { return e }
        return nil
    }
}

@Suite struct CertificateTests {
    @Test func fingerprintFormatAndParse() throws {
        let cert = try DTLSCertificate()
        let hex = cert.fingerprint.hex
        #expect(hex.count == 32 * 3 - 1)
        #expect(hex == hex.uppercased())
        #expect(hex.split(separator: ":").count == 32)
        #expect(try DTLSFingerprint(sdp: "sha-256 " + hex.lowercased()) == cert.fingerprint)
        #expect(try DTLSFingerprint(sdp: hex) == cert.fingerprint)
        #expect(cert.fingerprint.sdpValue.hasPrefix("sha-256 "))
        #expect(cert.der.count > 100)
        #expect(try DTLSCertificate().fingerprint != cert.fingerprint)
    }

    @Test func badFingerprintsAreRejectedWithAReason() {
        #expect(throws: DTLSError.self) { try DTLSFingerprint(sdp: "sha-1 AB:CD") }
        #expect(throws: DTLSError.self) { try DTLSFingerprint(sdp: "sha-256 AB:CD") }
        #expect(throws: DTLSError.self) { try DTLSFingerprint(sdp: "sha-256 " + String(repeating: "ZZ:", count: 31) + "ZZ") }
        #expect(throws: DTLSError.self) { try DTLSFingerprint(sdp: "") }
        do {
            _ = try DTLSFingerprint(sdp: "md5 00")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.message.contains("md5"))
        }
    }
}

@Suite struct DTLSHandshakeTests {
    @Test func handshakeInMemoryAgreesOnProfileAndKeys() throws {
        let p = try Pair()
        #expect(p.server.start(now: 0).datagrams.isEmpty)  // a server waits
        let first = p.client.start(now: 0)
        #expect(!first.datagrams.isEmpty)
        #expect(first.nextTimeout == 1000)  // 1 s initial retransmission timeout
        p.absorbClient(first)
        p.run(now: 5)
        #expect(p.client.state == .connected)
        #expect(p.server.state == .connected)
        let c = try #require(p.clientKeys), s = try #require(p.serverKeys)
        #expect(c.profile == .aeadAES128GCM)
        #expect(s.profile == .aeadAES128GCM)
        #expect(c.localKey == s.remoteKey && c.localSalt == s.remoteSalt)
        #expect(c.remoteKey == s.localKey && c.remoteSalt == s.localSalt)
        #expect(c.localKey != c.remoteKey)
        #expect(c.localKey.count == 16 && c.localSalt.count == 12)
        // All datagrams respected the MTU.
        #expect(p.failure(p.clientEvents) == nil && p.failure(p.serverEvents) == nil)
    }

    @Test func negotiatesCMWhenThatIsAllTheServerTakes() throws {
        let p = try Pair(serverProfiles: [.aes128CMSHA1_80])
        p.absorbClient(p.client.start(now: 0))
        p.run(now: 0)
        let c = try #require(p.clientKeys), s = try #require(p.serverKeys)
        #expect(c.profile == .aes128CMSHA1_80 && s.profile == .aes128CMSHA1_80)
        #expect(c.localSalt.count == 14)
        #expect(c.localKey == s.remoteKey && c.localSalt == s.remoteSalt)
    }

    @Test func datagramsRespectTheMTU() throws {
        let p = try Pair()
        var sizes: [Int] = []
        p.absorbClient(p.client.start(now: 0))
        p.run(now: 0) { _, d in sizes.append(d.count); return false }
        #expect(p.client.state == .connected)
        #expect(sizes.allSatisfy { $0 <= 1200 })
        // With a small MTU OpenSSL fragments the certificate flight.
        let cert = try DTLSCertificate(), peer = try DTLSCertificate()
        let small = try DTLSEndpoint(configuration: .init(role: .client, certificate: cert, remoteFingerprint: peer.fingerprint, mtu: 300))
        let server = try DTLSEndpoint(configuration: .init(role: .server, certificate: peer, remoteFingerprint: cert.fingerprint, mtu: 300))
        var toServer = small.start(now: 0).datagrams, toClient: [[UInt8]] = []
        var all: [Int] = []
        for _ in 0..<20 where !(toServer.isEmpty && toClient.isEmpty) {
            for d in toServer { all.append(d.count); toClient += server.receive(datagram: d, now: 0).datagrams }
            toServer = []
            for d in toClient { all.append(d.count); toServer += small.receive(datagram: d, now: 0).datagrams }
            toClient = []
        }
        #expect(small.state == .connected && server.state == .connected)
        #expect(all.allSatisfy { $0 <= 300 })
        #expect(all.count > 6)
    }

    @Test func serverRejectsWrongClientFingerprint() throws {
        let stranger = try DTLSCertificate()
        let p = try Pair(serverExpects: stranger.fingerprint)
        p.absorbClient(p.client.start(now: 0))
        p.run(now: 0)
        #expect(p.server.state == .failed)
        #expect(p.serverKeys == nil)
        let error = try #require(p.failure(p.serverEvents))
        #expect(error.code == .fingerprintMismatch)
        #expect(error.message.contains(stranger.fingerprint.hex))
        // The client hears a fatal alert and fails too, without keys.
        #expect(p.client.state == .failed)
        #expect(p.clientKeys == nil)
        #expect(p.failure(p.clientEvents)?.code == .fatalAlert)
    }

    @Test func clientRejectsWrongServerFingerprint() throws {
        let stranger = try DTLSCertificate()
        let p = try Pair(clientExpects: stranger.fingerprint)
        p.absorbClient(p.client.start(now: 0))
        p.run(now: 0)
        #expect(p.client.state == .failed)
        #expect(p.clientKeys == nil)
        #expect(p.failure(p.clientEvents)?.code == .fingerprintMismatch)
        #expect(p.serverKeys == nil)
        #expect(p.server.state == .failed)
        // Inputs after failure are ignored.
        #expect(p.client.receive(datagram: [22, 254, 253], now: 1) == DTLSOutput())
        #expect(p.client.handleTimeout(now: 10_000) == DTLSOutput())
    }

    @Test func noCommonProfileFails() throws {
        let p = try Pair(clientProfiles: [.aeadAES128GCM], serverProfiles: [.aes128CMSHA1_80])
        p.absorbClient(p.client.start(now: 0))
        p.run(now: 0)
        #expect(p.clientKeys == nil)
        #expect(p.client.state == .failed)
        #expect(p.failure(p.clientEvents)?.code == .noSRTPProfile)
    }

    @Test func lostFlightIsRetransmittedAfterTheTimeout() async throws {
        // OpenSSL checks expiry against the real clock, so the test waits for real; the timeout is
        // long enough that a loaded machine does not pass it before the "too early" check.
        let p = try Pair(initialTimeoutMillis: 2000)
        let started = ContinuousClock.now
        let hello = p.client.start(now: 0)
        let deadline = try #require(hello.nextTimeout)
        #expect(deadline == 2000)
        // The ClientHello is lost. Too early: nothing (unless this thread was descheduled for
        // the whole 2 s, when OpenSSL's own clock rightly says the timer has expired).
        let early = p.client.handleTimeout(now: 1)
        if ContinuousClock.now - started < .milliseconds(1900) { #expect(early.datagrams.isEmpty) }
        // Wait (bounded) until OpenSSL's clock agrees the timer expired, then it retransmits.
        var again = early
        for _ in 0..<100 where again.datagrams.isEmpty {
            try await Task.sleep(for: .milliseconds(50))
            if ContinuousClock.now - started >= .milliseconds(2050) { again = p.client.handleTimeout(now: deadline) }
        }
        #expect(!again.datagrams.isEmpty)
        #expect(try #require(again.nextTimeout) >= deadline + 3990)  // doubled to 4 s
        p.absorbClient(again)
        // Now lose the server's whole first flight once.
        var droppedServerFlight = false
        p.run(now: deadline) { toServer, _ in
            if !toServer && !droppedServerFlight { return true }
            return false
        }
        droppedServerFlight = true
        #expect(p.client.state == .handshaking)
        let serverDeadline = try #require(p.serverTimeout)
        // Retransmission recovers it. OpenSSL's own clock decides when a timer has expired, so on
        // a loaded machine give both sides their timeouts until done (bounded at 20 s).
        var now = serverDeadline
        for _ in 0..<200 where p.client.state != .connected || p.server.state != .connected {
            try await Task.sleep(for: .milliseconds(100))
            now += 100
            p.absorbServer(p.server.handleTimeout(now: now))
            p.absorbClient(p.client.handleTimeout(now: now))
            p.run(now: now)
        }
        #expect(p.client.state == .connected)
        #expect(p.server.state == .connected)
        #expect(p.clientKeys == p.serverKeys.map { s in
            SRTPKeyingMaterial(profile: s.profile, localKey: s.remoteKey, localSalt: s.remoteSalt, remoteKey: s.localKey, remoteSalt: s.localSalt)
        })
    }

    @Test func garbageAndTruncatedRecordsAreDropped() throws {
        let p = try Pair()
        var rng = SystemRandomNumberGenerator()
        // Before the handshake: random bytes, empty, non-DTLS first bytes, huge length fields.
        let junk: [[UInt8]] = [
            [], [0], [22], [22, 254, 253], [23, 254, 253, 0, 1, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2],
            [128, 0, 0, 0], Array(repeating: 22, count: 2000),
            (0..<300).map { _ in UInt8.random(in: 20...63, using: &rng) },
        ]
        for j in junk { p.absorbServer(p.server.receive(datagram: j, now: 0)) }
        #expect(p.server.state != .failed)
        p.toClient = []  // whatever the server said to junk, the client did not ask for
        p.absorbClient(p.client.start(now: 0))
        // Deliver every datagram truncated first, and garbage, then the real thing, then a
        // corrupted copy. (A corrupted copy *before* the real one would win: epoch-0 records are
        // unauthenticated and the real one is then dropped as a replay — DTLS, not this code.)
        var delivered = 0
        var rounds = 0
        while (!p.toServer.isEmpty || !p.toClient.isEmpty) && rounds < 50 {
            rounds += 1
            let s = p.toServer; p.toServer = []
            for d in s {
                _ = p.server.receive(datagram: Array(d.prefix(d.count / 2)), now: 0)
                p.absorbServer(p.server.receive(datagram: d, now: 0)); delivered += 1
                var flipped = d; flipped[flipped.count - 1] ^= 0xff
                p.absorbServer(p.server.receive(datagram: flipped, now: 0))
            }
            let c = p.toClient; p.toClient = []
            for d in c {
                _ = p.client.receive(datagram: Array(d.prefix(13)), now: 0)
                _ = p.client.receive(datagram: (0..<d.count).map { _ in UInt8.random(in: 0...255, using: &rng) }, now: 0)
                p.absorbClient(p.client.receive(datagram: d, now: 0)); delivered += 1
            }
        }
        #expect(p.client.state == .connected)
        #expect(p.server.state == .connected)
        #expect(p.clientKeys != nil && p.serverKeys != nil)
        // After the handshake, junk is still harmless.
        for _ in 0..<200 {
            let n = Int.random(in: 0...1500, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = p.client.receive(datagram: bytes, now: 1)
            var record = bytes; if !record.isEmpty { record[0] = 23 }
            _ = p.server.receive(datagram: record, now: 1)
        }
        #expect(p.client.state == .connected)
        #expect(p.server.state == .connected)
    }

    @Test func applicationDataAndClose() throws {
        let p = try Pair()
        p.absorbClient(p.client.start(now: 0))
        p.run(now: 0)
        p.absorbClient(try p.client.send(applicationData: [1, 2, 3], now: 1))
        p.run(now: 1)
        #expect(p.serverEvents.contains(.applicationData([1, 2, 3])))
        p.absorbServer(p.server.close(now: 2))
        p.run(now: 2)
        #expect(p.server.state == .closed)
        #expect(p.client.state == .closed)
        #expect(p.clientEvents.contains(.closed))
        #expect(throws: DTLSError.self) { try p.client.send(applicationData: [1], now: 3) }
    }

    @Test func recordPacking() {
        func record(_ type: UInt8, _ n: Int) -> [UInt8] {
            [type, 254, 253, 0, 0, 0, 0, 0, 0, 0, 1, UInt8(n >> 8), UInt8(n & 0xff)] + Array(repeating: 7, count: n)
        }
        let a = record(22, 500), b = record(22, 600), c = record(20, 1)
        let out = packRecords(a + b + c, mtu: 1200)
        #expect(out == [a + b + c])
        let d = record(22, 700)
        #expect(packRecords(a + d + b + c, mtu: 1200) == [a, d, b + c])
        #expect(packRecords(a + d, mtu: 400) == [a, d])  // oversized records go alone
        #expect(packRecords([1, 2, 3], mtu: 1200) == [[1, 2, 3]])
    }
}
