import Foundation
import HTTPAPI
import Identity
import Libp2p
import Logging
@testable import Node
import Orchestrator
import Registry
import ServiceLifecycleTestKit
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The HTTP API of a real node on a real loopback socket.
@Suite(.serialized) struct HTTPAPITests {
    struct Reply {
        var status: Int
        var headers: [AnyHashable: Any]
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    static func request(_ base: String, _ path: String, method: String = "GET", body: Data? = nil, contentType: String? = nil) async throws -> Reply {
        var req = URLRequest(url: URL(string: base + path)!)
        req.httpMethod = method
        req.httpBody = body
        if let contentType { req.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: req)
        let http = response as! HTTPURLResponse
        return Reply(status: http.statusCode, headers: http.allHeaderFields, body: data)
    }

    /// Runs a node with an ephemeral API port, hands its base URL to `body`, then shuts it
    /// down gracefully (as SIGTERM would) and returns its data dir.
    static func withNode(geo: GeoPoint? = GeoPoint(latitude: 52.52, longitude: 13.4), configure: (inout NodeConfig) -> Void = { _ in },
                         _ body: @escaping @Sendable (String, DrtcNode) async throws -> Void) async throws -> String {
        var config = NodeConfig()
        config.dataDir = tempDir("http")
        config.api = HostPort(host: "127.0.0.1", port: 0)
        // An ephemeral media port too: the default 40000 may be taken (another test, a node).
        config.media = HostPort(host: "127.0.0.1", port: 0)
        config.listen = [try Multiaddr("/ip4/127.0.0.1/tcp/0")]
        config.geo = geo
        configure(&config)
        let node = try DrtcNode(config: config, logger: Logger(label: "test"))
        try await testGracefulShutdown { trigger in
            let (stream, cont) = AsyncStream.makeStream(of: HostPort.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await node.run(onListening: { cont.yield($0) }) }
                var it = stream.makeAsyncIterator()
                let bound = await it.next()!
                // The own record is published right after the API binds.
                let deadline = ContinuousClock.now + .seconds(30)
                while node.registry.withReplica({ $0.table.count }) == 0 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(10))
                }
                try await body("http://\(bound)", node)
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        return config.dataDir
    }

    @Test func oneNodeMeshListsItselfAndLeavesWithATombstone() async throws {
        let dir = try await Self.withNode { base, node in
            let health = try await Self.request(base, "/health").json
            #expect(health["status"] as? String == "ok")
            #expect(health["peerId"] as? String == node.peerID.description)
            #expect(health["records"] as? Int == 1)
            #expect((health["tableDigest"] as? String)?.count == 64)
            let multiaddrs = health["multiaddrs"] as? [String] ?? []
            #expect(multiaddrs.count == 1)
            // The real bound port, not the configured 0.
            #expect(multiaddrs.allSatisfy { $0.hasPrefix("/ip4/127.0.0.1/tcp/") && !$0.contains("/tcp/0/") && $0.hasSuffix("/p2p/\(node.peerID)") })
            #expect(health["peers"] as? Int == 0)

            let nodes = try await Self.request(base, "/getMediaNodes?lat=52.5&lon=13.4").json["nodes"] as? [[String: Any]]
            #expect(nodes?.count == 1)
            #expect(nodes?.first?["nodeId"] as? String == node.peerID.description)
            #expect(nodes?.first?["geolocation"] as? String == "52.52,13.4")
            let me = try await Self.request(base, "/nodeById?id=\(node.peerID)")
            #expect(me.status == 200)
            #expect((me.json["url"] as? String)?.hasPrefix("http://127.0.0.1:") == true)
        }
        // After graceful shutdown the stored own record is the signed tombstone.
        let reopened = try RegistryService(directory: dir + "/registry", metrics: DrtcMetrics(), logger: Logger(label: "t"))
        let own = reopened.withReplica { $0.table.records.first { _ in true } }
        #expect(own?.record.status == .leaving)
        #expect(reopened.withReplica { $0.table.liveCount(nowMs: wallClockMs()) } == 0)
        reopened.close()
    }

