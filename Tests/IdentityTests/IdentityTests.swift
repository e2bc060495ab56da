import Foundation
import Identity
import Testing

/// Vectors from libp2p/specs peer-ids/peer-ids.md, stored in Fixtures/peer-ids.json.
struct PeerIDVectors: Decodable {
    struct Key: Decodable {
        var privateKey: String?
        var publicKey: String
        var peerId: String
    }
    var ed25519: Key
    var secp256k1: Key
    var ecdsa: Key

    static func load() throws -> PeerIDVectors {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/peer-ids.json")
        return try JSONDecoder().decode(PeerIDVectors.self, from: Data(contentsOf: url))
    }
}

@Suite struct PeerIDTests {
    @Test func ed25519SpecVector() throws {
        let v = try PeerIDVectors.load().ed25519
        let key = try Ed25519KeyPair(privateKeyProtobuf: Hex.decode(v.privateKey!)!)
        #expect(Hex.encode(key.publicKey.protobufEncoding) == v.publicKey)
        #expect(key.peerID.description == v.peerId)
        #expect(key.privateKeyProtobuf == Hex.decode(v.privateKey!)!)
        let parsed = try PeerID(v.peerId)
        #expect(parsed == key.peerID)
        #expect(parsed.inlinedPublicKey == key.publicKey)
    }

    @Test(arguments: ["secp256k1", "ecdsa"])
    func otherKeyTypesGiveSpecPeerIDs(name: String) throws {
        let vectors = try PeerIDVectors.load()
        let v = name == "secp256k1" ? vectors.secp256k1 : vectors.ecdsa
        let key = try LibP2PPublicKey(protobuf: Hex.decode(v.publicKey)!)
        #expect(PeerID(publicKey: key).description == v.peerId)
        #expect(try PeerID(v.peerId).description == v.peerId)
        // ECDSA keys are longer than 42 bytes: sha2-256 multihash, key not inlined.
        #expect((PeerID(publicKey: key).inlinedPublicKey == nil) == (name == "ecdsa"))
    }

    @Test func rejectsMalformedPeerIDs() {
        for bad in ["", "0OIl", "12D3KooW", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5", String(repeating: "z", count: 300)] {
            #expect(throws: IdentityError.self) { try PeerID(bad) }
        }
    }

    @Test func base58RoundTripsWithLeadingZeros() {
        for _ in 0..<200 {
            var bytes = secureRandomBytes(Int.random(in: 0...40))
            if Bool.random() { bytes = [0, 0] + bytes }
            #expect(Base58.decode(Base58.encode(bytes)) == bytes)
        }
        #expect(Base58.encode([0, 0, 1]) == "112")
    }
}

@Suite struct SignatureTests {
    @Test func signAndVerify() {
        let key = Ed25519KeyPair.generate()
        let message = Array("hello".utf8)
        let sig = key.sign(message)
        #expect(key.publicKey.verify(signature: sig, message: message))
        var tampered = sig
        tampered[5] ^= 1
        #expect(!key.publicKey.verify(signature: tampered, message: message))
        #expect(!Ed25519KeyPair.generate().publicKey.verify(signature: sig, message: message))
    }

    @Test func legacyNinetySixBytePrivateKey() throws {
        let key = Ed25519KeyPair.generate()
        let legacy = LibP2PPublicKey(type: .ed25519, data: key.seed + key.publicKeyBytes + key.publicKeyBytes).protobufEncoding
        #expect(try Ed25519KeyPair(privateKeyProtobuf: legacy).peerID == key.peerID)
        let mismatched = LibP2PPublicKey(type: .ed25519, data: key.seed + key.publicKeyBytes + Array(repeating: 7, count: 32)).protobufEncoding
        #expect(throws: IdentityError.self) { try Ed25519KeyPair(privateKeyProtobuf: mismatched) }
    }
}

@Suite struct KeyFileTests {
    func tempDir() -> String {
        let dir = NSTemporaryDirectory() + "drtc-id-\(UUID().uuidString)"
        return dir
    }

    @Test func createsOnceWithMode0600ThenReloads() throws {
        let dir = tempDir() + "/nested/data"
        let first = try KeyFile.loadOrCreate(dataDir: dir)
        guard case .created = first else { Issue.record("expected a new key"); return }
        let attrs = try FileManager.default.attributesOfItem(atPath: KeyFile.path(inDataDir: dir))
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let second = try KeyFile.loadOrCreate(dataDir: dir)
        guard case .loaded(let k) = second else { Issue.record("expected the existing key"); return }
        #expect(k.peerID == first.keyPair.peerID)
    }

    @Test func refusesAKeyOthersCanRead() throws {
        let dir = tempDir()
        _ = try KeyFile.loadOrCreate(dataDir: dir)
        chmod(KeyFile.path(inDataDir: dir), 0o644)
        let error = #expect(throws: IdentityError.self) { try KeyFile.loadOrCreate(dataDir: dir) }
        #expect(error?.message.contains("chmod 600") == true)
    }

    @Test func refusesACorruptKey() throws {
        let dir = tempDir()
        _ = try KeyFile.loadOrCreate(dataDir: dir)
        let path = KeyFile.path(inDataDir: dir)
        try Data([0x08, 0x01, 0x12, 0x40, 1, 2, 3]).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        let error = #expect(throws: IdentityError.self) { try KeyFile.loadOrCreate(dataDir: dir) }
        #expect(error?.message.contains("drtc keygen") == true)
    }
}
