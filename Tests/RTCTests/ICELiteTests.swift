import Identity
import Testing
import RTC

/// A full (controlling) ICE agent's side, enough to build checks.
struct Peer {
    var localUfrag = "peer"   // the browser's ufrag
    var serverUfrag = "srv1"
    var serverPassword = "server-password-0123456789"
    var rng = SplitMix64(seed: 7)

    mutating func check(useCandidate: Bool = false, controlled: Bool = false, username: String? = nil,
                        password: String? = nil, extra: [STUNAttribute] = [], integrity: Bool = true,
                        fingerprint: Bool = true) -> (STUNMessage, [UInt8]) {
        var attributes: [STUNAttribute] = []
        attributes.append(.username(username ?? "\(serverUfrag):\(localUfrag)"))
        attributes.append(.priority(1_853_824_767))
        attributes.append(controlled ? .iceControlled(42) : .iceControlling(42))
        if useCandidate { attributes.append(.useCandidate) }
        attributes += extra
        let message = STUNMessage(messageClass: .request, transactionID: .random(using: &rng), attributes: attributes)
        let key = integrity ? Array((password ?? serverPassword).utf8) : nil
        return (message, message.encoded(integrityKey: key, fingerprint: fingerprint))
    }
}

@Suite struct ICELiteTests {
    let a = SocketAddress("192.0.2.10", port: 50000)!
    let b = SocketAddress("2001:db8::10", port: 50001)!

    func agent(remote: String? = "peer", now: UInt64 = 0) -> ICELiteAgent {
        ICELiteAgent(localUfrag: "srv1", localPassword: "server-password-0123456789", remoteUfrag: remote, now: now)
    }

    /// The one response in `actions`, decoded, checked for FINGERPRINT and (when signed) integrity.
    func response(_ actions: [ICELiteAction], to: SocketAddress, signed: Bool) throws -> STUNMessage {
        guard case .send(let bytes, let dest)? = actions.first else {
            Issue.record("expected a response first, got \(actions)")
            throw CancellationError()
        }
        #expect(dest == to)
        #expect(STUNMessage.checkFingerprint(bytes[...]) == .valid)
        let key = Array("server-password-0123456789".utf8)
        #expect(STUNMessage.checkIntegrity(bytes[...], key: key) == (signed ? .valid : .absent))
        return try STUNMessage(decoding: bytes)
    }

    @Test func validCheckGetsSignedSuccessWithMappedAddress() throws {
        var peer = Peer()
        var ice = agent()
        let (request, bytes) = peer.check()
        let actions = ice.receive(bytes, from: a, now: 1000)
        #expect(actions.count == 1)  // no nomination yet
        let reply = try response(actions, to: a, signed: true)
        #expect(reply.messageClass == .successResponse)
        #expect(reply.transactionID == request.transactionID)
        #expect(reply.xorMappedAddress == a)
        #expect(ice.selectedAddress == nil)
        #expect(ice.lastConsent == 1000)
    }

    @Test func useCandidateNominatesThenAddressChangeMovesSelection() throws {
        var peer = Peer()
        var ice = agent()
        var actions = ice.receive(peer.check(useCandidate: true).1, from: a, now: 10)
        #expect(actions.dropFirst().elementsEqual([.nominated(a)]))
        #expect(ice.selectedAddress == a)
        // Same address again: no new event.
        actions = ice.receive(peer.check(useCandidate: true).1, from: a, now: 20)
        #expect(actions.count == 1)
        // A non-nominating check from b does not move the selection.
        actions = ice.receive(peer.check().1, from: b, now: 30)
        #expect(actions.count == 1)
        #expect(ice.selectedAddress == a)
        // A nominating check from b does.
        actions = ice.receive(peer.check(useCandidate: true).1, from: b, now: 40)
        #expect(try response(actions, to: b, signed: true).xorMappedAddress == b)
        #expect(actions.dropFirst().elementsEqual([.selectedAddressChanged(from: a, to: b)]))
        #expect(ice.selectedAddress == b)
    }

    @Test func wrongPasswordIs401Unsigned() throws {
        var peer = Peer()
        var ice = agent()
        let actions = ice.receive(peer.check(useCandidate: true, password: "nope").1, from: a, now: 5)
        #expect(try response(actions, to: a, signed: false).errorCode?.code == 401)
        #expect(actions.count == 1)
        #expect(ice.selectedAddress == nil)
        #expect(ice.lastConsent == 0)  // not consent
    }

    @Test func wrongUsernameIs401() throws {
        var peer = Peer()
        var ice = agent()
        for username in ["other:peer", "srv1:someoneelse", "srv1", ""] {
            let actions = ice.receive(peer.check(username: username).1, from: a, now: 5)
            #expect(try response(actions, to: a, signed: false).errorCode?.code == 401, "\(username)")
        }
    }

    @Test func unknownRemoteUfragAcceptsAnyPrefixedUsername() throws {
        var peer = Peer()
        var ice = agent(remote: nil)
        let actions = ice.receive(peer.check(username: "srv1:whoever").1, from: a, now: 5)
        #expect(try response(actions, to: a, signed: true).messageClass == .successResponse)
        #expect(try response(ice.receive(peer.check(username: "srvX:whoever").1, from: a, now: 6), to: a, signed: false).errorCode?.code == 401)
    }

