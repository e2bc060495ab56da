import Libp2p
import Identity

/// A pubsub message ID. With StrictSign it is `from ‖ seqno` (libp2p/specs pubsub/README.md,
/// "Message Identification").
/// A Gossipsub message ID (StrictSign: `from ‖ seqno`). A struct rather than `[UInt8]`: it
/// carries a per-process keyed hash of its bytes, computed once, so that hashing is one word
/// and dictionary probes compare that word before the bytes (routers look IDs up several
/// times per frame; `Array`'s conformance feeds the hasher one byte at a time). The hash is
/// keyed (Swift's per-process seed), so peers cannot choose IDs that collide.
public struct MessageID: Hashable, Sendable, ExpressibleByArrayLiteral, CustomStringConvertible {
    public let bytes: [UInt8]
    private let fingerprint: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        fingerprint = KeyedHash.of(bytes)
    }

    public init(arrayLiteral elements: UInt8...) { self.init(elements) }

    public static func == (a: MessageID, b: MessageID) -> Bool {
        a.fingerprint == b.fingerprint && a.bytes == b.bytes
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fingerprint) }

    /// Sets and dictionaries place it by its stored keyed hash (`KeyedHash.tableHash`).
    public func _rawHashValue(seed: Int) -> Int { KeyedHash.tableHash(fingerprint, seed: seed) }

    public var count: Int { bytes.count }
    public var description: String { bytes.map { String($0, radix: 16) }.joined() }
}

/// One pubsub message as carried in `RPC.publish` (Specs/gossipsub.proto `Message`).
public struct GossipMessage: Hashable, Sendable {
    public var from: [UInt8]? { didSet { defaultID = Self.defaultID(from, seqno) } }
    public var data: [UInt8]
    public var seqno: [UInt8]? { didSet { defaultID = Self.defaultID(from, seqno) } }
    public var topic: String?
    public var signature: [UInt8]?
    public var key: [UInt8]?
    /// `from ‖ seqno`, StrictSign's message ID (`StrictSign.messageID`), kept current with the
    /// two fields. Computed once per message, it is shared by every copy of the value: a
    /// router asks for a message's ID several times (seen cache, IDONTWANT, forwards, the
    /// late check at write time), and the simulator's routers hold thousands of copies of
    /// each message; an ID built on every call was an allocation and a hash, and each router
    /// kept an array of its own for every ID it had seen. Derived from the two fields, so it
    /// changes neither equality nor the hash.
    public private(set) var defaultID: MessageID

    public init(from: [UInt8]? = nil, data: [UInt8], seqno: [UInt8]? = nil, topic: String?, signature: [UInt8]? = nil, key: [UInt8]? = nil) {
        self.from = from
        self.data = data
        self.seqno = seqno
        self.topic = topic
        self.signature = signature
        self.key = key
        defaultID = Self.defaultID(from, seqno)
    }

    private static func defaultID(_ from: [UInt8]?, _ seqno: [UInt8]?) -> MessageID {
        MessageID((from ?? []) + (seqno ?? []))
    }
}

public struct SubscriptionOption: Hashable, Sendable {
    public var subscribe: Bool
    public var topic: String
    public init(subscribe: Bool, topic: String) {
        self.subscribe = subscribe
        self.topic = topic
    }
}

public struct PruneInfo: Hashable, Sendable {
    public var topic: String
    /// Peer exchange (v1.1): peers the pruned peer may connect to instead.
    public var peers: [PeerID]
    /// Seconds the pruned peer must wait before grafting again (v1.1).
    public var backoffSeconds: UInt64?
    public init(topic: String, peers: [PeerID] = [], backoffSeconds: UInt64? = nil) {
        self.topic = topic
        self.peers = peers
        self.backoffSeconds = backoffSeconds
    }
}

/// The control part of an RPC.
public struct ControlMessage: Hashable, Sendable {
    public var ihave: [(topic: String, ids: [MessageID])] = []
    public var iwant: [MessageID] = []
    public var graft: [String] = []
    public var prune: [PruneInfo] = []
    public var idontwant: [MessageID] = []

    public init() {}

    public var isEmpty: Bool { ihave.isEmpty && iwant.isEmpty && graft.isEmpty && prune.isEmpty && idontwant.isEmpty }

