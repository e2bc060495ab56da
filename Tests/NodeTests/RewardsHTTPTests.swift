import Foundation
import HTTPAPI
import Identity
import Logging
@testable import Node
import Registry
import Rewards
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `/rewards`, `/rewards.csv` and the dashboard's endpoints on a real node.
@Suite(.serialized) struct RewardsHTTPTests {
    typealias API = HTTPAPITests

    static func header(_ reply: API.Reply, _ name: String) -> String? {
        reply.headers.first { ($0.key as? String)?.lowercased() == name.lowercased() }?.value as? String
    }

    @Test func aClosedEpochHasOneLedgerInJSONAndCSVWithTheSameDigest() async throws {
        _ = try await API.withNode(configure: { $0.qosSchedule = .init(epochSeconds: 10, testSeconds: 6, sampleIntervalMs: 1000) }) { base, node in
            // The current epoch is there at once, provisional, with this node's own row.
            let current = try await API.request(base, "/rewards").json
            #expect(current["final"] as? Bool == false)
            // Wait for the node to close an epoch it observed (10 s epochs; generous bound).
            let deadline = ContinuousClock.now + .seconds(90)
            var closed: [String: Any] = [:]
            while ContinuousClock.now < deadline {
                let e = (try await API.request(base, "/rewards").json["epoch"] as? Int ?? 1) - 1
                let reply = try await API.request(base, "/rewards?epoch=\(e)")
                if reply.status == 200, reply.json["final"] as? Bool == true,
                   (reply.json["nodes"] as? [[String: Any]])?.isEmpty == false {
                    closed = reply.json
                    break
                }
                try await Task.sleep(for: .milliseconds(500))
            }
            let epoch = try #require(closed["epoch"] as? Int)
            let nodes = try #require(closed["nodes"] as? [[String: Any]])
            let own = try #require(nodes.first { $0["nodeId"] as? String == node.peerID.description })
            // Availability is QoS tests answered (Specs/rewards.md "Inputs"): a lone node has no
            // challenger, so no evidence, and its lifetime still counts.
            #expect(own["availability"] as? Double == 0)
            #expect((own["lifetimeSeconds"] as? Double ?? 0) > 0)
            #expect(own["quality"] is NSNull)
            #expect(own["qualityMeasured"] as? Bool == false)
            #expect(own["history"] as? Double == 0.5)
            #expect(own["coverage"] as? Double == 1)
            #expect(own["reward"] as? Double == 0)
            let sources = try #require(closed["sources"] as? [String: String])
            #expect(sources["quality"]?.hasPrefix("QoS set") == true)
            #expect(sources["dataSupplied"]?.hasPrefix("receipt set") == true)
            #expect(sources["demand"]?.hasPrefix("receipt set") == true)
            // A node alone served nobody: no receipts.
            let receipts = try await API.request(base, "/rewards/receipts?epoch=\(epoch)").json
            #expect((receipts["receipts"] as? [Any])?.isEmpty == true)
            #expect(try await API.request(base, "/rewards/receipts?node=nope").status == 400)

            let csv = try await API.request(base, "/rewards.csv?epoch=\(epoch)")
            #expect(csv.status == 200)
            #expect(Self.header(csv, "Content-Type")?.hasPrefix("text/csv") == true)
            let digest = Hex.encode(SHA256.hash(Array(csv.body)))
            #expect(Self.header(csv, "X-Drtc-Ledger-Digest") == digest)
            #expect(closed["digest"] as? String == digest)
            #expect(Self.header(csv, "X-Drtc-Ledger-Final") == "true")
            let lines = String(decoding: csv.body, as: UTF8.self).split(separator: "\n")
            #expect(lines.first.map(String.init) == RewardLedger.csvHeader)
            #expect(lines.count == nodes.count + 1)
            // Asking again gives the same bytes: a closed ledger does not change.
            #expect(try await API.request(base, "/rewards.csv?epoch=\(epoch)").body == csv.body)
            // The own node's filter.
            let filtered = try await API.request(base, "/rewards?epoch=\(epoch)&node=\(node.peerID)").json
            #expect((filtered["nodes"] as? [[String: Any]])?.count == 1)
            #expect(filtered["digest"] as? String == digest)
            // The gauges describe this node's row of the last closed epoch.
            let metrics = String(decoding: try await API.request(base, "/metrics").body, as: UTF8.self)
            #expect(metrics.contains("drtc_rewards_score{score=\"availability\"}"))
            #expect(metrics.contains("drtc_rewards_unit_reward{kind=\"closed\"}"))
        }
    }

