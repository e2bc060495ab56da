import Dispatch
import Foundation
import Identity
import Node
import Orchestrator
import Registry

#if canImport(Glibc)
import Glibc
#endif

/// The orchestrator's benchmarks (Specs/orchestrator.md, Specs/rpc.md).
enum OrchestratorBench {
    /// `orchestrator-allocate`: allocations in process over 10,000 records, one thread: the
    /// node's path (nearest 16 live records + the room's nodes as candidates, the planner, the
    /// placement kept, the media token signed) for 1,000 rooms, 30 % publishers.
    static func allocate() {
        let now = wallClockMs()
        var replica = RegistryReplica()
        for r in Bench.makeRecords(10_000, nowMs: now, version: DrtcNode.version) { replica.merge(r, nowMs: now) }
        let key = Ed25519KeyPair.generate()
        let issuer = key.peerID.description
        let policy = PlannerPolicy(version: DrtcNode.version)
        var rng = SplitMix64(seed: 1)
        let rooms = 1000
        let requests = (0..<4096).map { i in
            AllocationRequest(room: "room\(i % rooms)", role: Double.random(in: 0..<1, using: &rng) < 0.3 ? .publish : .view,
                              position: GeoPoint(latitude: Double.random(in: -60...70, using: &rng), longitude: Double.random(in: -180...180, using: &rng)))
        }
        _ = replica.getMediaNodes(NodeQuery(near: requests[0].position), nowMs: now)  // builds the index
        var placements: [String: RoomPlacement] = [:]
        var recent = RecentAllocations()
        var texts = PeerIDTexts()
        var planned = 0, refused = 0, tokenBytes = 0
        var planSeconds = 0.0, querySeconds = 0.0, tokenSeconds = 0.0
        let n = 100_000
        let start = DispatchTime.now().uptimeNanoseconds
        let cpu0 = threadCPUSeconds()
        for i in 0..<n {
            let r = requests[i & 4095]
            let t = now + UInt64(i / 100)
            let placement = placements[r.room]
            let q0 = DispatchTime.now().uptimeNanoseconds
            var records = replica.nearest(r.position!, k: 16, nowMs: t)
            if let placement {
                let near = Set(records.map(\.nodeID))
                for node in placement.nodes where !near.contains(node.nodeID) {
                    if let rec = replica.table[node.nodeID] { records.append(rec) }
                }
            }
            let candidates = records.map { NodeCandidate(record: $0) }
            let p0 = DispatchTime.now().uptimeNanoseconds
            querySeconds += Double(p0 - q0) / 1e9
            guard let d = try? Planner.plan(r, candidates: candidates, placement: placement, recent: recent, policy: policy,
                                            owner: "bench", nowMs: t, seed: UInt64(i)) else {
                refused += 1
                continue
            }
            planSeconds += Double(DispatchTime.now().uptimeNanoseconds - p0) / 1e9
            placements[r.room] = d.placement
            recent.record(d.node.id, nowMs: t)
            let k0 = DispatchTime.now().uptimeNanoseconds
            let token = MediaToken.issue(MediaTokenClaims(iss: issuer, aud: texts.text(d.node.id), room: r.room,
                                                          role: r.role, iat: t, exp: t + 120_000), key: key)
            tokenSeconds += Double(DispatchTime.now().uptimeNanoseconds - k0) / 1e9
            tokenBytes += token.utf8.count
            planned += 1
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let cpu = threadCPUSeconds() - cpu0
        let rate = Double(n) / elapsed
        // Same-run reference: a bare Ed25519 signature over a claims-sized message, the floor of
        // what an allocation costs (every allocation signs its token).
        let message = [UInt8](repeating: 0x41, count: 230)
        let s0 = threadCPUSeconds()
        for _ in 0..<20_000 { _ = key.sign(message) }
        let signMicroseconds = (threadCPUSeconds() - s0) * 1e6 / 20_000
        let nodesPerRoom = Double(placements.values.reduce(0) { $0 + $1.nodes.count }) / Double(max(1, placements.count))
        Bench.emit(["benchmark": "orchestrator-allocate", "records": 10_000, "rooms": rooms, "allocations": n, "refused": refused,
                    "seconds": Bench.round3(elapsed), "perSecond": Int(rate), "microsecondsPerAllocation": Bench.round3(elapsed / Double(n) * 1e6),
                    "plannerMicroseconds": Bench.round3(planSeconds / Double(max(1, planned)) * 1e6),
                    "candidatesMicroseconds": Bench.round3(querySeconds / Double(n) * 1e6),
                    "tokenMicroseconds": Bench.round3(tokenSeconds / Double(max(1, planned)) * 1e6),
                    "rawEd25519SignMicroseconds": Bench.round3(signMicroseconds),
                    "perCPUSecond": Int(Double(n) / cpu),
                    "allocationCostInSignatures": Bench.round3(cpu / Double(n) * 1e6 / signMicroseconds),
                    "meanNodesPerRoom": Bench.round3(nodesPerRoom), "meanTokenBytes": tokenBytes / max(1, planned),
                    "target": 20_000, "pass": Double(n) / cpu >= 20_000])
    }

    /// CPU time of the calling thread: on a machine shared with other work, what this thread
    /// spent, without the time the scheduler gave to others.
    static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// `rpc-verify`: signed-RPC verifications per second on one core (Algorithm 1 and the
    /// bindings, replay cache included), against raw Ed25519 verifications of the same payload
    /// bytes in the same run.
    static func rpcVerify() {
        let caller = Ed25519KeyPair.generate(), node = Ed25519KeyPair.generate()
        let body = Array(#"{"room":"bench-room","pipeId":"0123456789abcdef01234567","peer":"x","peerUrl":"http://127.0.0.1:8080"}"#.utf8)
        let now = wallClockMs()
        let n = 20_000
        let calls = (0..<n).map { _ in
            SignedRPC.sign(key: caller, audience: node.peerID, method: "POST", path: "/rpc/v1/pipes", body: body, nowMs: now,
                           nonce: secureRandomBytes(16))
        }
        let accepted: Set<PeerID> = [caller.peerID]
        var cache = ReplayCache()
        var ok = 0
        let start = threadCPUSeconds()
        for c in calls {
            if (try? SignedRPC.verify(payload: c.payload, signature: c.signature, method: "POST", path: "/rpc/v1/pipes", body: body,
                                      audience: node.peerID, nowMs: now + 5, accepts: { accepted.contains($0) }, replay: &cache)) != nil {
                ok += 1
            }
        }
        let verifySeconds = threadCPUSeconds() - start
        precondition(ok == n, "every call must verify")
        let raw = calls.map { (Array($0.payload.utf8), Base64.decode($0.signature)!) }
        let rawStart = threadCPUSeconds()
        var good = 0
        for (message, signature) in raw where Ed25519.verify(signature: signature, message: message, publicKey: caller.publicKeyBytes) {
            good += 1
        }
        let rawSeconds = threadCPUSeconds() - rawStart
        precondition(good == n)
        let rate = Double(n) / verifySeconds, rawRate = Double(n) / rawSeconds
        Bench.emit(["benchmark": "rpc-verify", "calls": n, "payloadBytes": calls[0].payload.utf8.count, "threads": 1,
                    "verificationsPerSecondPerCore": Int(rate), "rawEd25519VerifyPerSecondPerCore": Int(rawRate),
                    "ratioToRawEd25519": Bench.round3(rate / rawRate)])
    }

    static let allocateScript = """
        -- Allocations for 1,000 rooms near the node (50, 8): 30 % publishers, 70 % viewers.
        math.randomseed(42)
        request = function()
          local room = "room" .. math.random(1, 1000)
          local role = "view"
          if math.random() < 0.3 then role = "publish" end
          local body = string.format('{"room":"%s","role":"%s","lat":%.4f,"lon":%.4f}', room, role,
                                     50 + math.random() - 0.5, 8 + math.random() - 0.5)
          return wrk.format("POST", "/allocate", {["Content-Type"] = "application/json"}, body)
        end
        """

    /// `http-allocate`: wrk posting `/allocate` to a node holding 10,000 records. The records
    /// carry another software version, so the planner weighs them and rules them out (and the
    /// node owns every room): the figure is the node's own path, with no RPC to absent peers.
    static func httpAllocate() async throws {
        let dir = NSTemporaryDirectory() + "drtc-bench-alloc-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (node, base) = try BenchNode.start(dataDir: dir, extraArguments: ["--log-level", "warning", "--geo", "50,8", "--media", "127.0.0.1:0"])
        defer { BenchNode.stop(node) }
        try await HTTPBench.register(Bench.makeRecords(10_000, nowMs: UInt64(Date().timeIntervalSince1970 * 1000)).map(\.encoded), to: base)
        let script = dir + "/allocate.lua"
        try allocateScript.write(toFile: script, atomically: true, encoding: .utf8)
        let args = ["-t2", "-c32", "-d15s", "--latency", "-s", script, base]
        let report = try HTTPBench.wrk(args)
        guard let rps = HTTPBench.value(after: "Requests/sec:", in: report), let p99 = HTTPBench.latencyMs(percentile: "99%", in: report) else {
            throw BenchError("could not parse wrk output:\n\(report)")
        }
        let errors = report.contains("Non-2xx") || report.contains("Socket errors")
        Bench.emit(["benchmark": "http-allocate", "records": 10_000, "rooms": 1000,
                    "command": "wrk " + args.joined(separator: " ").replacingOccurrences(of: script, with: "allocate.lua"),
                    "requestsPerSecond": Int(rps), "p50ms": HTTPBench.latencyMs(percentile: "50%", in: report) ?? -1, "p99ms": p99,
                    "errors": errors])
    }
}