    public static func == (a: ControlMessage, b: ControlMessage) -> Bool {
        a.ihave.map(\.topic) == b.ihave.map(\.topic) && a.ihave.map(\.ids) == b.ihave.map(\.ids)
            && a.iwant == b.iwant && a.graft == b.graft && a.prune == b.prune && a.idontwant == b.idontwant
    }

    public func hash(into h: inout Hasher) {
        for entry in ihave {
            h.combine(entry.topic)
            h.combine(entry.ids)
        }
        h.combine(iwant)
        h.combine(graft)
        h.combine(prune)
        h.combine(idontwant)
    }
}

/// One gossipsub RPC frame (Specs/gossipsub.proto `RPC`).
public struct GossipRPC: Hashable, Sendable {
    public var subscriptions: [SubscriptionOption] = []
    public var publish: [GossipMessage] = []
    public var control = ControlMessage()

    public init(subscriptions: [SubscriptionOption] = [], publish: [GossipMessage] = [], control: ControlMessage = ControlMessage()) {
        self.subscriptions = subscriptions
        self.publish = publish
        self.control = control
    }

    public var isEmpty: Bool { subscriptions.isEmpty && publish.isEmpty && control.isEmpty }
}

public enum GossipWireErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        case truncated, oversize, badWireType, badUTF8, badPeerID, tooMany
        public var description: String { rawValue }
    }
}

public typealias GossipWireError = CodedError<GossipWireErrorDomain>

/// Decoding limits: a peer's RPC is refused as a whole when it exceeds them, before anything
/// large is allocated.
public struct RPCLimits: Sendable {
    /// The largest RPC frame accepted (the 1 MiB).
    public var maxRPCSize = 1 << 20
    public var maxMessagesPerRPC = 1_000
    public var maxSubscriptionsPerRPC = 1_000
    /// IHAVE/IWANT/IDONTWANT message IDs per RPC, all lists together.
    public var maxControlIDsPerRPC = 20_000
    public var maxTopicLength = 256
    public var maxMessageIDLength = 256
    public init() {}
}

// MARK: - encoding (protobuf wire format, fields in number order)

struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func tag(_ field: UInt64, _ wireType: UInt64) { ProtoVarint.append(field << 3 | wireType, to: &bytes) }

    static func varintSize(_ value: UInt64) -> Int {
        var v = value, size = 1
        while v >= 0x80 { v >>= 7; size += 1 }
        return size
    }

    /// The size of a length-delimited field with a one-byte tag (field numbers below 16).
    static func fieldSize(_ payload: Int) -> Int { 1 + varintSize(UInt64(payload)) + payload }

    /// The tag and length of a length-delimited field whose `size` payload bytes follow.
    mutating func lengthPrefix(_ field: UInt64, _ size: Int) {
        tag(field, 2)
        ProtoVarint.append(UInt64(size), to: &bytes)
    }

    mutating func varintField(_ field: UInt64, _ value: UInt64) {
        tag(field, 0)
        ProtoVarint.append(value, to: &bytes)
    }

    mutating func bytesField<C: Collection>(_ field: UInt64, _ value: C) where C.Element == UInt8 {
        tag(field, 2)
        ProtoVarint.append(UInt64(value.count), to: &bytes)
        bytes.append(contentsOf: value)
    }

    mutating func stringField(_ field: UInt64, _ value: String) { bytesField(field, value.utf8) }
}

extension GossipMessage {
    /// Fields 1–4 only: the bytes StrictSign signs (after the `libp2p-pubsub:` prefix).
    func encodeUnsigned(into w: inout ProtoWriter) {
        if let from { w.bytesField(1, from) }
        w.bytesField(2, data)
        if let seqno { w.bytesField(3, seqno) }
        if let topic { w.stringField(4, topic) }
    }

    func encode(into w: inout ProtoWriter) {
        encodeUnsigned(into: &w)
        if let signature { w.bytesField(5, signature) }
        if let key { w.bytesField(6, key) }
    }

    /// The number of bytes `encode(into:)` writes: an RPC writes the message's length prefix
    /// and then the message itself, with no scratch buffer per message.
    var encodedSize: Int {
        // Fields 1–6 have one-byte tags.
        func field(_ count: Int) -> Int { 1 + ProtoWriter.varintSize(UInt64(count)) + count }
        var size = field(data.count)
        if let from { size += field(from.count) }
        if let seqno { size += field(seqno.count) }
        if let topic { size += field(topic.utf8.count) }
        if let signature { size += field(signature.count) }
        if let key { size += field(key.count) }
        return size
    }

