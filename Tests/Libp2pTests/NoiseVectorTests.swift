import Foundation
import Identity
import Testing

@testable import Libp2p

/// Known-answer vectors for Noise_XX_25519_ChaChaPoly_SHA256, stored in
/// Fixtures/noise-vectors.json (see its `source` and each vector's `origin`).
struct NoiseVectorFile: Decodable {
    struct Vector: Decodable {
        struct Message: Decodable {
            var payload: String
            var ciphertext: String
        }
        var origin: String
        var protocolName: String
        var initPrologue: String
        var initStatic: String
        var initEphemeral: String
        var respPrologue: String
        var respStatic: String
        var respEphemeral: String
        var handshakeHash: String?
        var messages: [Message]
    }
    var source: String
    var vectors: [Vector]

    static func load() throws -> NoiseVectorFile {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Fixtures/noise-vectors.json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(NoiseVectorFile.self, from: Data(contentsOf: url))
    }
}

func bytes(_ hex: String) -> [UInt8] {
    guard let decoded = Hex.decode(hex) else { preconditionFailure("bad hex in fixture: \(hex)") }
    return decoded
}

@Suite struct NoiseVectorTests {
    @Test func fixtureHoldsTheXXVectors() throws {
        let file = try NoiseVectorFile.load()
        #expect(file.vectors.count >= 2)
        #expect(file.vectors.allSatisfy { $0.protocolName == NoiseHandshakeState.protocolName })
    }

    /// Replays every message of every vector byte-exact: handshake messages through
    /// `NoiseHandshakeState` with the vector's ephemeral keys injected, then transport messages
    /// through `NoiseTransport` built from the resulting `Split()`.
    @Test func replaysPublishedVectorsByteExact() throws {
        for vector in try NoiseVectorFile.load().vectors {
            var initiator = NoiseHandshakeState(
                role: .initiator,
                staticKey: try X25519KeyPair(privateKey: bytes(vector.initStatic)),
                prologue: bytes(vector.initPrologue),
                ephemeralKey: try X25519KeyPair(privateKey: bytes(vector.initEphemeral)))
            var responder = NoiseHandshakeState(
                role: .responder,
                staticKey: try X25519KeyPair(privateKey: bytes(vector.respStatic)),
                prologue: bytes(vector.respPrologue),
                ephemeralKey: try X25519KeyPair(privateKey: bytes(vector.respEphemeral)))
            var initiatorTransport: NoiseTransport?
            var responderTransport: NoiseTransport?

            for (index, message) in vector.messages.enumerated() {
                let payload = bytes(message.payload)
                let expected = bytes(message.ciphertext)
                let fromInitiator = index % 2 == 0
                let label = "\(vector.origin) message \(index + 1)"

                if index < 3 {
                    // Handshake: XX has three messages.
                    let written = fromInitiator
                        ? try initiator.writeMessage(payload: payload)
                        : try responder.writeMessage(payload: payload)
                    #expect(written.message == expected, "\(label)")
                    let read = fromInitiator
                        ? try responder.readMessage(written.message)
                        : try initiator.readMessage(written.message)
                    #expect(read.payload == payload, "\(label)")
                    #expect((written.split == nil) == (index < 2))
                    if let split = read.split {
                        initiatorTransport = NoiseTransport(role: .initiator, split: split)
                        responderTransport = NoiseTransport(role: .responder, split: split)
                    }
                } else {
                    // Transport: messages keep alternating.
                    try #require(initiatorTransport != nil && responderTransport != nil)
                    if fromInitiator {
                        let sealed = try initiatorTransport!.seal(payload)
                        #expect(sealed == expected, "\(label)")
                        #expect(try responderTransport!.open(sealed) == payload, "\(label)")
                    } else {
                        let sealed = try responderTransport!.seal(payload)
                        #expect(sealed == expected, "\(label)")
                        #expect(try initiatorTransport!.open(sealed) == payload, "\(label)")
                    }
                }
            }
            #expect(initiator.isComplete && responder.isComplete)
            #expect(initiator.handshakeHash == responder.handshakeHash)
            #expect(initiator.remoteStaticKey == (try X25519KeyPair(privateKey: bytes(vector.respStatic))).publicKey)
            if let hash = vector.handshakeHash {
                #expect(Hex.encode(initiator.handshakeHash) == hash, "\(vector.origin) handshake hash")
            }
        }
    }
}