    @Test func badEpochsAreExplained() async throws {
        _ = try await API.withNode { base, _ in
            let notANumber = try await API.request(base, "/rewards?epoch=soon")
            #expect(notANumber.status == 400)
            #expect(notANumber.json["code"] as? String == "invalid_parameter")
            #expect(notANumber.json["parameter"] as? String == "epoch")
            let future = try await API.request(base, "/rewards?epoch=9007199254740991")
            #expect(future.status == 404)
            #expect(future.json["code"] as? String == "unknown_epoch")
            #expect((future.json["error"] as? String)?.contains("has not started") == true)
            let past = try await API.request(base, "/rewards.csv?epoch=0")
            #expect(past.status == 404)
            #expect((past.json["error"] as? String)?.contains("holds") == true)
            let unknown = try await API.request(base, "/rewards?week=1")
            #expect(unknown.status == 400)
            let post = try await API.request(base, "/rewards", method: "POST", body: Data())
            #expect(post.status == 405)
        }
    }

    @Test func theDashboardAndItsAssetsComeFromTheNodeItself() async throws {
        _ = try await API.withNode { base, node in
            let page = try await API.request(base, "/")
            #expect(page.status == 200)
            #expect(Self.header(page, "Content-Type") == "text/html; charset=utf-8")
            let csp = try #require(Self.header(page, "Content-Security-Policy"))
            #expect(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"))
            let html = String(decoding: page.body, as: UTF8.self)
            #expect(html.contains("/dashboard/dashboard.js") && !html.contains("http://") && !html.contains("https://"))
            for asset in ["/dashboard/dashboard.js", "/dashboard/dashboard.css", "/dashboard/coastline.json"] {
                let r = try await API.request(base, asset)
                #expect(r.status == 200, "\(asset)")
                #expect(r.body.count > 100)
            }
            let coast = try await API.request(base, "/dashboard/coastline.json").json
            #expect((coast["rings"] as? [[Int]])?.count ?? 0 > 100)

            let overview = try await API.request(base, "/dashboard/overview").json
            #expect(overview["peerId"] as? String == node.peerID.description)
            #expect(overview["records"] as? Int == 1)
            #expect((overview["rewards"] as? [[String: Any]])?.first?["final"] as? Bool == false)
            #expect((overview["media"] as? [String: Any])?["status"] as? String == "ok")

            let list = try await API.request(base, "/dashboard/nodes")
            let rows = try #require(list.json["nodes"] as? [[Any]])
            #expect(list.json["count"] as? Int == 1)
            #expect(rows.first?.first as? String == node.peerID.description)
            #expect((list.json["columns"] as? [String])?.count == rows.first?.count)
        }
    }

    @Test func rewardParametersAreValidatedAtStart() throws {
        #expect(throws: ConfigError.self) { try NodeConfig(raw: ["reward-weights": ["0.5,0.5,0.5,0"]]) }
        do {
            _ = try NodeConfig(raw: ["reward-weights": ["0.5,0.5,0.5,0"]])
        } catch let e as ConfigError {
            #expect(e.setting == "--reward-weights")
            #expect(e.message.contains("sum to 1"))
        }
        do {
            _ = try NodeConfig(raw: ["reward-r-asym": ["4"]])
        } catch let e as ConfigError {
            #expect(e.setting == "--reward-r-asym")
        }
        do {
            _ = try NodeConfig(raw: ["reward-k": ["steep"]])
        } catch let e as ConfigError {
            #expect(e.setting == "--reward-k")
        }
        let ok = try NodeConfig(raw: ["reward-weights": ["0.1,0.2,0.3,0.4"], "reward-h-min": ["0.25"], "qos-epoch": ["60"]])
        #expect(ok.rewardParameters.weights.coverage == 0.4)
        #expect(ok.rewardParameters.hMin == 0.25)
        #expect(ok.qosSchedule.epochSeconds == 60)
        // A short epoch given alone gets a test and a sample interval that fit it.
        let short = try NodeConfig(raw: ["qos-epoch": ["10"]])
        #expect(short.qosSchedule.testSeconds == 6 && short.qosSchedule.sampleIntervalMs == 1500)
        #expect(short.qosSchedule.problem == nil)
    }
}