    /// The protobuf encoding of this message alone.
    public var encoded: [UInt8] {
        var w = ProtoWriter()
        encode(into: &w)
        return w.bytes
    }
}

extension ControlMessage {
    private static func idsSize(_ ids: [MessageID]) -> Int { ids.reduce(0) { $0 + ProtoWriter.fieldSize($1.count) } }
    private static func ihaveSize(_ entry: (topic: String, ids: [MessageID])) -> Int { ProtoWriter.fieldSize(entry.topic.utf8.count) + idsSize(entry.ids) }
    private static func pruneSize(_ prune: PruneInfo) -> Int {
        var size = ProtoWriter.fieldSize(prune.topic.utf8.count)
        for peer in prune.peers { size += ProtoWriter.fieldSize(ProtoWriter.fieldSize(peer.bytes.count)) }
        if let backoff = prune.backoffSeconds { size += 1 + ProtoWriter.varintSize(backoff) }
        return size
    }

    /// The number of bytes `encode(into:)` writes. Every submessage is written as its length
    /// and then its fields, with no scratch buffer per submessage: half of all RPCs are a
    /// lone IDONTWANT, and three buffers per such frame were measurable.
    var encodedSize: Int {
        var size = 0
        for entry in ihave { size += ProtoWriter.fieldSize(Self.ihaveSize(entry)) }
        if !iwant.isEmpty { size += ProtoWriter.fieldSize(Self.idsSize(iwant)) }
        for topic in graft { size += ProtoWriter.fieldSize(ProtoWriter.fieldSize(topic.utf8.count)) }
        for prune in prune { size += ProtoWriter.fieldSize(Self.pruneSize(prune)) }
        if !idontwant.isEmpty { size += ProtoWriter.fieldSize(Self.idsSize(idontwant)) }
        return size
    }

    /// The fields of the control message (Specs/gossipsub.proto `ControlMessage`), in number order.
    func encode(into c: inout ProtoWriter) {
        for entry in ihave {
            c.lengthPrefix(1, Self.ihaveSize(entry))
            c.stringField(1, entry.topic)
            for id in entry.ids { c.bytesField(2, id.bytes) }
        }
        if !iwant.isEmpty {
            c.lengthPrefix(2, Self.idsSize(iwant))
            for id in iwant { c.bytesField(1, id.bytes) }
        }
        for topic in graft {
            c.lengthPrefix(3, ProtoWriter.fieldSize(topic.utf8.count))
            c.stringField(1, topic)
        }
        for prune in prune {
            c.lengthPrefix(4, Self.pruneSize(prune))
            c.stringField(1, prune.topic)
            for peer in prune.peers {
                c.lengthPrefix(2, ProtoWriter.fieldSize(peer.bytes.count))
                c.bytesField(1, peer.bytes)
            }
            if let backoff = prune.backoffSeconds { c.varintField(3, backoff) }
        }
        if !idontwant.isEmpty {
            c.lengthPrefix(5, Self.idsSize(idontwant))
            for id in idontwant { c.bytesField(1, id.bytes) }
        }
    }
}

extension SubscriptionOption {
    /// Fields 1 (a one-byte varint) and 2.
    var encodedSize: Int { 2 + ProtoWriter.fieldSize(topic.utf8.count) }
}

extension GossipRPC {
    /// The number of bytes `encoded` holds, computed without encoding: what the simulator
    /// counts for an RPC it hands to the receiving router as a value (Specs/simulation.md).
    public var encodedSize: Int { encodedSize(controlSize: control.isEmpty ? 0 : control.encodedSize) }

    /// `encodedSize` given the control message's (which walks every ID it carries, so
    /// `encoded` computes it once for both the capacity and the length prefix).
    private func encodedSize(controlSize: Int) -> Int {
        var size = 0
        for sub in subscriptions { size += ProtoWriter.fieldSize(sub.encodedSize) }
        for message in publish { size += ProtoWriter.fieldSize(message.encodedSize) }
        if !control.isEmpty { size += ProtoWriter.fieldSize(controlSize) }
        return size
    }

