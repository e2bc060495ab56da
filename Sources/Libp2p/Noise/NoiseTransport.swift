/// The transport phase of a noise-libp2p session: one `CipherState` per direction, from
/// `Split()` (Noise §5.2).
///
/// Every frame body is an AEAD ciphertext of at most 65535 bytes, i.e. at most 65519 bytes of
/// plaintext plus the 16-byte tag (libp2p noise spec, "Wire Format"); associated data is
/// empty (Noise §5). Any thrown error means the connection must be closed: a bad MAC on an
/// ordered stream is corruption or an attack, and nonce exhaustion ends the session.
public struct NoiseTransport: Sendable {
    /// The largest plaintext one frame carries: 65535 - 16.
    public static let maxPlaintextLength = NoiseFrame.maxBodyLength - ChaChaPoly.tagLength

    private var sender: NoiseCipherState
    private var receiver: NoiseCipherState

    /// The initiator sends with the first `Split()` cipher and receives with the second; the
    /// responder the other way round.
    init(role: NoiseRole, split: NoiseCipherPair) {
        switch role {
        case .initiator: (sender, receiver) = (split.initiatorToResponder, split.responderToInitiator)
        case .responder: (sender, receiver) = (split.responderToInitiator, split.initiatorToResponder)
        }
    }

    /// Frames sealed so far (the next sending nonce).
    public var framesSent: UInt64 { sender.nonce }
    /// Frames opened so far (the next receiving nonce).
    public var framesReceived: UInt64 { receiver.nonce }

    /// Encrypts one frame body (unframed). `plaintext` may be empty; it must not exceed
    /// `maxPlaintextLength`.
    public mutating func seal(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard plaintext.count <= Self.maxPlaintextLength else {
            throw .plaintextTooLarge(length: plaintext.count, limit: Self.maxPlaintextLength)
        }
        return try sender.encrypt(plaintext: plaintext)
    }

    /// Decrypts one frame body (unframed), as yielded by `NoiseFrameDecoder`.
    public mutating func open(_ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard ciphertext.count <= NoiseFrame.maxBodyLength else {
            throw .frameTooLarge(length: ciphertext.count, limit: NoiseFrame.maxBodyLength)
        }
        return try receiver.decrypt(ciphertext: ciphertext)
    }

    /// Seals a write of any size as consecutive frames of at most `maxPlaintextLength`
    /// plaintext bytes each, and returns them length-prefixed, ready for the wire. An empty
    /// write produces no frames.
    public mutating func sealFrames(_ data: [UInt8]) throws(NoiseError) -> [UInt8] {
        var wire: [UInt8] = []
        let frameCount = (data.count + Self.maxPlaintextLength - 1) / Self.maxPlaintextLength
        wire.reserveCapacity(data.count + frameCount * (NoiseFrame.headerLength + ChaChaPoly.tagLength))
        var start = 0
        while start < data.count {
            let end = min(start + Self.maxPlaintextLength, data.count)
            try NoiseFrame.encode(seal(Array(data[start..<end])), into: &wire)
            start = end
        }
        return wire
    }
}
