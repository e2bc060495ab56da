import Foundation
@testable import HTTPAPI
import Identity
@testable import Node
import Registry
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// JSON answers are stable (Specs/openapi.yaml "JSON"): keys sorted at every depth, identical
/// requests answered with identical bytes, computed numbers rounded.
@Suite(.serialized) struct JSONStabilityTests {
    typealias API = HTTPAPITests

    static func register(_ base: String, _ record: SignedRecord) async throws -> API.Reply {
        try await API.request(base, "/register", method: "POST", body: Data(record.encoded), contentType: "application/x-protobuf")
    }

    /// Every JSON body lists keys sorted by their bytes, at every depth, and two identical
    /// requests get identical bytes; computed numbers carry no floating-point noise.
    @Test func jsonBodiesAreSortedStableAndRounded() async throws {
        _ = try await API.withNode { base, node in
            // cpu 426 ‰ → headroom 1 − 0.426 = 0.5740000000000001 in binary floating point.
            let key = Ed25519KeyPair.generate()
            let mine = try MediaNodeRecord(
                publicKey: key.publicKey, region: "EU", geo: GeoPoint(latitude: 48.8566, longitude: 2.3522),
                load: Load(cpuPermille: 426), hlc: HLC(wallMs: wallClockMs()), refreshIntervalSeconds: 30, ttlSeconds: 3600).signed(with: key)
            #expect(try await Self.register(base, mine).status == 200)
            let paths = [
                "/health", "/getMediaNodes?lat=52.5&lon=13.4", "/getMediaNodes", "/nodeById?id=\(key.peerID)",
                "/listMediaNodes", "/listMediaNodes?limit=1", "/nodeById?id=nope", "/register",
            ]
            for path in paths {
                let first = try await API.request(base, path)
                let second = try await API.request(base, path)
                #expect(first.body == second.body, "\(path): identical requests, identical bytes")
                try Self.expectSortedKeys(first.body, path)
            }
            let near = try await API.request(base, "/getMediaNodes?lat=52.5&lon=13.4")
            let text = String(decoding: near.body, as: UTF8.self)
            #expect(text.contains(#""loadHeadroom":0.574,"#))
            let nodes = near.json["nodes"] as? [[String: Any]] ?? []
            #expect(nodes.allSatisfy { $0["distanceKm"] is Double })
            // The cached record with the distance and the QoS object spliced in equals a fresh
            // encoding of the whole object.
            let served = try #require(nodes.first { $0["nodeId"] as? String == key.peerID.description })
            var object = MediaNodeJSON(mine, distanceKm: served["distanceKm"] as? Double)
            object.qos = try JSONDecoder().decode(QoSJSON.self, from: JSONSerialization.data(withJSONObject: try #require(served["qos"])))
            let fresh = try APIJSON.encode(object)
            #expect(text.contains(String(decoding: fresh, as: UTF8.self)))
        }
    }

    /// Walks the raw JSON text: the keys of each object come in byte order, and no number
    /// prints with more than 6 decimals.
    static func expectSortedKeys(_ body: Data, _ path: String) throws {
        let bytes = [UInt8](body)
        var stack: [[String]] = []  // keys seen so far in each open object
        var containers: [UInt8] = []
        var i = 0
        var expectKey = false
        while i < bytes.count {
            let c = bytes[i]
            switch c {
            case UInt8(ascii: "{"):
                stack.append([])
                containers.append(c)
                expectKey = true
            case UInt8(ascii: "["):
                containers.append(c)
            case UInt8(ascii: "}"):
                let keys = stack.removeLast()
                #expect(keys == keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }, "\(path): keys \(keys)")
                containers.removeLast()
            case UInt8(ascii: "]"):
                containers.removeLast()
            case UInt8(ascii: ","):
                expectKey = containers.last == UInt8(ascii: "{")
            case UInt8(ascii: "\""):
                var j = i + 1
                while bytes[j] != UInt8(ascii: "\"") { j += bytes[j] == UInt8(ascii: "\\") ? 2 : 1 }
                if expectKey {
                    stack[stack.count - 1].append(String(decoding: bytes[(i + 1)..<j], as: UTF8.self))
                    expectKey = false
                }
                i = j
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                // A number: at most 6 decimals (computed ones are rounded to 3 or 4).
                var j = i
                while j < bytes.count, !",}] \n".utf8.contains(bytes[j]) { j += 1 }
                let number = String(decoding: bytes[i..<j], as: UTF8.self)
                let decimals = number.split(separator: ".").dropFirst().first?.prefix { $0.isNumber }.count ?? 0
                #expect(decimals <= 6, "\(path): \(number) has floating-point noise")
                i = j - 1
            default:
                break
            }
            i += 1
        }
        #expect(containers.isEmpty, "\(path): balanced")
    }
}


/// The JSON form of one fixed record, byte for byte (Fixtures/json/media-node.json): keys
/// sorted at every depth, `loadHeadroom` 1 − 0.426 printed as 0.574, and the cached form with
/// `distanceKm` spliced into its sorted place equal to a fresh encoding.
@Suite struct MediaNodeJSONVectorTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/json")

    static func record() throws -> SignedRecord {
        let key = try Ed25519KeyPair(seed: [UInt8](repeating: 7, count: 32))
        return try MediaNodeRecord(
            publicKey: key.publicKey, region: "EU", geo: GeoPoint(latitude: 48.8566, longitude: 2.3522),
            url: "https://node.example.test", discoveryURL: "https://node.example.test", ip: "192.0.2.7",
            metricsURL: "https://node.example.test/metrics", version: "0.1.0",
            multiaddrs: ["/ip4/192.0.2.7/tcp/4001/p2p/\(key.peerID)"],
            capacity: Capacity(bandwidthUpKbps: 100_000, bandwidthDownKbps: 100_000, cpuCores: 4, maxSessions: 100),
            load: Load(activeSessions: 10, cpuPermille: 426), hlc: HLC(wallMs: 1_800_000_000_000, logical: 3),
            refreshIntervalSeconds: 30, ttlSeconds: 90).signed(with: key)
    }

    @Test func aRecordEncodesToTheVectorBytes() throws {
        let expected = try Data(contentsOf: Self.fixtures.appendingPathComponent("media-node.json"))
        let record = try Self.record()
        let encoded = try APIJSON.encode(MediaNodeJSON(record))
        #expect(String(decoding: encoded, as: UTF8.self) + "\n" == String(decoding: expected, as: UTF8.self))

        let withDistance = try Data(contentsOf: Self.fixtures.appendingPathComponent("media-node-list-with-distance.json"))
        let list = RecordJSONCache().nodeList([(record, 878.12345)])
        #expect(String(decoding: list, as: UTF8.self) + "\n" == String(decoding: withDistance, as: UTF8.self))
        #expect(list == Array(#"{"nodes":["#.utf8) + (try APIJSON.encode(MediaNodeJSON(record, distanceKm: 878.12345))) + Array("]}".utf8))
    }
}
