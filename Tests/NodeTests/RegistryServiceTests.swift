import Foundation
import HTTPAPI
import Identity
import Logging
@testable import Node
import Registry
import Testing

func tempDir(_ tag: String) -> String { NSTemporaryDirectory() + "drtc-\(tag)-\(UUID().uuidString)" }

func signed(_ key: Ed25519KeyPair, wallMs: UInt64, sessions: UInt32 = 0, region: String = "EU", geo: GeoPoint? = nil, status: NodeStatus = .active) -> SignedRecord {
    try! MediaNodeRecord(publicKey: key.publicKey, region: region, geo: geo, load: Load(activeSessions: sessions), status: status,
                         hlc: HLC(wallMs: wallMs), refreshIntervalSeconds: 30, ttlSeconds: 3600).signed(with: key)
}

@Suite struct RegistryServiceTests {
    let logger = Logger(label: "test")

    /// Concurrent submitters: every merge is acknowledged with the right outcome, batches
    /// are shared, and a reopened store holds exactly the acknowledged winners and indexes.
    @Test func concurrentMergesAreCommittedAndSurviveReopen() async throws {
        let dir = tempDir("svc")
        let now = wallClockMs()
        let keys = (0..<200).map { _ in Ed25519KeyPair.generate() }
        do {
            let service = try RegistryService(directory: dir, metrics: DrtcMetrics(), logger: logger)
            let outcomes = try await withThrowingTaskGroup(of: [MergeOutcome].self) { group in
                for (i, key) in keys.enumerated() {
                    group.addTask {
                        let geo = GeoPoint(latitude: Double(i % 90), longitude: Double(i % 180))
                        let first = try await service.merge([signed(key, wallMs: now, sessions: 1, region: i % 2 == 0 ? "EU" : "ASI", geo: geo)])
                        let second = try await service.merge([signed(key, wallMs: now + 1, sessions: 2, region: i % 2 == 0 ? "EU" : "ASI", geo: geo)])
                        let old = try await service.merge([signed(key, wallMs: now - 1)])
                        return first + second + old
                    }
                }
                var all: [MergeOutcome] = []
                for try await o in group { all += o }
                return all
            }
            #expect(outcomes.filter { $0 == .accepted }.count == 400)
            #expect(outcomes.filter { $0 == .stale }.count == 200)
            service.close()
        }
        let reopened = try RegistryService(directory: dir, metrics: DrtcMetrics(), logger: logger)
        let table = reopened.withReplica { $0.table }
        #expect(table.count == 200)
        for key in keys { #expect(table[key.peerID]?.record.load.activeSessions == 2) }
        // Indexes agree with records: no entry left behind by the replaced versions.
        #expect(try reopened.store.nodeIDs(inRegion: "EU").count == 100)
        #expect(try reopened.store.nodeIDs(inRegion: "ASI").count == 100)
        #expect(try reopened.store.env.stat(reopened.store.byGeohash).entries == 200)
        let berlinish = Geohash.encode(GeoPoint(latitude: 10, longitude: 10), precision: 3)
        #expect(try reopened.store.nodeIDs(geohashPrefix: berlinish).contains(keys[10].peerID))
        reopened.close()
    }

    @Test func rejectedRecordsAreCountedByReason() async throws {
        let metrics = DrtcMetrics()
        let service = try RegistryService(directory: tempDir("rej"), metrics: metrics, logger: logger)
        let key = Ed25519KeyPair.generate()
        var bytes = signed(key, wallMs: wallClockMs()).encoded
        bytes[bytes.count - 1] ^= 0xff  // last signature byte
        let result = try await service.submit(encoded: bytes)
        guard case .rejected(.badSignature) = result else { Issue.record("expected bad_signature, got \(result)"); return }
        let text = String(decoding: metrics.exposition(), as: UTF8.self)
        #expect(text.contains("drtc_registry_merges_rejected_total{reason=\"bad_signature\"} 1"))
        service.close()
    }

    @Test func ownRecordTimestampsAreMonotonic() async throws {
        let service = try RegistryService(directory: tempDir("own"), metrics: DrtcMetrics(), logger: logger, clock: { 1_800_000_000_000 })
        let key = Ed25519KeyPair.generate()
        let a = try await service.publishOwn({ MediaNodeRecord(publicKey: key.publicKey, region: "EU", hlc: $0) }, key: key)
        let b = try await service.publishOwn({ MediaNodeRecord(publicKey: key.publicKey, region: "EU", hlc: $0) }, key: key)
        #expect(b.hlc > a.hlc, "a frozen wall clock still yields increasing HLCs")
        #expect(service.withReplica { $0.table[key.peerID] } == b)
        service.close()
    }
}

@Suite struct NodeConfigTests {
    @Test func precedenceFlagsThenEnvThenFileThenDefaults() throws {
        let file = tempDir("cfg") + ".json"
        try Data(#"{"region": "ASI", "geo": "1,2", "api": "127.0.0.1:9000", "listen": ["/ip4/127.0.0.1/tcp/5000"]}"#.utf8).write(to: URL(fileURLWithPath: file))
        let c = try NodeConfig.resolve(flags: ["region": ["SAM"]], env: ["DRTC_REGION": "NAM", "DRTC_GEO": "3,4"], configFile: file)
        #expect(c.region == .SAM)
        #expect(c.geo == GeoPoint(latitude: 3, longitude: 4))
        #expect(c.api == HostPort(host: "127.0.0.1", port: 9000))
        #expect(c.listen.map(\.description) == ["/ip4/127.0.0.1/tcp/5000"])
        #expect(c.media == HostPort(host: "127.0.0.1", port: 40000))
        #expect(c.dataDir == "./drtc-data")
    }

    @Test(arguments: [
        ("geo", "95,10", "--geo"), ("geo", "1", "--geo"), ("region", "XX", "--region"), ("api", "nope", "--api"),
        ("api", "127.0.0.1:70000", "--api"), ("ttl", "5", "--ttl"), ("listen", "tcp/1", "--listen"),
        ("log-level", "loud", "--log-level"), ("max-sessions", "-1", "--max-sessions"),
        ("listen", "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq", "--listen"),
        ("bootstrap", "/ip4/127.0.0.1/tcp/4001", "--bootstrap"), ("bootstrap", "/ip4/999.0.0.1/tcp/1/p2p/x", "--bootstrap"),
        ("open-media", "yes", "--open-media"), ("trusted-orchestrator", "12D3KooWnope", "--trusted-orchestrator"),
    ])
    func invalidValuesNameTheirFlag(name: String, value: String, flag: String) {
        let error = #expect(throws: ConfigError.self) { try NodeConfig.resolve(flags: [name: [value]], env: [:], configFile: nil) }
        #expect(error?.setting == flag)
    }

    @Test func unknownConfigFileKeyIsAnError() throws {
        let file = tempDir("cfg") + ".json"
        try Data(#"{"regoin": "EU"}"#.utf8).write(to: URL(fileURLWithPath: file))
        let error = #expect(throws: ConfigError.self) { try NodeConfig.resolve(flags: [:], env: [:], configFile: file) }
        #expect(error?.message.contains("regoin") == true)
    }
}