    /// The protobuf encoding (without the uvarint length prefix of the stream framing).
    public var encoded: [UInt8] {
        let controlSize = control.isEmpty ? 0 : control.encodedSize
        var w = ProtoWriter()
        w.bytes.reserveCapacity(encodedSize(controlSize: controlSize))
        // Each submessage is its length, then its fields: none is built in a buffer first.
        for sub in subscriptions {
            w.lengthPrefix(1, sub.encodedSize)
            w.varintField(1, sub.subscribe ? 1 : 0)
            w.stringField(2, sub.topic)
        }
        for message in publish {
            w.lengthPrefix(2, message.encodedSize)
            message.encode(into: &w)
        }
        if !control.isEmpty {
            w.lengthPrefix(3, controlSize)
            control.encode(into: &w)
        }
        return w.bytes
    }
}

// MARK: - decoding

/// A bounds-checked protobuf reader over a slice. Unknown fields are skipped (forward
/// compatibility); malformed input throws.
struct ProtoSliceReader {
    let bytes: [UInt8]
    var index: Int
    let end: Int

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.index = start
        self.end = end ?? bytes.count
    }

    var atEnd: Bool { index >= end }

    mutating func varint() throws -> UInt64 {
        guard let v = ProtoVarint.read(bytes, &index, end: end) else { throw GossipWireError(.truncated, "truncated or over-long varint") }
        return v
    }

    /// Returns the (start, end) of a length-delimited field's payload and skips it.
    mutating func lengthDelimited() throws -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - index) else { throw GossipWireError(.truncated, "field length \(length) exceeds the \(end - index) bytes left") }
        let range = index..<(index + Int(length))
        index = range.upperBound
        return range
    }

    mutating func skip(wireType: UInt64) throws {
        switch wireType {
        case 0: _ = try varint()
        case 1: try advance(8)
        case 2: _ = try lengthDelimited()
        case 5: try advance(4)
        default: throw GossipWireError(.badWireType, "unsupported wire type \(wireType)")
        }
    }

    mutating func advance(_ n: Int) throws {
        guard end - index >= n else { throw GossipWireError(.truncated, "truncated fixed-width field") }
        index += n
    }

    /// Calls `body(field, wireType, reader)` for every field.
    mutating func forEachField(_ body: (UInt64, UInt64, inout ProtoSliceReader) throws -> Void) throws {
        while !atEnd {
            let key = try varint()
            try body(key >> 3, key & 7, &self)
        }
    }

    func sub(_ range: Range<Int>) -> ProtoSliceReader { ProtoSliceReader(bytes, from: range.lowerBound, to: range.upperBound) }
    func slice(_ range: Range<Int>) -> [UInt8] { Array(bytes[range]) }

    func string(_ range: Range<Int>, limit: Int, what: String) throws -> String {
        guard range.count <= limit else { throw GossipWireError(.oversize, "\(what) longer than \(limit) bytes") }
        guard let s = String(validating: bytes[range], as: UTF8.self) else { throw GossipWireError(.badUTF8, "\(what) is not UTF-8") }
        return s
    }
}