    @Test func badInputGetsClearErrors() async throws {
        _ = try await Self.withNode { base, node in
            let cases: [(String, Int, String?)] = [
                ("/getMediaNodes?lat=95&lon=10", 400, "lat"),
                ("/getMediaNodes?lat=10", 400, "lon"),
                ("/getMediaNodes?limit=0", 400, "limit"),
                ("/getMediaNodes?limit=1001", 400, "limit"),
                ("/getMediaNodes?limit=abc", 400, "limit"),
                ("/getMediaNodes?region=MARS", 400, "region"),
                ("/getMediaNodes?minScore=2", 400, "minScore"),
                ("/getMediaNodes?lng=3", 400, "lng"),
                ("/getMediaNodes?limit=1&limit=2", 400, "limit"),
                ("/nodeById", 400, "id"),
                ("/nodeById?id=notapeer", 400, "id"),
                ("/nodeById?id=12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq", 404, nil),
                ("/listMediaNodes?cursor=%%%", 400, "cursor"),
                ("/no/such/path", 404, nil),
            ]
            for (path, status, parameter) in cases {
                let reply = try await Self.request(base, path)
                #expect(reply.status == status, "\(path)")
                #expect(reply.json["error"] is String, "\(path)")
                if let parameter {
                    #expect(reply.json["parameter"] as? String == parameter, "\(path)")
                    #expect((reply.json["error"] as? String)?.hasPrefix(parameter + ":") == true, "\(path)")
                }
            }
            let wrongMethod = try await Self.request(base, "/getMediaNodes", method: "DELETE")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.headers["Allow"] as? String == "GET, HEAD")
            #expect(try await Self.request(base, "/health", method: "TRACE").status == 405)
            #expect(try await Self.request(base, "/health", method: "HEAD").status == 200)
            let wrongType = try await Self.request(base, "/register", method: "POST", body: Data("{}".utf8), contentType: "application/json")
            #expect(wrongType.status == 415)
            let garbage = try await Self.request(base, "/register", method: "POST", body: Data([1, 2, 3]), contentType: "application/x-protobuf")
            #expect(garbage.status == 400)
            #expect(garbage.json["code"] as? String == "malformed")
            let huge = try await Self.request(base, "/register", method: "POST", body: Data(count: 100_000), contentType: "application/x-protobuf")
            #expect(huge.status == 413)
            // Still serving.
            #expect(try await Self.request(base, "/health").status == 200)
        }
    }

    @Test func registerMakesARecordQueryableAndMetricsCountIt() async throws {
        _ = try await Self.withNode { base, node in
            let key = Ed25519KeyPair.generate()
            let record = signed(key, wallMs: wallClockMs(), region: "ASI", geo: GeoPoint(latitude: 35.68, longitude: 139.69))
            let reply = try await Self.request(base, "/register", method: "POST", body: Data(record.encoded), contentType: "application/x-protobuf")
            #expect(reply.status == 200)
            #expect(reply.json["outcome"] as? String == "accepted")
            let again = try await Self.request(base, "/register", method: "POST", body: Data(record.encoded), contentType: "application/x-protobuf")
            #expect(again.json["outcome"] as? String == "duplicate")

            let tokyo = try await Self.request(base, "/getMediaNodes?lat=35.6&lon=139.7&limit=2").json["nodes"] as? [[String: Any]]
            #expect(tokyo?.map { $0["nodeId"] as? String } == [key.peerID.description, node.peerID.description])
            let asia = try await Self.request(base, "/getMediaNodes?region=ASI").json["nodes"] as? [[String: Any]]
            #expect(asia?.count == 1)

            // Not a tombstone: /deregister refuses to call it one.
            let notTomb = try await Self.request(base, "/deregister", method: "POST", body: Data(record.encoded), contentType: "application/x-protobuf")
            #expect(notTomb.status == 400)
            let tomb = signed(key, wallMs: wallClockMs() + 1, region: "ASI", status: .leaving)
            let left = try await Self.request(base, "/deregister", method: "POST", body: Data(tomb.encoded), contentType: "application/x-protobuf")
            #expect(left.status == 200)
            #expect(try await Self.request(base, "/nodeById?id=\(key.peerID)").json["code"] as? String == "not_live")

            let metrics = String(decoding: try await Self.request(base, "/metrics").body, as: UTF8.self)
            #expect(metrics.contains("drtc_registry_merges_accepted_total"))
            #expect(metrics.contains("drtc_registry_merges_ignored_total{outcome=\"duplicate\"}"))
            #expect(metrics.contains("drtc_http_request_duration_seconds_bucket"))
            #expect(metrics.contains("drtc_registry_records 1"))
        }
    }

    @Test func aOneNodeMeshAllocatesItselfAndItsMediaNeedsTheToken() async throws {
        _ = try await Self.withNode { base, node in
            let body = Data(#"{"room":"solo","role":"publish","lat":52.5,"lon":13.4}"#.utf8)
            let reply = try await Self.request(base, "/allocate", method: "POST", body: body, contentType: "application/json")
            #expect(reply.status == 200, "\(String(decoding: reply.body, as: UTF8.self))")
            #expect(reply.json["nodeId"] as? String == node.peerID.description)
            #expect(reply.json["url"] as? String == base + "/whip/solo")
            #expect(reply.json["strategy"] as? String == "proximity")
            let token = try #require(reply.json["token"] as? String)
            let claims = try MediaToken.verify(token, audience: node.peerID, room: "solo", role: .publish, nowMs: wallClockMs(),
                                               accepts: { $0 == node.peerID })
            #expect(claims.iss == node.peerID.description)
            // The room was opened on the node by signed RPC (to itself), and is placed.
            let room = try await Self.request(base, "/rooms/solo")
            #expect(room.status == 200)
            // WHIP without a token: 401; an unsigned RPC call: 401 with its code.
            let whip = try await Self.request(base, "/whip/solo", method: "POST", body: Data("v=0\r\n".utf8), contentType: "application/sdp")
            #expect(whip.status == 401 && whip.json["code"] as? String == "missing_token")
            let rpc = try await Self.request(base, "/rpc/v1/status")
            #expect(rpc.status == 401 && rpc.json["code"] as? String == "missing_credentials")
            let bad = try await Self.request(base, "/allocate", method: "POST", body: Data(#"{"room":"solo","role":"sing"}"#.utf8), contentType: "application/json")
            #expect(bad.status == 400)
        }
    }
}
