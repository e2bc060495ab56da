import Foundation
import Identity
import Testing

@testable import Libp2p

/// Fixed identities: alice dials, bob listens, carol is someone else.
enum Peers {
    static let alice = try! Ed25519KeyPair(seed: [UInt8](repeating: 0xa1, count: 32))
    static let bob = try! Ed25519KeyPair(seed: [UInt8](repeating: 0xb0, count: 32))
    static let carol = try! Ed25519KeyPair(seed: [UInt8](repeating: 0xca, count: 32))
}

/// Runs a complete in-memory handshake and returns both results.
func handshake(
    initiator identityI: Ed25519KeyPair = Peers.alice,
    responder identityR: Ed25519KeyPair = Peers.bob,
    expecting expected: PeerID? = nil
) throws -> (initiator: NoiseHandshakeResult, responder: NoiseHandshakeResult) {
    var initiator = NoiseHandshake(role: .initiator, identity: identityI, staticKey: .generate(), expectedRemotePeer: expected)
    var responder = NoiseHandshake(role: .responder, identity: identityR, staticKey: .generate())
    #expect(try responder.start() == nil)
    let message1 = try initiator.startInitiator()
    #expect(message1.count == 32)  // -> e, empty payload
    let step2 = try responder.receive(message1)
    guard case .send(let message2) = step2 else { throw TestFailure("responder should reply with message 2") }
    let step3 = try initiator.receive(message2)
    guard case .sendAndComplete(let message3, let initiatorResult) = step3 else { throw TestFailure("initiator should complete") }
    let step4 = try responder.receive(message3)
    guard case .complete(let responderResult) = step4 else { throw TestFailure("responder should complete") }
    #expect(step4.messageToSend == nil)
    #expect(initiator.isComplete && responder.isComplete)
    return (initiatorResult, responderResult)
}

extension NoiseHandshake {
    /// `start()` for an initiator, which always has a message 1.
    mutating func startInitiator() throws -> [UInt8] {
        guard let message = try start() else { throw TestFailure("initiator start() returned no message") }
        return message
    }

    /// `receive(message)` where a reply is expected.
    mutating func reply(to message: [UInt8]) throws -> [UInt8] {
        guard let reply = try receive(message).messageToSend else { throw TestFailure("no reply to send") }
        return reply
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Serialises a payload the way a (possibly malicious) peer chooses to.
func payloadBytes(identityKey: [UInt8]?, signature: [UInt8]?, muxers: [String] = []) throws -> [UInt8] {
    var payload = Drtc_Libp2p_NoiseHandshakePayload()
    if let identityKey { payload.identityKey = Data(identityKey) }
    if let signature { payload.identitySig = Data(signature) }
    if !muxers.isEmpty {
        var extensions = Drtc_Libp2p_NoiseExtensions()
        extensions.streamMuxers = muxers
        payload.extensions = extensions
    }
    return try payload.serializedBytes()
}

let staticKeyPrefix = Array("noise-libp2p-static-key:".utf8)

/// An honest initiator against a hand-driven responder that answers message 1 with `payload`
/// (built from the responder's static public key); returns what the initiator throws.
func initiatorError(expecting expected: PeerID? = nil, responderPayload payload: ([UInt8]) throws -> [UInt8]) throws -> NoiseError? {
    var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate(), expectedRemotePeer: expected)
    let evilStatic = X25519KeyPair.generate()
    var evil = NoiseHandshakeState(role: .responder, staticKey: evilStatic)
    _ = try evil.readMessage(initiator.startInitiator())
    let message2 = try evil.writeMessage(payload: try payload(evilStatic.publicKey)).message
    do {
        _ = try initiator.receive(message2)
        return nil
    } catch {
        // The failure is sticky.
        #expect(throws: NoiseError.handshakeAlreadyFailed(cause: error)) { try initiator.receive(message2) }
        return error
    }
}

@Suite struct NoiseHandshakeTests {
    @Test func fullHandshakeAuthenticatesBothSides() throws {
        let (i, r) = try handshake(expecting: Peers.bob.peerID)
        #expect(i.remotePeer == Peers.bob.peerID)
        #expect(r.remotePeer == Peers.alice.peerID)
        #expect(i.remoteIdentityKey == Peers.bob.publicKey)
        #expect(r.remoteIdentityKey == Peers.alice.publicKey)
        #expect(i.remoteStreamMuxers == ["/yamux/1.0.0"])
        #expect(r.remoteStreamMuxers == ["/yamux/1.0.0"])
        #expect(i.handshakeHash == r.handshakeHash)
        #expect(i.handshakeHash.count == 32)
    }

