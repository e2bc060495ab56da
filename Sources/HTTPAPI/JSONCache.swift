import Identity
import QoS
import Registry
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Records are immutable, so each one's JSON is encoded once (by JSONEncoder) and reused:
/// on the `/getMediaNodes` hot path a response is then a concatenation of cached fragments,
/// about 20× cheaper than encoding ten records per request.
final class RecordJSONCache: Sendable {
    private struct Entry {
        var record: SignedRecord  // keeps the ObjectIdentifier valid while cached
        var json: [UInt8]
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])
    private let capacity: Int

    init(capacity: Int = 50_000) { self.capacity = capacity }

    /// The record's JSON object, without `distanceKm`.
    func json(for record: SignedRecord) -> [UInt8] {
        let id = ObjectIdentifier(record)
        if let hit = entries.withLock({ $0[id]?.json }) { return hit }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let json = Array((try? encoder.encode(MediaNodeJSON(record))) ?? Data("{}".utf8))
        entries.withLock { e in
            // Replaced records accumulate as their owners refresh; start over when full.
            if e.count >= capacity { e.removeAll(keepingCapacity: true) }
            e[id] = Entry(record: record, json: json)
        }
        return json
    }

    /// `{"nodes":[…]}` with `distanceKm` (when known) and `qos` (when the node runs QoS) first
    /// in each object.
    func nodeList(_ nodes: [(record: SignedRecord, distanceKm: Double?)], qos: (PeerID) -> NodeQoS? = { _ in nil }) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(nodes.count * 1300 + 16)
        out += Array(#"{"nodes":["#.utf8)
        for (i, node) in nodes.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            var fields: [[UInt8]] = []
            if let km = node.distanceKm { fields.append(Array(#""distanceKm":\#((km * 1000).rounded() / 1000)"#.utf8)) }
            if let q = qos(node.record.nodeID) { fields.append(qosField(q)) }
            out += Self.splice(json(for: node.record), fields: fields)
        }
        out += Array("]}".utf8)
        return out
    }

    private let qosFragments = Mutex<[NodeQoS: [UInt8]]>([:])

    /// `"qos":{…}` for a node's QoS, encoded once per distinct value (every unmeasured node
    /// shares one), so that ranking answers stay concatenations of cached fragments.
    func qosField(_ q: NodeQoS) -> [UInt8] {
        if let hit = qosFragments.withLock({ $0[q] }) { return hit }
        let field = QoSJSON(q).field
        qosFragments.withLock { cache in
            if cache.count >= capacity { cache.removeAll(keepingCapacity: true) }
            cache[q] = field
        }
        return field
    }

    /// A JSON object with `fields` (each `"name":value`) inserted first.
    static func splice(_ object: [UInt8], fields: [[UInt8]]) -> [UInt8] {
        guard !fields.isEmpty, object.count > 2 else { return object }
        var out: [UInt8] = [UInt8(ascii: "{")]
        for f in fields {
            out += f
            out.append(UInt8(ascii: ","))
        }
        out += object.dropFirst()
        return out
    }
}
