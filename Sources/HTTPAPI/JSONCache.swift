import Identity
import QoS
import Registry
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Records are immutable, so each one's JSON is encoded once (by `APIJSON`) and reused:
/// on the `/getMediaNodes` hot path a response is then a concatenation of cached fragments,
/// about 20× cheaper than encoding ten records per request. The two fields that depend on the
/// query or on the answering node, `distanceKm` and `qos`, are spliced in at their sorted
/// places, so the bytes are those `APIJSON` would write for the whole object.
final class RecordJSONCache: Sendable {
    private struct Entry {
        var record: SignedRecord  // keeps the ObjectIdentifier valid while cached
        var json: [UInt8]
        /// Where `"distanceKm":…,` goes in `json` to keep the keys sorted.
        var distanceAt: Int
        /// Where `"qos":…,` goes (before `"refreshIntervalSeconds"`).
        var qosAt: Int
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])
    private let capacity: Int

    init(capacity: Int = 50_000) { self.capacity = capacity }

    private static let distanceKey = Array(#""distanceKm":"#.utf8)
    private static let afterQoSKey = Array(#""refreshIntervalSeconds":"#.utf8)

    private func entry(for record: SignedRecord) -> Entry {
        let id = ObjectIdentifier(record)
        if let hit = entries.withLock({ $0[id] }) { return hit }
        let entry = Self.encode(record)
        entries.withLock { e in
            // Replaced records accumulate as their owners refresh; start over when full.
            if e.count >= capacity { e.removeAll(keepingCapacity: true) }
            e[id] = entry
        }
        return entry
    }

    /// Encodes the record with a placeholder distance, then cuts the placeholder out: what is
    /// left is the JSON without `distanceKm`, and the cut is where a distance goes. (Inside a
    /// JSON string every `"` is escaped, so the first `"distanceKm":` is the key, and the first
    /// `"refreshIntervalSeconds":` is the key that follows `qos`.)
    private static func encode(_ record: SignedRecord) -> Entry {
        guard var json = try? APIJSON.encode(MediaNodeJSON(record, distanceKm: 0)),
              let at = json.firstRange(of: distanceKey)?.lowerBound,
              let comma = json[at...].firstIndex(of: UInt8(ascii: ",")) else {
            return Entry(record: record, json: Array("{}".utf8), distanceAt: 1, qosAt: 1)
        }
        json.removeSubrange(at...comma)
        let qosAt = json.firstRange(of: afterQoSKey)?.lowerBound ?? json.count - 1
        return Entry(record: record, json: json, distanceAt: at, qosAt: qosAt)
    }

    /// The record's JSON object with `distanceKm` (when known) and `qos` (when given) in their
    /// sorted places.
    func object(for record: SignedRecord, distanceKm: Double? = nil, qos: NodeQoS? = nil) -> [UInt8] {
        let entry = self.entry(for: record)
        guard distanceKm != nil || qos != nil else { return entry.json }
        var out: [UInt8] = []
        out.reserveCapacity(entry.json.count + 256)
        out += entry.json[..<entry.distanceAt]
        if let km = distanceKm {
            out += Self.distanceKey
            out += "\(km.rounded(decimals: MediaNodeJSON.distanceDecimals))".utf8
            out.append(UInt8(ascii: ","))
        }
        out += entry.json[entry.distanceAt..<entry.qosAt]
        if let q = qos {
            out += qosField(q)
            out.append(UInt8(ascii: ","))
        }
        out += entry.json[entry.qosAt...]
        return out
    }

    /// `{"nodes":[…]}`, each object with `distanceKm` (when known) and `qos` (when the node runs
    /// QoS) in their sorted places.
    func nodeList(_ nodes: [(record: SignedRecord, distanceKm: Double?)], qos: (PeerID) -> NodeQoS? = { _ in nil }) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(nodes.count * 1300 + 16)
        out += #"{"nodes":["#.utf8
        for (i, node) in nodes.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += object(for: node.record, distanceKm: node.distanceKm, qos: qos(node.record.nodeID))
        }
        out += "]}".utf8
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
}