extension GossipRPC {
    /// Decodes one RPC frame, enforcing `limits`.
    public init(decoding bytes: [UInt8], limits: RPCLimits = RPCLimits()) throws {
        guard bytes.count <= limits.maxRPCSize else {
            throw GossipWireError(.oversize, "RPC of \(bytes.count) bytes exceeds the \(limits.maxRPCSize)-byte limit")
        }
        self.init()
        var idCount = 0
        func id(_ r: ProtoSliceReader, _ range: Range<Int>) throws -> MessageID {
            guard range.count <= limits.maxMessageIDLength else { throw GossipWireError(.oversize, "message ID longer than \(limits.maxMessageIDLength) bytes") }
            idCount += 1
            guard idCount <= limits.maxControlIDsPerRPC else { throw GossipWireError(.tooMany, "more than \(limits.maxControlIDsPerRPC) message IDs in one RPC") }
            return MessageID(r.slice(range))
        }
        var reader = ProtoSliceReader(bytes)
        try reader.forEachField { field, wire, r in
            switch (field, wire) {
            case (1, 2):
                var sub = r.sub(try r.lengthDelimited())
                var option = SubscriptionOption(subscribe: false, topic: "")
                try sub.forEachField { f, w, s in
                    switch (f, w) {
                    case (1, 0): option.subscribe = try s.varint() != 0
                    case (2, 2): option.topic = try s.string(try s.lengthDelimited(), limit: limits.maxTopicLength, what: "topic")
                    default: try s.skip(wireType: w)
                    }
                }
                guard subscriptions.count < limits.maxSubscriptionsPerRPC else { throw GossipWireError(.tooMany, "more than \(limits.maxSubscriptionsPerRPC) subscriptions in one RPC") }
                subscriptions.append(option)
            case (2, 2):
                var m = r.sub(try r.lengthDelimited())
                // Fields first, the message once (its ID is computed when it is built).
                var from: [UInt8]?, data: [UInt8] = [], seqno: [UInt8]?, topic: String?, signature: [UInt8]?, key: [UInt8]?
                try m.forEachField { f, w, s in
                    switch (f, w) {
                    case (1, 2): from = s.slice(try s.lengthDelimited())
                    case (2, 2): data = s.slice(try s.lengthDelimited())
                    case (3, 2): seqno = s.slice(try s.lengthDelimited())
                    case (4, 2): topic = try s.string(try s.lengthDelimited(), limit: limits.maxTopicLength, what: "topic")
                    case (5, 2): signature = s.slice(try s.lengthDelimited())
                    case (6, 2): key = s.slice(try s.lengthDelimited())
                    default: try s.skip(wireType: w)
                    }
                }
                guard publish.count < limits.maxMessagesPerRPC else { throw GossipWireError(.tooMany, "more than \(limits.maxMessagesPerRPC) messages in one RPC") }
                publish.append(GossipMessage(from: from, data: data, seqno: seqno, topic: topic, signature: signature, key: key))
            case (3, 2):
                var c = r.sub(try r.lengthDelimited())
                try c.forEachField { f, w, s in
                    guard w == 2 else { return try s.skip(wireType: w) }
                    var inner = s.sub(try s.lengthDelimited())
                    switch f {
                    case 1:
                        var topic = ""
                        var ids: [MessageID] = []
                        try inner.forEachField { f2, w2, i in
                            switch (f2, w2) {
                            case (1, 2): topic = try i.string(try i.lengthDelimited(), limit: limits.maxTopicLength, what: "IHAVE topic")
                            case (2, 2): ids.append(try id(i, try i.lengthDelimited()))
                            default: try i.skip(wireType: w2)
                            }
                        }
                        control.ihave.append((topic, ids))
                    case 2, 5:
                        // Straight into the RPC: a scratch array per IWANT/IDONTWANT was an
                        // allocation per frame (a failed decode discards the whole RPC anyway).
                        try inner.forEachField { f2, w2, i in
                            guard f2 == 1 && w2 == 2 else { return try i.skip(wireType: w2) }
                            let wanted = try id(i, try i.lengthDelimited())
                            if f == 2 { control.iwant.append(wanted) } else { control.idontwant.append(wanted) }
                        }
                    case 3:
                        var topic = ""
                        try inner.forEachField { f2, w2, i in
                            if f2 == 1 && w2 == 2 { topic = try i.string(try i.lengthDelimited(), limit: limits.maxTopicLength, what: "GRAFT topic") } else { try i.skip(wireType: w2) }
                        }
                        control.graft.append(topic)
                    case 4:
                        var prune = PruneInfo(topic: "")
                        try inner.forEachField { f2, w2, i in
                            switch (f2, w2) {
                            case (1, 2): prune.topic = try i.string(try i.lengthDelimited(), limit: limits.maxTopicLength, what: "PRUNE topic")
                            case (2, 2):
                                var info = i.sub(try i.lengthDelimited())
                                try info.forEachField { f3, w3, p in
                                    if f3 == 1 && w3 == 2 {
                                        // Peers we cannot parse are dropped, not fatal: PX is advisory.
                                        let range = try p.lengthDelimited()
                                        if let peer = try? PeerID(multihash: p.slice(range)), prune.peers.count < 64 {
                                            prune.peers.append(peer)
                                        }
                                    } else {
                                        try p.skip(wireType: w3)
                                    }
                                }
                            case (3, 0): prune.backoffSeconds = try i.varint()
                            default: try i.skip(wireType: w2)
                            }
                        }
                        control.prune.append(prune)
                    default:
                        break
                    }
                }
            default:
                try r.skip(wireType: wire)
            }
        }
    }
}
