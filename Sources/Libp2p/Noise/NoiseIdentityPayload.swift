#if canImport(FoundationEssentials)
import FoundationEssentials  // Data, for the generated protobuf fields
#else
import Foundation
#endif
import Identity
import SwiftProtobuf

/// The libp2p handshake payload (libp2p noise spec, "The libp2p Handshake Payload"): the
/// sender's identity key, its signature over the sender's Noise static key, and extensions.
///
///     message NoiseHandshakePayload {
///       optional bytes identity_key = 1;        // libp2p PublicKey protobuf
///       optional bytes identity_sig = 2;        // sign("noise-libp2p-static-key:" ‖ static key)
///       optional NoiseExtensions extensions = 4;
///     }
///
/// It travels encrypted in message 2 (responder) and message 3 (initiator), the first messages
/// of XX whose payloads have secrecy; message 1 carries none.
enum NoiseIdentityPayload {
    /// The signed data is this UTF-8 prefix followed by the 32-byte X25519 public key (RFC 7748 §5 encoding).
    static let signaturePrefix = Array("noise-libp2p-static-key:".utf8)

    /// What a verified remote payload establishes.
    struct Verified: Sendable {
        var identityKey: LibP2PPublicKey
        var peer: PeerID
        var streamMuxers: [String]
    }

    /// Builds and serialises our payload. Extensions are omitted when `streamMuxers` is empty.
    static func make(identity: Ed25519KeyPair, staticPublicKey: [UInt8], streamMuxers: [String]) -> [UInt8] {
        var payload = Drtc_Libp2p_NoiseHandshakePayload()
        payload.identityKey = Data(identity.publicKey.protobufEncoding)
        payload.identitySig = Data(identity.sign(signaturePrefix + staticPublicKey))
        if !streamMuxers.isEmpty {
            var extensions = Drtc_Libp2p_NoiseExtensions()
            extensions.streamMuxers = streamMuxers
            payload.extensions = extensions
        }
        do {
            return try payload.serializedBytes()
        } catch {
            preconditionFailure("serialising a NoiseHandshakePayload cannot fail (no required fields): \(error)")
        }
    }

    /// Parses the remote's payload from handshake message `message` and checks that its
    /// identity key signed `remoteStaticKey`, the X25519 key the same message delivered.
    ///
    /// Only Ed25519 identities are accepted: drtc has no RSA/secp256k1/ECDSA verifier, and a key
    /// we cannot verify must not authenticate a connection.
    static func verify(_ bytes: [UInt8], remoteStaticKey: [UInt8], message: Int) throws(NoiseError) -> Verified {
        let payload: Drtc_Libp2p_NoiseHandshakePayload
        do {
            payload = try Drtc_Libp2p_NoiseHandshakePayload(serializedBytes: bytes)
        } catch {
            throw .malformedPayload(message: message, reason: "\(error)")
        }
        guard payload.hasIdentityKey else { throw .missingIdentityKey(message: message) }
        let identityKey: LibP2PPublicKey
        do {
            identityKey = try LibP2PPublicKey(protobuf: Array(payload.identityKey))
        } catch {
            throw .malformedIdentityKey(reason: "\(error)")
        }
        guard identityKey.type == .ed25519 else { throw .unsupportedIdentityKeyType(identityKey.type) }
        guard identityKey.data.count == Ed25519.publicKeyLength else {
            throw .malformedIdentityKey(reason: "Ed25519 key must be \(Ed25519.publicKeyLength) bytes, got \(identityKey.data.count)")
        }
        let peer = PeerID(publicKey: identityKey)
        guard payload.hasIdentitySig else { throw .missingIdentitySignature(peer: peer) }
        guard identityKey.verify(signature: Array(payload.identitySig), message: signaturePrefix + remoteStaticKey) else {
            throw .badIdentitySignature(peer: peer)
        }
        return Verified(identityKey: identityKey, peer: peer, streamMuxers: payload.extensions.streamMuxers)
    }
}
