import Identity

/// Message signing per libp2p/specs pubsub/README.md "Message Signing", in the StrictSign
/// policy: every message carries `from`, `seqno` and `signature`; the signature is over
/// `"libp2p-pubsub:" ‖ protobuf(Message without signature and key)`.
public enum StrictSign {
    public static let prefix = Array("libp2p-pubsub:".utf8)

    /// Why a message failed the StrictSign checks (the label is a metrics label).
    public enum Failure: String, Sendable, CaseIterable {
        case missingFrom = "missing_from"
        case missingSeqno = "missing_seqno"
        case missingSignature = "missing_signature"
        case badFrom = "bad_from"
        case keyMismatch = "key_mismatch"
        case badSignature = "bad_signature"
    }

    /// The default message ID: `from ‖ seqno`.
    public static func messageID(_ message: GossipMessage) -> MessageID { message.defaultID }

    /// Builds and signs a message from `key`'s peer.
    public static func sign(data: [UInt8], topic: String, seqno: UInt64, key: Ed25519KeyPair) -> GossipMessage {
        var seq: [UInt8] = []
        withUnsafeBytes(of: seqno.bigEndian) { seq += $0 }
        var message = GossipMessage(from: key.peerID.bytes, data: data, seqno: seq, topic: topic)
        var w = ProtoWriter()
        w.bytes = prefix
        message.encodeUnsigned(into: &w)
        message.signature = key.sign(w.bytes)
        // An Ed25519 PeerID inlines its key, so `key` is left out (the spec allows it).
        return message
    }

    /// Checks `from`, `seqno` and the signature. Returns nil when the message is valid.
    public static func verify(_ message: GossipMessage) -> Failure? {
        guard let from = message.from, !from.isEmpty else { return .missingFrom }
        guard let seqno = message.seqno, !seqno.isEmpty, seqno.count <= 64 else { return .missingSeqno }
        guard let signature = message.signature else { return .missingSignature }
        guard let peer = try? PeerID(multihash: from) else { return .badFrom }
        let publicKey: LibP2PPublicKey
        if let keyBytes = message.key {
            guard let key = try? LibP2PPublicKey(protobuf: keyBytes), peer.matches(key) else { return .keyMismatch }
            publicKey = key
        } else {
            guard let inlined = peer.inlinedPublicKey else { return .keyMismatch }
            publicKey = inlined
        }
        var w = ProtoWriter()
        w.bytes = prefix
        message.encodeUnsigned(into: &w)
        return publicKey.verify(signature: signature, message: w.bytes) ? nil : .badSignature
    }
}
