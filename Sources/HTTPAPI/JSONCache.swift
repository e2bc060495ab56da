import Registry
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Records are immutable, so each one's JSON is encoded once (by `APIJSON`) and reused:
/// on the `/getMediaNodes` hot path a response is then a concatenation of cached fragments,
/// about 20× cheaper than encoding ten records per request.
final class RecordJSONCache: Sendable {
    private struct Entry {
        var record: SignedRecord  // keeps the ObjectIdentifier valid while cached
        var json: [UInt8]
        /// Where `"distanceKm":…,` goes in `json` to keep the keys sorted.
        var distanceAt: Int
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])
    private let capacity: Int

    init(capacity: Int = 50_000) { self.capacity = capacity }

    /// The record's JSON object, without `distanceKm`.
    func json(for record: SignedRecord) -> [UInt8] { entry(for: record).json }

    private static let distanceKey = Array(#""distanceKm":"#.utf8)

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
    /// JSON string every `"` is escaped, so the first `"distanceKm":` is the key.)
    private static func encode(_ record: SignedRecord) -> Entry {
        guard var json = try? APIJSON.encode(MediaNodeJSON(record, distanceKm: 0)),
              let at = json.firstRange(of: distanceKey)?.lowerBound,
              let comma = json[at...].firstIndex(of: UInt8(ascii: ",")) else {
            return Entry(record: record, json: Array("{}".utf8), distanceAt: 1)
        }
        json.removeSubrange(at...comma)
        return Entry(record: record, json: json, distanceAt: at)
    }

    /// `{"nodes":[…]}`, each object with `distanceKm` in its sorted place when known.
    func nodeList(_ nodes: [(record: SignedRecord, distanceKm: Double?)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(nodes.count * 1100 + 16)
        out += #"{"nodes":["#.utf8
        for (i, node) in nodes.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            let entry = self.entry(for: node.record)
            if let km = node.distanceKm {
                out += entry.json[..<entry.distanceAt]
                out += Self.distanceKey
                out += "\(km.rounded(decimals: MediaNodeJSON.distanceDecimals))".utf8
                out.append(UInt8(ascii: ","))
                out += entry.json[entry.distanceAt...]
            } else {
                out += entry.json
            }
        }
        out += "]}".utf8
        return out
    }
}
