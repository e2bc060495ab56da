import Foundation
import Identity
import Testing

/// RFC 9381 Appendix B.3 vectors, stored in Fixtures/qos/ecvrf-rfc9381.json.
struct ECVRFVectors: Decodable {
    struct Vector: Decodable {
        var sk, pk, alpha, h, pi, beta: String
    }
    var vectors: [Vector]

    static func load() throws -> [Vector] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/qos/ecvrf-rfc9381.json")
        return try JSONDecoder().decode(ECVRFVectors.self, from: Data(contentsOf: url)).vectors
    }
}

@Suite struct ECVRFTests {
    @Test func rfc9381Vectors() throws {
        for v in try ECVRFVectors.load() {
            let key = try Ed25519KeyPair(seed: Hex.decode(v.sk)!)
            #expect(Hex.encode(key.publicKeyBytes) == v.pk)
            let proof = ECVRF.prove(Hex.decode(v.alpha)!, key: key)
            #expect(Hex.encode(proof) == v.pi)
            let beta = ECVRF.verify(proof: proof, publicKey: key.publicKeyBytes, alpha: Hex.decode(v.alpha)!)
            #expect(beta.map(Hex.encode) == v.beta)
        }
    }

    @Test func tamperedProofsAndWrongInputsFail() throws {
        let v = try ECVRFVectors.load()[2]
        let pk = Hex.decode(v.pk)!, alpha = Hex.decode(v.alpha)!, pi = Hex.decode(v.pi)!
        #expect(ECVRF.verify(proof: pi, publicKey: pk, alpha: alpha) != nil)
        #expect(ECVRF.verify(proof: pi, publicKey: pk, alpha: alpha + [0]) == nil)
        let other = try ECVRFVectors.load()[0]
        #expect(ECVRF.verify(proof: pi, publicKey: Hex.decode(other.pk)!, alpha: alpha) == nil)
        for i in 0..<pi.count {
            var bad = pi
            bad[i] ^= 1
            #expect(ECVRF.verify(proof: bad, publicKey: pk, alpha: alpha) == nil, "bit flip in byte \(i) verified")
        }
        #expect(ECVRF.verify(proof: Array(pi.prefix(79)), publicKey: pk, alpha: alpha) == nil)
        // s ≥ L is refused even though s − L would verify.
        var big = pi
        var carry = 0
        let order: [UInt8] = [0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14] + [UInt8](repeating: 0, count: 15) + [0x10]
        for i in 0..<32 {
            let sum = Int(big[48 + i]) + Int(order[i]) + carry
            big[48 + i] = UInt8(sum & 0xff)
            carry = sum >> 8
        }
        if carry == 0 { #expect(ECVRF.verify(proof: big, publicKey: pk, alpha: alpha) == nil) }
    }

    @Test func outputsAreUniquePerKeyAndInput() {
        let a = Ed25519KeyPair.generate(), b = Ed25519KeyPair.generate()
        let p1 = ECVRF.prove([1, 2, 3], key: a)
        #expect(ECVRF.prove([1, 2, 3], key: a) == p1)
        let beta = ECVRF.verify(proof: p1, publicKey: a.publicKeyBytes, alpha: [1, 2, 3])
        #expect(beta?.count == 64)
        #expect(ECVRF.verify(proof: ECVRF.prove([1, 2, 3], key: b), publicKey: b.publicKeyBytes, alpha: [1, 2, 3]) != beta)
        #expect(ECVRF.verify(proof: ECVRF.prove([1, 2, 4], key: a), publicKey: a.publicKeyBytes, alpha: [1, 2, 4]) != beta)
    }
}
