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

    /// `{"nodes":[…]}` with `distanceKm` first in each object when known.
    func nodeList(_ nodes: [(record: SignedRecord, distanceKm: Double?)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(nodes.count * 1100 + 16)
        out += Array(#"{"nodes":["#.utf8)
        for (i, node) in nodes.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            let json = self.json(for: node.record)
            if let km = node.distanceKm, json.count > 2 {
                let rounded = (km * 1000).rounded() / 1000
                out += Array(#"{"distanceKm":"#.utf8)
                out += Array("\(rounded)".utf8)
                out.append(UInt8(ascii: ","))
                out += json.dropFirst()
            } else {
                out += json
            }
        }
        out += Array("]}".utf8)
        return out
    }
}
