import CSodium

/// libp2p key types (peer-ids.md, `enum KeyType`).
public enum KeyType: UInt64, Sendable {
    case rsa = 0
    case ed25519 = 1
    case secp256k1 = 2
    case ecdsa = 3
}

public struct IdentityError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A libp2p `PublicKey` protobuf: `{ required KeyType Type = 1; required bytes Data = 2; }`.
///
/// drtc signs only with Ed25519, but PeerIDs of other key types can still be parsed and
/// compared, because the PeerID is defined over this encoding.
public struct LibP2PPublicKey: Hashable, Sendable {
    public var type: KeyType
    public var data: [UInt8]

    public init(type: KeyType, data: [UInt8]) {
        self.type = type
        self.data = data
    }

    /// Canonical protobuf encoding: field 1 (varint), then field 2 (bytes).
    public var protobufEncoding: [UInt8] {
        var out: [UInt8] = [0x08]
        ProtoVarint.append(type.rawValue, to: &out)
        out.append(0x12)
        ProtoVarint.append(UInt64(data.count), to: &out)
        out.append(contentsOf: data)
        return out
    }

    public init(protobuf bytes: [UInt8]) throws {
        let (type, data) = try KeyProtobuf.decode(bytes)
        self.type = type
        self.data = data
    }

    /// Verifies a signature made by this key. Only Ed25519 is supported; any other type fails.
    public func verify(signature: [UInt8], message: [UInt8]) -> Bool {
        guard type == .ed25519, data.count == 32 else { return false }
        return Ed25519.verify(signature: signature, message: message, publicKey: data)
    }
}

enum KeyProtobuf {
    /// Decodes `{Type = 1; Data = 2}`, rejecting unknown fields, duplicates and missing ones:
    /// keys are identity material, so lenient parsing would let two encodings name one key.
    static func decode(_ bytes: [UInt8]) throws -> (KeyType, [UInt8]) {
        var reader = ProtoReader(bytes)
        var type: KeyType?
        var data: [UInt8]?
        while !reader.atEnd {
            let tag = try reader.varint()
            switch tag {
            case 0x08 where type == nil:
                let raw = try reader.varint()
                guard let t = KeyType(rawValue: raw) else { throw IdentityError("unknown key type \(raw)") }
                type = t
            case 0x12 where data == nil:
                data = try reader.lengthDelimited()
            default:
                throw IdentityError("unexpected or repeated field tag \(tag) in key protobuf")
            }
        }
        guard let type, let data else { throw IdentityError("key protobuf misses Type or Data") }
        return (type, data)
    }
}

/// Minimal protobuf primitives for the two tiny libp2p key messages. Larger messages use
/// swift-protobuf generated code; these exist because key and PeerID handling sits below it.
public enum ProtoVarint {
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Reads a varint from `bytes[index..<end]`, advancing `index`. Nil when it is truncated or
    /// longer than 10 bytes. The one decoder behind every protobuf-style reader in drtc.
    public static func read(_ bytes: [UInt8], _ index: inout Int, end: Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var i = index
        while i < end, shift < 64 {
            let b = bytes[i]
            i += 1
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 {
                index = i
                return result
            }
            shift += 7
        }
        return nil
    }
}

struct ProtoReader {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var atEnd: Bool { index >= bytes.count }

    mutating func varint() throws -> UInt64 {
        guard let v = ProtoVarint.read(bytes, &index, end: bytes.count) else { throw IdentityError("truncated or over-long varint") }
        return v
    }

    mutating func lengthDelimited() throws -> [UInt8] {
        let length = try varint()
        guard length <= UInt64(bytes.count - index) else { throw IdentityError("length \(length) exceeds input") }
        let out = Array(bytes[index..<index + Int(length)])
        index += Int(length)
        return out
    }
}

/// Ed25519 through libsodium.
public enum Ed25519 {
    public static let publicKeyLength = 32
    public static let seedLength = 32
    public static let signatureLength = 64

    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureLength, publicKey.count == publicKeyLength else { return false }
        Sodium.ensureInitialised()
        return message.withUnsafeBufferPointer { m in
            crypto_sign_verify_detached(signature, m.baseAddress, UInt64(m.count), publicKey) == 0
        }
    }
}

/// An Ed25519 key pair: the node's identity.
public struct Ed25519KeyPair: Sendable {
    /// 32-byte seed (the RFC 8032 private key).
    public let seed: [UInt8]
    public let publicKeyBytes: [UInt8]
    /// libsodium's 64-byte secret key (seed ‖ public key), kept to avoid re-deriving it per signature.
    private let secretKey: [UInt8]

    public init(seed: [UInt8]) throws {
        guard seed.count == Ed25519.seedLength else {
            throw IdentityError("Ed25519 seed must be 32 bytes, got \(seed.count)")
        }
        Sodium.ensureInitialised()
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        guard crypto_sign_seed_keypair(&pk, &sk, seed) == 0 else {
            throw IdentityError("crypto_sign_seed_keypair failed")
        }
        self.seed = seed
        self.publicKeyBytes = pk
        self.secretKey = sk
    }

    public static func generate() -> Ed25519KeyPair {
        // A 32-byte seed from the CSPRNG is always valid.
        try! Ed25519KeyPair(seed: secureRandomBytes(32))
    }

    public var publicKey: LibP2PPublicKey { LibP2PPublicKey(type: .ed25519, data: publicKeyBytes) }
    public var peerID: PeerID { PeerID(publicKey: publicKey) }

    public func sign(_ message: [UInt8]) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: Ed25519.signatureLength)
        message.withUnsafeBufferPointer { m in
            _ = crypto_sign_detached(&sig, nil, m.baseAddress, UInt64(m.count), secretKey)
        }
        return sig
    }

    /// libp2p `PrivateKey` protobuf with Data = seed ‖ public key (peer-ids.md, preferred form).
    public var privateKeyProtobuf: [UInt8] {
        LibP2PPublicKey(type: .ed25519, data: seed + publicKeyBytes).protobufEncoding
    }

    /// Parses a libp2p `PrivateKey` protobuf. Accepts the 64-byte form and the legacy 96-byte
    /// form (whose two public-key copies must agree), and checks that the stored public key is
    /// the one the seed derives.
    public init(privateKeyProtobuf bytes: [UInt8]) throws {
        let (type, data) = try KeyProtobuf.decode(bytes)
        guard type == .ed25519 else { throw IdentityError("only Ed25519 identities are supported, found \(type)") }
        guard data.count == 64 || data.count == 96 else {
            throw IdentityError("Ed25519 private key data must be 64 or 96 bytes, got \(data.count)")
        }
        if data.count == 96, data[32..<64] != data[64..<96] {
            throw IdentityError("legacy 96-byte Ed25519 key has two different public keys")
        }
        try self.init(seed: Array(data[0..<32]))
        guard Array(data[32..<64]) == publicKeyBytes else {
            throw IdentityError("stored public key does not match the private key")
        }
    }
}
