/// A libp2p PeerID: the multihash of a protobuf-encoded public key (peer-ids.md).
///
/// Keys whose encoding is at most 42 bytes (Ed25519: 36) are inlined with the identity
/// multihash; larger ones are hashed with SHA2-256. The text form is base58btc.
public struct PeerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The multihash bytes.
    public let bytes: [UInt8]
    /// `KeyedHash.of(bytes)`: dictionary probes compare it before touching the bytes, and
    /// hashing a PeerID is one word.
    private let fingerprint: Int

    public init(publicKey: LibP2PPublicKey) {
        let encoded = publicKey.protobufEncoding
        if encoded.count <= 42 {
            var mh: [UInt8] = [0x00]
            ProtoVarint.append(UInt64(encoded.count), to: &mh)
            bytes = mh + encoded
        } else {
            bytes = [0x12, 0x20] + SHA256.hash(encoded)
        }
        fingerprint = KeyedHash.of(bytes)
    }

    /// Parses multihash bytes; only identity and sha2-256 multihashes name peers.
    public init(multihash: [UInt8]) throws {
        var reader = ProtoReader(multihash)
        let code = try reader.varint()
        let length = try reader.varint()
        guard length == UInt64(multihash.count - reader.index) else {
            throw IdentityError("multihash length \(length) does not match its \(multihash.count - reader.index) digest bytes")
        }
        switch code {
        case 0x00:
            guard length <= 42 else { throw IdentityError("identity multihash longer than 42 bytes") }
            _ = try KeyProtobuf.decode(Array(multihash[reader.index...]))
        case 0x12:
            guard length == 32 else { throw IdentityError("sha2-256 multihash must be 32 bytes") }
        default:
            throw IdentityError("multihash code 0x\(String(code, radix: 16)) is not a PeerID hash")
        }
        bytes = multihash
        fingerprint = KeyedHash.of(bytes)
    }


    /// Parses the base58btc text form (`12D3KooW…`, `Qm…`).
    public init(_ text: String) throws {
        guard !text.isEmpty, text.utf8.count <= 128, let raw = Base58.decode(text) else {
            throw IdentityError("'\(text.prefix(64))' is not a base58btc PeerID")
        }
        try self.init(multihash: raw)
    }

    /// The public key, when it is inlined (identity multihash).
    public var inlinedPublicKey: LibP2PPublicKey? {
        guard bytes.first == 0x00 else { return nil }
        var reader = ProtoReader(bytes)
        _ = try? reader.varint()
        _ = try? reader.varint()
        return try? LibP2PPublicKey(protobuf: Array(bytes[reader.index...]))
    }

    /// True if `key` is the key this PeerID names.
    public func matches(_ key: LibP2PPublicKey) -> Bool {
        PeerID(publicKey: key) == self
    }

    public var description: String { Base58.encode(bytes) }

    public static func == (lhs: PeerID, rhs: PeerID) -> Bool {
        lhs.fingerprint == rhs.fingerprint && lhs.bytes == rhs.bytes
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fingerprint) }

    /// Sets and dictionaries place it by its stored keyed hash (`KeyedHash.tableHash`).
    public func _rawHashValue(seed: Int) -> Int { KeyedHash.tableHash(fingerprint, seed: seed) }

    public static func < (lhs: PeerID, rhs: PeerID) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}
