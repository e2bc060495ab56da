import Identity
import Testing

@testable import Gossipsub

@Suite struct RPCCodecTests {
    let key = Ed25519KeyPair.generate()

    func fullRPC() -> GossipRPC {
        var control = ControlMessage()
        control.ihave = [("t", [[1, 2, 3], [4]])]
        control.iwant = [[9, 9]]
        control.graft = ["t", "u"]
        control.prune = [PruneInfo(topic: "t", peers: [key.peerID], backoffSeconds: 60)]
        control.idontwant = [[7, 7, 7]]
        return GossipRPC(
            subscriptions: [SubscriptionOption(subscribe: true, topic: "drtc/registry/1"), SubscriptionOption(subscribe: false, topic: "x")],
            publish: [StrictSign.sign(data: [1, 2, 3], topic: "drtc/registry/1", seqno: 42, key: key)],
            control: control)
    }

    @Test func roundTrip() throws {
        let rpc = fullRPC()
        #expect(try GossipRPC(decoding: rpc.encoded) == rpc)
    }

    /// Byte-exact against the protobuf encoding written out by hand from Specs/gossipsub.proto.
    @Test func byteExactSubscriptionAndGraft() throws {
        var control = ControlMessage()
        control.graft = ["ab"]
        let rpc = GossipRPC(subscriptions: [SubscriptionOption(subscribe: true, topic: "ab")], control: control)
        let expected: [UInt8] = [
            0x0a, 0x06, 0x08, 0x01, 0x12, 0x02, 0x61, 0x62,  // subscriptions { subscribe: true, topicid: "ab" }
            0x1a, 0x06, 0x1a, 0x04, 0x0a, 0x02, 0x61, 0x62,  // control { graft { topicID: "ab" } }
        ]
        #expect(rpc.encoded == expected)
        #expect(try GossipRPC(decoding: expected) == rpc)
    }

    /// The control message is written without a scratch buffer per submessage (its sizes are
    /// computed first): the bytes equal the nested encoding, with lengths of two-byte varints.
    @Test func controlSizesMatchNestedEncoding() throws {
        let ids = (0..<40).map { i in MessageID(key.peerID.bytes + [UInt8(i), 0, 0, 0, 0, 0, 0, 1]) }
        var control = ControlMessage()
        control.ihave = [("drtc/registry/1", ids), ("t", [])]
        control.iwant = ids
        control.graft = ["drtc/registry/1", ""]
        control.prune = [PruneInfo(topic: "t", peers: (0..<5).map { _ in Ed25519KeyPair.generate().peerID }, backoffSeconds: 60),
                         PruneInfo(topic: "u", backoffSeconds: nil)]
        control.idontwant = ids
        var reference = ProtoWriter()
        reference.messageField(3) { c in
            for entry in control.ihave {
                c.messageField(1) { i in
                    i.stringField(1, entry.topic)
                    for id in entry.ids { i.bytesField(2, id.bytes) }
                }
            }
            c.messageField(2) { i in for id in control.iwant { i.bytesField(1, id.bytes) } }
            for topic in control.graft { c.messageField(3) { $0.stringField(1, topic) } }
            for prune in control.prune {
                c.messageField(4) { p in
                    p.stringField(1, prune.topic)
                    for peer in prune.peers { p.messageField(2) { $0.bytesField(1, peer.bytes) } }
                    if let backoff = prune.backoffSeconds { p.varintField(3, backoff) }
                }
            }
            c.messageField(5) { i in for id in control.idontwant { i.bytesField(1, id.bytes) } }
        }
        let rpc = GossipRPC(control: control)
        #expect(rpc.encoded == reference.bytes)
        #expect(try GossipRPC(decoding: rpc.encoded) == rpc)
    }

    /// The simulator counts an RPC it hands over as a value by `encodedSize`
    /// (Specs/simulation.md): it must be the encoding's length, varint lengths of every width
    /// included.
    @Test func encodedSizeIsTheEncodingsLength() {
        var rpcs = [GossipRPC(), fullRPC()]
        let longTopic = String(repeating: "t", count: 200)
        for dataSize in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            var rpc = GossipRPC(subscriptions: [SubscriptionOption(subscribe: true, topic: longTopic)],
                                publish: [StrictSign.sign(data: [UInt8](repeating: 7, count: dataSize), topic: longTopic, seqno: UInt64(dataSize), key: key)])
            rpc.control.idontwant = (0..<(dataSize % 300)).map { MessageID(key.peerID.bytes + [UInt8(truncatingIfNeeded: $0)]) }
            rpcs.append(rpc)
            rpcs.append(GossipRPC(publish: rpc.publish + fullRPC().publish, control: fullRPC().control))
        }
        for rpc in rpcs { #expect(rpc.encodedSize == rpc.encoded.count) }
    }

