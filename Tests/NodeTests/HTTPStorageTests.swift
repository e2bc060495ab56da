import Foundation
import HTTPAPI
import Identity
import Logging
@testable import Node
import Registry
@testable import Store
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

@Suite(.serialized) struct HTTPStorageTests {
    typealias API = HTTPAPITests

    static func register(_ base: String, _ record: SignedRecord, path: String = "/register") async throws -> API.Reply {
        try await API.request(base, path, method: "POST", body: Data(record.encoded), contentType: "application/x-protobuf")
    }

    /// A node whose disk is full keeps answering reads, refuses writes with 507
    /// `storage_full`, says so in /health and /metrics, and recovers by itself.
    @Test func aFullDiskAnswers507AndHealthSaysDegradedUntilItRecovers() async throws {
        _ = try await API.withNode { base, node in
            let before = signed(Ed25519KeyPair.generate(), wallMs: wallClockMs())
            #expect(try await Self.register(base, before).status == 200)

            let disk = try FullDisk(node.registry.store.env)
            defer { disk.restore() }
            let refused = try await Self.register(base, signed(Ed25519KeyPair.generate(), wallMs: wallClockMs()))
            #expect(refused.status == 507)
            #expect(refused.json["code"] as? String == "storage_full")
            #expect((refused.json["error"] as? String)?.contains("not stored") == true)
            let tomb = try await Self.register(base, signed(Ed25519KeyPair.generate(), wallMs: wallClockMs(), status: .leaving), path: "/deregister")
            #expect(tomb.status == 507)

            let health = try await API.request(base, "/health").json
            #expect(health["status"] as? String == "degraded")
            let registry = health["registry"] as? [String: Any] ?? [:]
            #expect(registry["status"] as? String == "degraded")
            #expect(registry["code"] as? String == "storage_full")
            #expect(registry["reason"] as? String == "disk_full")
            #expect(health["peerId"] as? String == node.peerID.description, "every other field is still there")
            // Reads go on.
            #expect(try await API.request(base, "/nodeById?id=\(before.nodeID)").status == 200)
            #expect((try await API.request(base, "/getMediaNodes").json["nodes"] as? [Any])?.count == 2)
            let metrics = String(decoding: try await API.request(base, "/metrics").body, as: UTF8.self)
            // Two refused writes (the node's own refresh may add attempts of its own).
            let failed = metrics.split(separator: "\n").first { $0.hasPrefix(#"drtc_registry_commit_failures_total{reason="disk_full"} "#) }
            #expect(failed.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 >= 2 } == true, "\(String(describing: failed))")

            disk.restore()
            let after = signed(Ed25519KeyPair.generate(), wallMs: wallClockMs())
            let accepted = try await Self.register(base, after)
            #expect(accepted.status == 200)
            #expect(accepted.json["outcome"] as? String == "accepted")
            let healed = try await API.request(base, "/health").json
            #expect(healed["status"] as? String == "ok")
            #expect((healed["registry"] as? [String: Any])?["status"] as? String == "ok")
        }
    }

    /// SIGTERM on a full disk: the tombstone is gossiped but cannot be written; the node
    /// still shuts down cleanly and its store holds the last record that was committed.
    @Test func gracefulShutdownOnAFullDiskEndsCleanly() async throws {
        let disk = Mutex<FullDisk?>(nil)
        let dir = try await API.withNode { _, node in
            let d = try FullDisk(node.registry.store.env)
            disk.withLock { $0 = d }
        }
        disk.withLock { $0?.discard() }
        let reopened = try RegistryService(directory: dir + "/registry", metrics: DrtcMetrics(), logger: Logger(label: "t"))
        #expect(reopened.withReplica { $0.table.records.first { _ in true } }?.record.status == .active)
        reopened.close()
    }
}