    /// Our payload byte for byte: identity_key (1), identity_sig (2), extensions (4) with
    /// stream_muxers. Expected bytes computed independently (Python `cryptography` and a
    /// hand-written protobuf encoding), since Ed25519 signatures are deterministic.
    @Test func payloadEncodingIsByteExact() throws {
        let staticKey = try X25519KeyPair(privateKey: [UInt8](repeating: 0x3c, count: 32))
        #expect(Hex.encode(staticKey.publicKey) == "513f6639b3e84e8db530e84bba689373da3b6f3ecf45df32414738d58d792d66")
        let payload = NoiseIdentityPayload.make(identity: Peers.bob, staticPublicKey: staticKey.publicKey, streamMuxers: ["/yamux/1.0.0"])
        #expect(Hex.encode(payload) == "0a2408011220705fbac01f5519899f437bc42e40255ae9ab54bff00de3433af7d687d9e71ad5"
            + "124059179397323e0a268bcc0e40e48550a2a4e686f7c992419bd81205598a49f05db723d5d78d48ee43e826f239d6d28e88f844"
            + "0eae78e4387940d6ab84e0be2f0e" + "220e120c2f79616d75782f312e302e30")
        let verified = try NoiseIdentityPayload.verify(payload, remoteStaticKey: staticKey.publicKey, message: 2)
        #expect(verified.peer == Peers.bob.peerID)
        #expect(verified.streamMuxers == ["/yamux/1.0.0"])
    }

    @Test func manyRoundTripsBothWays() throws {
        var (i, r) = try handshake()
        var rng = SplitMix64(seed: 1)
        let sizes = [0, 1, 16, NoiseTransport.maxPlaintextLength]
        for n in 0..<2000 {
            let length = n < sizes.count ? sizes[n] : Int.random(in: 0...1500, using: &rng)
            let plaintext = rng.bytes(length)
            if n % 3 == 0 {
                let sealed = try r.transport.seal(plaintext)
                #expect(sealed.count == length + 16)
                #expect(try i.transport.open(sealed) == plaintext)
            } else {
                let sealed = try i.transport.seal(plaintext)
                #expect(try r.transport.open(sealed) == plaintext)
            }
        }
        #expect(i.transport.framesSent == r.transport.framesReceived)
        #expect(r.transport.framesSent == i.transport.framesReceived)
        #expect(i.transport.framesSent + r.transport.framesSent == 2000)
    }

    @Test func largeWritesAreSplitIntoFrames() throws {
        var (i, r) = try handshake()
        var rng = SplitMix64(seed: 2)
        for length in [0, 1, NoiseTransport.maxPlaintextLength, NoiseTransport.maxPlaintextLength + 1, 200_000] {
            let data = rng.bytes(length)
            let wire = try i.transport.sealFrames(data)
            var decoder = NoiseFrameDecoder()
            let frames = try decoder.frames(from: wire)
            #expect(frames.count == (length + NoiseTransport.maxPlaintextLength - 1) / NoiseTransport.maxPlaintextLength)
            #expect(frames.allSatisfy { $0.count <= NoiseFrame.maxBodyLength })
            #expect(decoder.bufferedByteCount == 0)
            var received: [UInt8] = []
            for frame in frames { received += try r.transport.open(frame) }
            #expect(received == data)
        }
    }

    @Test func oversizePlaintextIsRefused() throws {
        var (i, _) = try handshake()
        let tooBig = [UInt8](repeating: 0, count: NoiseTransport.maxPlaintextLength + 1)
        #expect(throws: NoiseError.plaintextTooLarge(length: 65520, limit: 65519)) { try i.transport.seal(tooBig) }
        #expect(i.transport.framesSent == 0)
    }

    @Test func tamperedCiphertextFailsToOpen() throws {
        var (i, r) = try handshake()
        _ = try r.transport.open(try i.transport.seal([1, 2, 3]))
        let sealed = try i.transport.seal(Array("attack at dawn".utf8))
        for position in [0, sealed.count / 2, sealed.count - 1] {  // body and tag
            var tampered = sealed
            tampered[position] ^= 0x01
            #expect(throws: NoiseError.decryptFailed(frame: 1)) { try r.transport.open(tampered) }
        }
        #expect(throws: NoiseError.decryptFailed(frame: 1)) { try r.transport.open(Array(sealed.dropLast())) }
        #expect(throws: NoiseError.ciphertextTooShort(frame: 1, length: 15)) { try r.transport.open(Array(sealed.prefix(15))) }
        #expect(NoiseError.decryptFailed(frame: 3).description.hasPrefix("noise: decrypt failed (bad MAC) on frame 3"))
        // A frame sealed for the other direction does not open either.
        let reflected = try r.transport.seal([9])
        #expect(throws: NoiseError.decryptFailed(frame: 1)) { try r.transport.open(reflected) }
        // The untouched frame still opens: failures do not consume the nonce (Noise §5.1).
        #expect(try r.transport.open(sealed) == Array("attack at dawn".utf8))
    }