    @Test func unknownFieldsAreSkipped() throws {
        // field 15 varint, field 14 fixed64, then a subscription.
        let bytes: [UInt8] = [0x78, 0x05, 0x71, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x04, 0x12, 0x02, 0x61, 0x62]
        let rpc = try GossipRPC(decoding: bytes)
        #expect(rpc.subscriptions == [SubscriptionOption(subscribe: false, topic: "ab")])
    }

    @Test func oversizeIsRefusedBeforeDecoding() {
        var limits = RPCLimits()
        limits.maxRPCSize = 100
        #expect(throws: GossipWireError.self) { try GossipRPC(decoding: [UInt8](repeating: 0, count: 101), limits: limits) }
    }

    @Test func tooManyControlIDs() {
        var rpc = GossipRPC()
        rpc.control.iwant = (0..<50).map { MessageID([UInt8($0)]) }
        var limits = RPCLimits()
        limits.maxControlIDsPerRPC = 49
        #expect { try GossipRPC(decoding: rpc.encoded, limits: limits) } throws: { ($0 as? GossipWireError)?.code == .tooMany }
    }

    @Test func everyTruncationThrowsOrDecodes() {
        let bytes = fullRPC().encoded
        for cut in 0..<bytes.count {
            _ = try? GossipRPC(decoding: Array(bytes[..<cut]))
        }
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2_000 {
            var mutated = bytes
            for _ in 0..<3 { mutated[Int(rng.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            _ = try? GossipRPC(decoding: mutated)
            let random = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = try? GossipRPC(decoding: random)
        }
    }

    @Test func invalidUTF8TopicIsAnError() {
        let bytes: [UInt8] = [0x0a, 0x04, 0x12, 0x02, 0xff, 0xfe]
        #expect { try GossipRPC(decoding: bytes) } throws: { ($0 as? GossipWireError)?.code == .badUTF8 }
    }
}

@Suite struct StrictSignTests {
    let key = Ed25519KeyPair.generate()

    @Test func signedMessageVerifies() {
        let m = StrictSign.sign(data: Array("hello".utf8), topic: "t", seqno: 1, key: key)
        #expect(StrictSign.verify(m) == nil)
        #expect(m.from == key.peerID.bytes)
        #expect(m.seqno == [0, 0, 0, 0, 0, 0, 0, 1])
        #expect(StrictSign.messageID(m).bytes == key.peerID.bytes + [0, 0, 0, 0, 0, 0, 0, 1])
    }

    @Test func tamperingIsDetected() {
        var m = StrictSign.sign(data: [1, 2, 3], topic: "t", seqno: 1, key: key)
        m.data = [1, 2, 4]
        #expect(StrictSign.verify(m) == .badSignature)
        var other = StrictSign.sign(data: [1], topic: "t", seqno: 1, key: key)
        other.from = Ed25519KeyPair.generate().peerID.bytes
        #expect(StrictSign.verify(other) == .badSignature)
        var noSeq = StrictSign.sign(data: [1], topic: "t", seqno: 1, key: key)
        noSeq.seqno = nil
        #expect(StrictSign.verify(noSeq) == .missingSeqno)
        var wrongKey = StrictSign.sign(data: [1], topic: "t", seqno: 1, key: key)
        wrongKey.key = Ed25519KeyPair.generate().publicKey.protobufEncoding
        #expect(StrictSign.verify(wrongKey) == .keyMismatch)
    }

    /// The signed bytes are the spec's: prefix ‖ protobuf(from, data, seqno, topic).
    @Test func signatureCoversTheSpecifiedBytes() {
        let m = StrictSign.sign(data: [0xaa], topic: "t", seqno: 2, key: key)
        var signed = Array("libp2p-pubsub:".utf8)
        signed += [0x0a, UInt8(key.peerID.bytes.count)] + key.peerID.bytes
        signed += [0x12, 0x01, 0xaa]
        signed += [0x1a, 0x08, 0, 0, 0, 0, 0, 0, 0, 2]
        signed += [0x22, 0x01, 0x74]
        #expect(key.publicKey.verify(signature: m.signature!, message: signed))
    }
}

extension ProtoWriter {
    /// A submessage built in a scratch buffer and then written with its length: the plain
    /// nested encoding the router's writer must match.
    mutating func messageField(_ field: UInt64, _ body: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        body(&inner)
        bytesField(field, inner.bytes)
    }
}
