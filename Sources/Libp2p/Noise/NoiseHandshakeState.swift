/// Which side of a handshake this party is: the initiator sends the first message (a libp2p
/// dialer), the responder the second (a listener).
public enum NoiseRole: Sendable, Equatable {
    case initiator
    case responder
}

/// The tokens of a Noise message pattern (Noise §7.1), without `psk`.
enum NoiseToken: Sendable {
    case e, s, ee, es, se, ss
}

/// Noise §5.3 `HandshakeState` for `Noise_XX_25519_ChaChaPoly_SHA256`, the only protocol
/// noise-libp2p speaks (libp2p noise spec, "Noise Protocol Name"):
///
///     XX:
///       -> e
///       <- e, ee, s, es
///       -> s, se
///
/// A pure value: `writeMessage` and `readMessage` take and return bytes, nothing else. Each call
/// either succeeds completely or throws and leaves the state as it was; after a throw the
/// handshake has failed (Noise §5.3) and the caller should discard the state.
public struct NoiseHandshakeState: Sendable {
    /// Noise §8: pattern, DH, cipher and hash names.
    public static let protocolName = "Noise_XX_25519_ChaChaPoly_SHA256"

    /// XX (Noise §7.5). XX has no pre-messages, so `Initialize()` hashes no public keys.
    static let messagePatterns: [[NoiseToken]] = [
        [.e],
        [.e, .ee, .s, .es],
        [.s, .se],
    ]

    /// Noise §3: every Noise message is at most 65535 bytes.
    public static let maxMessageLength = 65535

    public let role: NoiseRole
    private var symmetric: NoiseSymmetricState
    /// `s`.
    private let localStatic: X25519KeyPair
    /// `e`; nil until the `e` token generates it, unless injected for known-answer tests.
    private var localEphemeral: X25519KeyPair?
    /// `rs`: the remote static public key, known after the message carrying its `s` token.
    public private(set) var remoteStaticKey: [UInt8]?
    /// `re`: the remote ephemeral public key.
    public private(set) var remoteEphemeralKey: [UInt8]?
    /// Index into `messagePatterns` of the next message to write or read; the spec deletes
    /// patterns as it goes, we count instead.
    private var nextMessage = 0

    /// `Initialize(XX, initiator, prologue, s, empty, empty, empty)`: the `e` token will
    /// generate a fresh ephemeral key pair.
    ///
    /// - Parameter prologue: data both sides must agree on (Noise §6); libp2p uses none.
    public init(role: NoiseRole, staticKey: X25519KeyPair, prologue: [UInt8] = []) {
        self.init(role: role, staticKey: staticKey, prologue: prologue, ephemeralKey: nil)
    }

    /// `Initialize(XX, initiator, prologue, s, e, empty, empty)` with a preset ephemeral key,
    /// for known-answer tests only: reusing an ephemeral key destroys the handshake's security,
    /// so this is not public API.
    init(role: NoiseRole, staticKey: X25519KeyPair, prologue: [UInt8], ephemeralKey: X25519KeyPair?) {
        self.role = role
        symmetric = NoiseSymmetricState(protocolName: Array(Self.protocolName.utf8))
        symmetric.mixHash(prologue)
        localStatic = staticKey
        localEphemeral = ephemeralKey
    }

    /// True once all three messages have been written or read.
    public var isComplete: Bool { nextMessage == Self.messagePatterns.count }

    /// True if the next step is `writeMessage` (initiator: messages 1 and 3; responder: 2).
    public var isOurTurnToWrite: Bool {
        !isComplete && (nextMessage % 2 == 0) == (role == .initiator)
    }

    /// `h`. Once `isComplete`, this is `GetHandshakeHash()`, usable for channel binding (Noise §11.2).
    public var handshakeHash: [UInt8] { symmetric.handshakeHash }

    /// `WriteMessage(payload, message_buffer)`. Returns the message and, after the last
    /// message, the transport `CipherState`s from `Split()`.
    public mutating func writeMessage(payload: [UInt8] = []) throws(NoiseError) -> (message: [UInt8], split: NoiseCipherPair?) {
        guard isOurTurnToWrite else {
            throw .unexpectedEvent(event: "writeMessage", state: stateDescription)
        }
        var next = self  // committed only on success
        var message: [UInt8] = []
        for token in Self.messagePatterns[nextMessage] {
            switch token {
            case .e:
                // "Sets e (which must be empty) to GENERATE_KEYPAIR()"; an injected key stands in.
                let e = next.localEphemeral ?? X25519KeyPair.generate()
                next.localEphemeral = e
                message += e.publicKey
                next.symmetric.mixHash(e.publicKey)
            case .s:
                message += try next.symmetric.encryptAndHash(localStatic.publicKey)
            case .ee, .es, .se, .ss:
                try next.mixKey(dhFor: token)
            }
        }
        message += try next.symmetric.encryptAndHash(payload)
        guard message.count <= Self.maxMessageLength else {
            throw .handshakeMessageTooLarge(message: nextMessage + 1, length: message.count)
        }
        next.nextMessage += 1
        self = next
        return (message, isComplete ? symmetric.split() : nil)
    }

