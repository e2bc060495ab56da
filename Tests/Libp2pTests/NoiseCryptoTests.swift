import Identity
import Testing

@testable import Libp2p

@Suite struct NoiseCryptoTests {
    /// RFC 7748 §6.1 Diffie-Hellman test vector.
    @Test func x25519MatchesRFC7748() throws {
        let alice = try X25519KeyPair(privateKey: bytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        let bob = try X25519KeyPair(privateKey: bytes("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        #expect(Hex.encode(alice.publicKey) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(Hex.encode(bob.publicKey) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        #expect(Hex.encode(try alice.dh(bob.publicKey)) == shared)
        #expect(Hex.encode(try bob.dh(alice.publicKey)) == shared)
    }

    @Test func x25519RejectsAllZeroSharedSecret() throws {
        let key = X25519KeyPair.generate()
        let zero = [UInt8](repeating: 0, count: 32)
        #expect(throws: NoiseError.lowOrderPublicKey(zero)) { try key.dh(zero) }
        // u = 1 is another low-order point.
        let one = [1] + [UInt8](repeating: 0, count: 31)
        #expect(throws: NoiseError.lowOrderPublicKey(one)) { try key.dh(one) }
    }

    @Test func x25519RejectsWrongKeyLengths() {
        #expect(throws: NoiseError.invalidKeyLength(what: "X25519 private key", expected: 32, actual: 31)) {
            try X25519KeyPair(privateKey: [UInt8](repeating: 1, count: 31))
        }
        #expect(throws: NoiseError.invalidKeyLength(what: "X25519 public key", expected: 32, actual: 33)) {
            try X25519KeyPair.generate().dh([UInt8](repeating: 9, count: 33))
        }
    }

    @Test func keyPairDescriptionHidesPrivateKey() throws {
        let key = try X25519KeyPair(privateKey: [UInt8](repeating: 0xab, count: 32))
        #expect(!key.description.contains("abab"))
        #expect(key.description.contains(Hex.encode(key.publicKey)))
    }

    /// Noise §12.3: 32 bits of zeros, then n little-endian.
    @Test func chaChaPolyNonceLayout() {
        #expect(ChaChaPoly.nonce(0) == [UInt8](repeating: 0, count: 12))
        #expect(ChaChaPoly.nonce(0x0102_0304_0506_0708) == [0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
    }

    /// Noise's HKDF is RFC 5869 HKDF with empty info; RFC 5869 test case 3 (empty salt and
    /// info, L = 42) is output1 ‖ output2[0..<10].
    @Test func hkdfMatchesRFC5869() {
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        let (output1, output2) = NoiseHash.hkdf(chainingKey: [], inputKeyMaterial: ikm)
        #expect(Hex.encode(output1 + output2.prefix(10))
            == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    /// RFC 4231 test case 2 ("Jefe").
    @Test func hmacMatchesRFC4231() {
        let mac = NoiseHash.hmac(key: Array("Jefe".utf8), Array("what do ya want ".utf8), Array("for nothing?".utf8))
        #expect(Hex.encode(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func cipherStateWithoutKeyPassesThrough() throws {
        var cipher = NoiseCipherState()
        #expect(!cipher.hasKey)
        #expect(try cipher.encrypt(ad: [1], plaintext: [1, 2, 3]) == [1, 2, 3])
        #expect(try cipher.decrypt(ad: [1], ciphertext: [4, 5]) == [4, 5])
        #expect(cipher.nonce == 0)
    }

    /// Noise §5.1: n = 2^64-1 is reserved, so the last usable nonce is 2^64-2.
    @Test func cipherStateRefusesReservedNonce() throws {
        let key = [UInt8](repeating: 7, count: 32)
        var sender = NoiseCipherState(key: key)
        var receiver = NoiseCipherState(key: key)
        sender.setNonce(UInt64.max - 1)
        receiver.setNonce(UInt64.max - 1)
        let last = try sender.encrypt(plaintext: [42])
        #expect(try receiver.decrypt(ciphertext: last) == [42])
        #expect(sender.nonce == UInt64.max)
        #expect(throws: NoiseError.nonceExhausted) { try sender.encrypt(plaintext: [1]) }
        #expect(throws: NoiseError.nonceExhausted) { try receiver.decrypt(ciphertext: last) }
    }

    /// Noise §5.1: a failed decrypt does not consume the nonce.
    @Test func failedDecryptKeepsNonce() throws {
        let key = [UInt8](repeating: 3, count: 32)
        var sender = NoiseCipherState(key: key)
        var receiver = NoiseCipherState(key: key)
        let sealed = try sender.encrypt(ad: [9], plaintext: Array("hello".utf8))
        #expect(throws: NoiseError.decryptFailed(frame: 0)) { try receiver.decrypt(ad: [8], ciphertext: sealed) }
        #expect(receiver.nonce == 0)
        #expect(try receiver.decrypt(ad: [9], ciphertext: sealed) == Array("hello".utf8))
        #expect(receiver.nonce == 1)
        #expect(!"\(receiver)".contains("0303"))
    }
}
