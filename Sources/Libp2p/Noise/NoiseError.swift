import Identity

/// Everything that can go wrong in the Noise layer: framing, the Noise state machines and the
/// libp2p identity checks. Each case carries what an operator needs to see what was wrong, and
/// `description` says it in one line starting with `noise:`.
///
/// Any error from `NoiseHandshake` ends the handshake (Noise §5: "the HandshakeState is
/// deleted"); any error from `NoiseTransport` means the connection must be closed.
public enum NoiseError: Error, Equatable, Sendable, CustomStringConvertible {
    // MARK: framing (libp2p noise spec, "Wire Format")

    /// A frame body longer than the 16-bit length prefix (or the decoder's configured limit) allows.
    case frameTooLarge(length: Int, limit: Int)

    // MARK: keys and primitives (Noise §4, §12)

    /// A key of the wrong size was passed in or received.
    case invalidKeyLength(what: String, expected: Int, actual: Int)
    /// The remote sent an X25519 public key that yields the all-zero shared secret (Noise §12.1).
    case lowOrderPublicKey([UInt8])
    /// A libsodium call returned a failure code it should not return.
    case sodiumFailure(function: String, code: Int32)

    // MARK: CipherState (Noise §5.1) and transport messages

    /// `n` reached 2^64-1, which Noise reserves; the session must end (Noise §5.1, §11.3).
    case nonceExhausted
    /// The Poly1305 tag did not verify on the transport frame with this 0-based index (= nonce).
    case decryptFailed(frame: UInt64)
    /// A transport frame too short to hold the 16-byte tag.
    case ciphertextTooShort(frame: UInt64, length: Int)
    /// `seal` was given more than one frame's worth of plaintext.
    case plaintextTooLarge(length: Int, limit: Int)

    // MARK: HandshakeState (Noise §5.3)

    /// The tag on handshake message `message` (1-based, as in the XX pattern) did not verify.
    case handshakeDecryptFailed(message: Int)
    /// Handshake message `message` ended before the tokens of its pattern did.
    case handshakeMessageTooShort(message: Int, length: Int, needed: Int)
    /// Handshake message `message` would exceed the 65535-byte Noise message limit (Noise §3).
    case handshakeMessageTooLarge(message: Int, length: Int)
    /// A method was called in a state that does not accept it (e.g. `start()` twice).
    case unexpectedEvent(event: String, state: String)
    /// The handshake failed earlier with `cause`; it accepts no further input.
    indirect case handshakeAlreadyFailed(cause: NoiseError)

    // MARK: libp2p handshake payload (libp2p noise spec, "The libp2p Handshake Payload")

    /// The decrypted payload of handshake message `message` is not a `NoiseHandshakePayload` protobuf.
    case malformedPayload(message: Int, reason: String)
    /// The payload has no `identity_key`.
    case missingIdentityKey(message: Int)
    /// `identity_key` is not a valid libp2p `PublicKey` protobuf.
    case malformedIdentityKey(reason: String)
    /// drtc verifies only Ed25519 identity keys.
    case unsupportedIdentityKeyType(KeyType)
    /// The payload of `peer` has no `identity_sig`.
    case missingIdentitySignature(peer: PeerID)
    /// `identity_sig` is not `peer`'s signature over its Noise static key.
    case badIdentitySignature(peer: PeerID)
    /// The authenticated remote is not the peer that was dialled.
    case peerMismatch(expected: PeerID, actual: PeerID)

    public var description: String {
        switch self {
        case .frameTooLarge(let length, let limit):
            return "noise: frame length \(length) exceeds \(limit)"
        case .invalidKeyLength(let what, let expected, let actual):
            return "noise: \(what) must be \(expected) bytes, got \(actual)"
        case .lowOrderPublicKey(let key):
            return "noise: remote X25519 public key \(Hex.encode(key)) is a low-order point "
                + "(all-zero shared secret); the peer is broken or hostile"
        case .sodiumFailure(let function, let code):
            return "noise: libsodium \(function) failed with code \(code)"
        case .nonceExhausted:
            return "noise: nonce exhausted after 2^64-1 messages; close the connection and handshake again"
        case .decryptFailed(let frame):
            return "noise: decrypt failed (bad MAC) on frame \(frame); the stream was corrupted or "
                + "tampered with, close the connection"
        case .ciphertextTooShort(let frame, let length):
            return "noise: frame \(frame) is \(length) bytes, shorter than the 16-byte authentication tag"
        case .plaintextTooLarge(let length, let limit):
            return "noise: plaintext of \(length) bytes exceeds the \(limit)-byte frame limit; "
                + "split it (NoiseTransport.sealFrames does)"
        case .handshakeDecryptFailed(let message):
            return "noise: decrypt failed (bad MAC) in handshake message \(message); the peer does not "
                + "speak Noise_XX_25519_ChaChaPoly_SHA256 with an empty prologue, or the message was altered"
        case .handshakeMessageTooShort(let message, let length, let needed):
            return "noise: handshake message \(message) is \(length) bytes, needs at least \(needed)"
        case .handshakeMessageTooLarge(let message, let length):
            return "noise: handshake message \(message) would be \(length) bytes, over the 65535-byte limit"
        case .unexpectedEvent(let event, let state):
            return "noise: \(event) is not allowed while \(state)"
        case .handshakeAlreadyFailed(let cause):
            return "noise: handshake already failed (\(cause)); open a new connection"
        case .malformedPayload(let message, let reason):
            return "noise: handshake message \(message) payload is not a NoiseHandshakePayload protobuf: \(reason)"
        case .missingIdentityKey(let message):
            return "noise: handshake message \(message) payload has no identity_key"
        case .malformedIdentityKey(let reason):
            return "noise: remote identity_key is not a libp2p PublicKey: \(reason)"
        case .unsupportedIdentityKeyType(let type):
            return "noise: remote identity key type \(type) is not supported; only Ed25519 identities are accepted"
        case .missingIdentitySignature(let peer):
            return "noise: remote peer \(peer) sent no identity_sig for its Noise static key"
        case .badIdentitySignature(let peer):
            return "noise: identity_sig of remote peer \(peer) does not sign its Noise static key "
                + "(\"noise-libp2p-static-key:\" ‖ key); the handshake may be under attack"
        case .peerMismatch(let expected, let actual):
            return "noise: remote peer is \(actual), expected \(expected); the address's /p2p/ "
                + "component names a different node"
        }
    }
}