    @Test func missingUsernameOrIntegrityIs400() throws {
        var peer = Peer()
        var ice = agent()
        let noMI = peer.check(integrity: false).1
        #expect(try response(ice.receive(noMI, from: a, now: 1), to: a, signed: false).errorCode?.code == 400)
        let bare = STUNMessage(messageClass: .request, transactionID: STUNTransactionID(high: 1, low: 1))
            .encoded(integrityKey: Array("server-password-0123456789".utf8), fingerprint: true)
        #expect(try response(ice.receive(bare, from: a, now: 1), to: a, signed: false).errorCode?.code == 400)
    }

    @Test func controlledPeerGets487() throws {
        var peer = Peer()
        var ice = agent()
        let actions = ice.receive(peer.check(useCandidate: true, controlled: true).1, from: a, now: 1)
        #expect(try response(actions, to: a, signed: true).errorCode == .roleConflict)
        #expect(actions.count == 1)
        #expect(ice.selectedAddress == nil)
    }

    @Test func unknownComprehensionRequiredAttributeGets420() throws {
        var peer = Peer()
        var ice = agent()
        let actions = ice.receive(peer.check(extra: [.other(type: 0x0033, value: [1, 2])]).1, from: a, now: 1)
        let reply = try response(actions, to: a, signed: true)
        #expect(reply.errorCode?.code == 420)
        #expect(reply.attributes.contains(.unknownAttributes([0x0033])))
        // A comprehension-optional unknown one is fine.
        let ok = ice.receive(peer.check(extra: [.other(type: 0xC057, value: [0, 1, 0, 0])]).1, from: a, now: 2)
        #expect(try response(ok, to: a, signed: true).messageClass == .successResponse)
    }

    @Test func dropsWithReasons() {
        var peer = Peer()
        var ice = agent()
        #expect(ice.receive([0, 1, 0], from: a, now: 1) == [.drop(.malformed(.truncated))])
        #expect(ice.receive(peer.check(fingerprint: false).1, from: a, now: 1) == [.drop(.missingFingerprint)])
        var corrupt = peer.check().1
        corrupt[corrupt.count - 1] ^= 0xFF
        #expect(ice.receive(corrupt, from: a, now: 1) == [.drop(.badFingerprint)])
        let indication = STUNMessage(messageClass: .indication, transactionID: STUNTransactionID(high: 0, low: 0)).encoded(fingerprint: true)
        #expect(ice.receive(indication, from: a, now: 1) == [.drop(.notARequest(.indication))])
        let other = STUNMessage(method: STUNMethod(rawValue: 0x003), messageClass: .request,
                                transactionID: STUNTransactionID(high: 0, low: 0)).encoded(fingerprint: true)
        #expect(ice.receive(other, from: a, now: 1) == [.drop(.unsupportedMethod(STUNMethod(rawValue: 3)))])
        ice.configuration.requireFingerprint = false
        #expect(try! response(ice.receive(peer.check(fingerprint: false).1, from: a, now: 1), to: a, signed: true).messageClass == .successResponse)
    }

    @Test func consentExpiresAfterTimeoutWithoutValidChecks() {
        var peer = Peer()
        var ice = agent(now: 1_000)
        #expect(!ice.isExpired(now: 30_999))
        #expect(ice.isExpired(now: 31_000))
        _ = ice.receive(peer.check().1, from: a, now: 20_000)
        #expect(!ice.isExpired(now: 49_999))
        // Failed checks are not consent.
        _ = ice.receive(peer.check(password: "bad").1, from: a, now: 45_000)
        #expect(ice.isExpired(now: 50_000))
        // Configurable timeout; time going backwards is never "expired".
        ice.configuration.consentTimeoutMilliseconds = 5_000
        #expect(ice.isExpired(now: 25_000))
        #expect(!ice.isExpired(now: 10))
    }

    @Test func localUfragForDemux() {
        var peer = Peer()
        #expect(ICELiteAgent.localUfrag(of: peer.check().1) == "srv1")
        #expect(ICELiteAgent.localUfrag(of: peer.check(username: "nocolon").1) == nil)
        #expect(ICELiteAgent.localUfrag(of: peer.check(username: ":x").1) == nil)
        #expect(ICELiteAgent.localUfrag(of: [0x80, 0x60, 0, 0]) == nil)
        // The RFC 5769 request: USERNAME "evtj:h6vY".
        #expect(ICELiteAgent.localUfrag(of: unhex(STUNTests.file.vectors[0].hex)) == "evtj")
    }

    @Test func rfc5769RequestIsAcceptedByAMatchingAgentButIsControlled() throws {
        // The sample request carries ICE-CONTROLLED, so a lite agent answers 487, signed.
        var ice = ICELiteAgent(localUfrag: "evtj", localPassword: STUNTests.file.password, remoteUfrag: "h6vY", now: 0)
        let actions = ice.receive(unhex(STUNTests.file.vectors[0].hex), from: a, now: 1)
        guard case .send(let bytes, _)? = actions.first else { Issue.record("no response"); return }
        #expect(STUNMessage.checkIntegrity(bytes[...], key: Array(STUNTests.file.password.utf8)) == .valid)
        #expect(try STUNMessage(decoding: bytes).errorCode?.code == 487)
    }
}