    /// `ReadMessage(message, payload_buffer)`. Returns the decrypted payload and, after the
    /// last message, the transport `CipherState`s from `Split()`.
    public mutating func readMessage(_ message: [UInt8]) throws(NoiseError) -> (payload: [UInt8], split: NoiseCipherPair?) {
        guard !isComplete, !isOurTurnToWrite else {
            throw .unexpectedEvent(event: "readMessage", state: stateDescription)
        }
        let number = nextMessage + 1
        guard message.count <= Self.maxMessageLength else {
            throw .handshakeMessageTooLarge(message: number, length: message.count)
        }
        var next = self
        var reader = MessageReader(bytes: message, messageNumber: number)
        for token in Self.messagePatterns[nextMessage] {
            switch token {
            case .e:
                // "Sets re (which must be empty) to the next DHLEN bytes from the message."
                let re = try reader.take(X25519KeyPair.keyLength)
                next.remoteEphemeralKey = re
                next.symmetric.mixHash(re)
            case .s:
                // "the next DHLEN + 16 bytes of the message if HasKey() == True, or … DHLEN"
                let length = X25519KeyPair.keyLength + (next.symmetric.cipherState.hasKey ? ChaChaPoly.tagLength : 0)
                let temp = try reader.take(length)
                next.remoteStaticKey = try Self.handshakeDecrypt(temp, with: &next.symmetric, message: number)
            case .ee, .es, .se, .ss:
                try next.mixKey(dhFor: token)
            }
        }
        let rest = reader.remaining
        if next.symmetric.cipherState.hasKey && rest.count < ChaChaPoly.tagLength {
            throw .handshakeMessageTooShort(message: number, length: message.count, needed: message.count - rest.count + ChaChaPoly.tagLength)
        }
        let payload = try Self.handshakeDecrypt(rest, with: &next.symmetric, message: number)
        next.nextMessage += 1
        self = next
        return (payload, isComplete ? symmetric.split() : nil)
    }

    /// `DecryptAndHash`, reporting a bad tag as a failure of handshake message `message`
    /// rather than of a transport frame.
    private static func handshakeDecrypt(_ ciphertext: [UInt8], with symmetric: inout NoiseSymmetricState, message: Int) throws(NoiseError) -> [UInt8] {
        do {
            return try symmetric.decryptAndHash(ciphertext)
        } catch .decryptFailed, .ciphertextTooShort {
            throw .handshakeDecryptFailed(message: message)
        }
    }

    /// The DH tokens (Noise §5.3): the letters name the initiator's key first, so `es` is
    /// DH(e, rs) for the initiator and DH(s, re) for the responder.
    private mutating func mixKey(dhFor token: NoiseToken) throws(NoiseError) {
        let initiator = role == .initiator
        let (local, remote): (X25519KeyPair?, [UInt8]?)
        switch token {
        case .ee: (local, remote) = (localEphemeral, remoteEphemeralKey)
        case .es: (local, remote) = initiator ? (localEphemeral, remoteStaticKey) : (localStatic, remoteEphemeralKey)
        case .se: (local, remote) = initiator ? (localStatic, remoteEphemeralKey) : (localEphemeral, remoteStaticKey)
        case .ss: (local, remote) = (localStatic, remoteStaticKey)
        case .e, .s: preconditionFailure("\(token) is not a DH token")
        }
        // A valid pattern (Noise §7.3 rule 1) only uses keys it already has.
        guard let local, let remote else { preconditionFailure("XX token \(token) used a key not yet known") }
        symmetric.mixKey(try local.dh(remote))
    }

    private var stateDescription: String {
        if isComplete { return "the handshake is complete" }
        let writer = nextMessage % 2 == 0 ? "initiator" : "responder"
        return "\(role) awaits message \(nextMessage + 1) from the \(writer)"
    }
}

/// Consumes a handshake message token by token, reporting truncation against the message.
private struct MessageReader {
    let bytes: [UInt8]
    let messageNumber: Int
    var index = 0

    init(bytes: [UInt8], messageNumber: Int) {
        self.bytes = bytes
        self.messageNumber = messageNumber
    }

    mutating func take(_ count: Int) throws(NoiseError) -> [UInt8] {
        guard bytes.count - index >= count else {
            throw .handshakeMessageTooShort(message: messageNumber, length: bytes.count, needed: index + count)
        }
        defer { index += count }
        return Array(bytes[index..<index + count])
    }

    var remaining: [UInt8] { Array(bytes[index...]) }
}
