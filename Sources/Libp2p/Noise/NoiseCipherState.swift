/// Noise §5.1 `CipherState`: a ChaChaPoly key `k` (possibly empty) and a 64-bit nonce `n`.
///
/// During the handshake one lives inside `NoiseSymmetricState`; `Split()` then yields one per
/// direction for transport messages.
public struct NoiseCipherState: Sendable, CustomStringConvertible {
    /// `k`; nil is the spec's `empty`.
    private var key: [UInt8]?
    /// `n`: the nonce the next `encrypt`/`decrypt` will use. For a transport `CipherState` this
    /// is also the number of messages processed so far.
    public private(set) var nonce: UInt64 = 0

    /// Noise §5.1: "The maximum `n` value (2^64-1) is reserved for other use."
    static let reservedNonce = UInt64.max

    /// A `CipherState` with an empty key (`InitializeKey(empty)`).
    public init() {
        key = nil
    }

    /// `InitializeKey(key)`: sets `k = key`, `n = 0`.
    init(key: [UInt8]) {
        precondition(key.count == ChaChaPoly.keyLength, "Noise cipher keys are 32 bytes")
        self.key = key
    }

    /// `HasKey()`.
    public var hasKey: Bool { key != nil }

    /// `SetNonce(nonce)` (Noise §5.1, for out-of-order delivery as in §11.4). libp2p runs over
    /// ordered streams and never needs it; it exists for the spec's nonce-limit tests.
    public mutating func setNonce(_ nonce: UInt64) {
        self.nonce = nonce
    }

    /// `EncryptWithAd(ad, plaintext)`: `ENCRYPT(k, n++, ad, plaintext)`, or `plaintext`
    /// unchanged while `k` is empty.
    ///
    /// Throws `nonceExhausted` once `n` has reached 2^64-1 (Noise §5.1).
    public mutating func encrypt(ad: [UInt8] = [], plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard let key else { return plaintext }
        guard nonce != Self.reservedNonce else { throw .nonceExhausted }
        let ciphertext = ChaChaPoly.encrypt(key: key, nonce: nonce, ad: ad, plaintext: plaintext)
        nonce += 1
        return ciphertext
    }

    /// `DecryptWithAd(ad, ciphertext)`: `DECRYPT(k, n++, ad, ciphertext)`, or `ciphertext`
    /// unchanged while `k` is empty.
    ///
    /// On an authentication failure `n` is not incremented (Noise §5.1) and `decryptFailed`
    /// names the frame by its nonce. Throws `nonceExhausted` once `n` has reached 2^64-1.
    public mutating func decrypt(ad: [UInt8] = [], ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard let key else { return ciphertext }
        guard nonce != Self.reservedNonce else { throw .nonceExhausted }
        guard ciphertext.count >= ChaChaPoly.tagLength else {
            throw .ciphertextTooShort(frame: nonce, length: ciphertext.count)
        }
        guard let plaintext = ChaChaPoly.decrypt(key: key, nonce: nonce, ad: ad, ciphertext: ciphertext) else {
            throw .decryptFailed(frame: nonce)
        }
        nonce += 1
        return plaintext
    }

    /// Never prints the key.
    public var description: String {
        "NoiseCipherState(key: \(hasKey ? "set" : "empty"), n: \(nonce))"
    }
}

/// Noise §5.2 `SymmetricState`: the handshake's `CipherState` plus the chaining key `ck` and the
/// transcript hash `h`.
struct NoiseSymmetricState: Sendable {
    private(set) var cipherState = NoiseCipherState()
    /// `ck`.
    private(set) var chainingKey: [UInt8]
    /// `h`; after the handshake, `GetHandshakeHash()` (Noise §11.2 channel binding).
    private(set) var handshakeHash: [UInt8]

    /// `InitializeSymmetric(protocol_name)`.
    init(protocolName: [UInt8]) {
        if protocolName.count <= NoiseHash.length {
            // "sets h equal to protocol_name with zero bytes appended to make HASHLEN bytes"
            handshakeHash = protocolName + [UInt8](repeating: 0, count: NoiseHash.length - protocolName.count)
        } else {
            handshakeHash = NoiseHash.hash(protocolName)
        }
        chainingKey = handshakeHash
    }

    /// `MixKey(input_key_material)`: `ck, temp_k = HKDF(ck, ikm, 2)`; `InitializeKey(temp_k)`.
    /// (HASHLEN is 32, so `temp_k` needs no truncation.)
    mutating func mixKey(_ inputKeyMaterial: [UInt8]) {
        let (ck, tempKey) = NoiseHash.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial)
        chainingKey = ck
        cipherState = NoiseCipherState(key: tempKey)
    }

    /// `MixHash(data)`: `h = HASH(h || data)`.
    mutating func mixHash(_ data: [UInt8]) {
        handshakeHash = NoiseHash.hash(handshakeHash, data)
    }

    /// `EncryptAndHash(plaintext)`: encrypts with `h` as associated data, then mixes the
    /// ciphertext into `h`. While `k` is empty the "ciphertext" is the plaintext.
    mutating func encryptAndHash(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let ciphertext = try cipherState.encrypt(ad: handshakeHash, plaintext: plaintext)
        mixHash(ciphertext)
        return ciphertext
    }

    /// `DecryptAndHash(ciphertext)`: decrypts with `h` as associated data, then mixes the
    /// ciphertext into `h`.
    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let plaintext = try cipherState.decrypt(ad: handshakeHash, ciphertext: ciphertext)
        mixHash(ciphertext)
        return plaintext
    }

    /// `Split()`: `temp_k1, temp_k2 = HKDF(ck, zerolen, 2)`; the first `CipherState` encrypts
    /// initiator → responder, the second responder → initiator.
    func split() -> NoiseCipherPair {
        let (k1, k2) = NoiseHash.hkdf(chainingKey: chainingKey, inputKeyMaterial: [])
        return NoiseCipherPair(
            initiatorToResponder: NoiseCipherState(key: k1),
            responderToInitiator: NoiseCipherState(key: k2))
    }
}

/// The two transport `CipherState`s that `Split()` returns (Noise §5.2).
public struct NoiseCipherPair: Sendable {
    public var initiatorToResponder: NoiseCipherState
    public var responderToInitiator: NoiseCipherState
}