    @Test func wrongExpectedPeerFailsNamingBoth() throws {
        let expected = Peers.carol.peerID
        do {
            _ = try handshake(expecting: expected)
            Issue.record("handshake with the wrong expected peer succeeded")
        } catch let error as NoiseError {
            #expect(error == .peerMismatch(expected: expected, actual: Peers.bob.peerID))
            #expect(error.description == "noise: remote peer is \(Peers.bob.peerID), expected \(expected); "
                + "the address's /p2p/ component names a different node")
        }
    }

    @Test func initiatorNeverRevealsItselfToTheWrongPeer() throws {
        var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate(), expectedRemotePeer: Peers.carol.peerID)
        var responder = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate())
        let message2 = try responder.reply(to: initiator.startInitiator())
        // The failure comes from message 2: there is no message 3 carrying alice's payload.
        #expect(throws: NoiseError.peerMismatch(expected: Peers.carol.peerID, actual: Peers.bob.peerID)) {
            try initiator.receive(message2)
        }
    }

    @Test func responderChecksExpectedPeerToo() throws {
        var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate())
        var responder = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate(), expectedRemotePeer: Peers.carol.peerID)
        let message2 = try responder.reply(to: initiator.startInitiator())
        let message3 = try initiator.reply(to: message2)
        #expect(throws: NoiseError.peerMismatch(expected: Peers.carol.peerID, actual: Peers.alice.peerID)) {
            try responder.receive(message3)
        }
    }

    @Test func signatureOverAnotherStaticKeyFails() throws {
        let error = try initiatorError { _ in
            try payloadBytes(identityKey: Peers.bob.publicKey.protobufEncoding,
                             signature: Peers.bob.sign(staticKeyPrefix + X25519KeyPair.generate().publicKey))
        }
        #expect(error == .badIdentitySignature(peer: Peers.bob.peerID))
    }

    @Test func tamperedSignatureFails() throws {
        let error = try initiatorError { staticKey in
            var signature = Peers.bob.sign(staticKeyPrefix + staticKey)
            signature[10] ^= 0x80
            return try payloadBytes(identityKey: Peers.bob.publicKey.protobufEncoding, signature: signature)
        }
        #expect(error == .badIdentitySignature(peer: Peers.bob.peerID))
    }

    @Test func signatureWithoutThePrefixFails() throws {
        let error = try initiatorError { staticKey in
            try payloadBytes(identityKey: Peers.bob.publicKey.protobufEncoding, signature: Peers.bob.sign(staticKey))
        }
        #expect(error == .badIdentitySignature(peer: Peers.bob.peerID))
    }

    @Test func honestHandDrivenResponderIsAccepted() throws {
        // Control for the tests above: the same harness with a correct payload succeeds.
        let error = try initiatorError(expecting: Peers.bob.peerID) { staticKey in
            try payloadBytes(identityKey: Peers.bob.publicKey.protobufEncoding,
                             signature: Peers.bob.sign(staticKeyPrefix + staticKey))
        }
        #expect(error == nil)
    }

    @Test func nonEd25519IdentityKeyIsRejected() throws {
        // The secp256k1 key from libp2p/specs peer-ids.md.
        let secp256k1 = bytes("08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99")
        let error = try initiatorError { _ in try payloadBytes(identityKey: secp256k1, signature: [UInt8](repeating: 1, count: 64)) }
        #expect(error == .unsupportedIdentityKeyType(.secp256k1))
        #expect(error?.description.contains("only Ed25519") == true)
    }

    @Test func malformedPayloadsAreRejected() throws {
        #expect(try initiatorError { _ in [0xff, 0xff, 0xff] }.map { error in
            if case .malformedPayload(message: 2, _) = error { return true }
            return false
        } == true)
        #expect(try initiatorError { _ in [] } == .missingIdentityKey(message: 2))
        #expect(try initiatorError { _ in try payloadBytes(identityKey: Peers.bob.publicKey.protobufEncoding, signature: nil) }
            == .missingIdentitySignature(peer: Peers.bob.peerID))
        let badKey = try initiatorError { _ in try payloadBytes(identityKey: [0x08, 0x01], signature: nil) }
        if case .malformedIdentityKey = badKey {} else { Issue.record("expected malformedIdentityKey, got \(String(describing: badKey))") }
        let shortKey = LibP2PPublicKey(type: .ed25519, data: [1, 2, 3]).protobufEncoding
        let short = try initiatorError { _ in try payloadBytes(identityKey: shortKey, signature: nil) }
        #expect(short == .malformedIdentityKey(reason: "Ed25519 key must be 32 bytes, got 3"))
    }

    @Test func responderVerifiesInitiatorPayload() throws {
        var responder = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate())
        let evilStatic = X25519KeyPair.generate()
        var evil = NoiseHandshakeState(role: .initiator, staticKey: evilStatic)
        let message2 = try responder.reply(to: try evil.writeMessage().message)
        _ = try evil.readMessage(message2)
        var signature = Peers.alice.sign(staticKeyPrefix + evilStatic.publicKey)
        signature[0] ^= 1
        let message3 = try evil.writeMessage(payload: try payloadBytes(identityKey: Peers.alice.publicKey.protobufEncoding, signature: signature)).message
        #expect(throws: NoiseError.badIdentitySignature(peer: Peers.alice.peerID)) { try responder.receive(message3) }
        #expect(!responder.isComplete)
    }

    @Test func tamperedHandshakeMessagesFail() throws {
        var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate())
        var responder = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate())
        var message2 = try responder.reply(to: initiator.startInitiator())
        message2[40] ^= 0x01  // inside the encrypted static key
        #expect(throws: NoiseError.handshakeDecryptFailed(message: 2)) { try initiator.receive(message2) }

        var initiator2 = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate())
        var responder2 = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate())
        let m2 = try responder2.reply(to: initiator2.startInitiator())
        var message3 = try initiator2.reply(to: m2)
        message3[message3.count - 1] ^= 0x01  // the payload's tag
        #expect(throws: NoiseError.handshakeDecryptFailed(message: 3)) { try responder2.receive(message3) }
    }

    @Test func shortAndLowOrderMessage1AreRejected() throws {
        var responder = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate())
        #expect(throws: NoiseError.handshakeMessageTooShort(message: 1, length: 31, needed: 32)) {
            try responder.receive([UInt8](repeating: 5, count: 31))
        }
        var responder2 = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate())
        let zero = [UInt8](repeating: 0, count: 32)
        #expect(throws: NoiseError.lowOrderPublicKey(zero)) { try responder2.receive(zero) }
    }

    @Test func message2TooShortForItsTokens() throws {
        var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate())
        _ = try initiator.start()
        // e (32) + encrypted s (48) + payload tag (16) = 96 bytes at least.
        #expect(throws: NoiseError.handshakeMessageTooShort(message: 2, length: 70, needed: 80)) {
            try initiator.receive([UInt8](repeating: 9, count: 70))
        }
    }

    @Test func eventsOutOfOrderAreNamed() throws {
        var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate())
        #expect(throws: NoiseError.unexpectedEvent(event: "receive()", state: "the initiator has not started")) {
            try initiator.receive([1, 2, 3])
        }
        _ = try initiator.start()
        #expect(throws: NoiseError.unexpectedEvent(event: "start()", state: "the initiator awaits message 2")) {
            try initiator.start()
        }
        var state = NoiseHandshakeState(role: .responder, staticKey: .generate())
        #expect(throws: NoiseError.unexpectedEvent(event: "writeMessage", state: "responder awaits message 1 from the initiator")) {
            try state.writeMessage()
        }
    }

    @Test func receiveAfterCompletionIsRefused() throws {
        var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate())
        var responder = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate())
        let m2 = try responder.reply(to: initiator.startInitiator())
        let m3 = try initiator.reply(to: m2)
        _ = try responder.receive(m3)
        #expect(throws: NoiseError.unexpectedEvent(event: "receive()", state: "the handshake is complete (pass frames to NoiseTransport)")) {
            try responder.receive(m3)
        }
    }

    @Test func noExtensionsWhenNoMuxers() throws {
        var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate())
        var responder = NoiseHandshake(role: .responder, identity: Peers.bob, staticKey: .generate(), streamMuxers: [])
        let m2 = try responder.reply(to: initiator.startInitiator())
        let result = try #require(try initiator.receive(m2).result)
        #expect(result.remoteStreamMuxers.isEmpty)
    }

    /// Random bytes as message 1 or message 3 must fail cleanly or (message 1 of at least 32
    /// bytes) be answered, never crash.
    @Test func randomGarbageNeverCrashesResponder() throws {
        var rng = SplitMix64(seed: 3)
        let identity = Peers.bob
        let staticKey = X25519KeyPair.generate()
        var initiator = NoiseHandshake(role: .initiator, identity: Peers.alice, staticKey: .generate())
        let validMessage1 = try initiator.startInitiator()
        var answered = 0
        for n in 0..<10_000 {
            var responder = NoiseHandshake(role: .responder, identity: identity, staticKey: staticKey)
            let garbage = rng.bytes(Int.random(in: 0...(n % 10 == 0 ? 2000 : 200), using: &rng))
            if n % 2 == 0 {
                do {
                    _ = try responder.receive(garbage)
                    answered += 1
                    #expect(garbage.count >= 32)
                } catch {
                    #expect(!responder.isComplete)
                }
            } else {
                _ = try responder.receive(validMessage1)
                #expect(throws: NoiseError.self) { try responder.receive(garbage) }
            }
        }
        #expect(answered > 0)
    }
}
