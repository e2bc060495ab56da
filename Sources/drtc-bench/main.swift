import Dispatch
import Foundation
import HTTPAPI
import Identity
import Logging
import Node
import Registry

/// drtc benchmarks. Each prints one JSON line: {"benchmark", figures…, "target", "pass"}.
/// Run release builds only: `swift run -c release drtc-bench [NAME…]`.

struct Bench {
    static func emit(_ fields: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
        fflush(nil)
    }

    static func seconds(_ body: () async throws -> Void) async rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try await body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func makeRecords(_ n: Int, nowMs: UInt64, version: String = "bench") -> [SignedRecord] {
        // Keys are the expensive part of preparation; spread it over the cores.
        let chunks = ProcessInfo.processInfo.activeProcessorCount
        let out = Synchronization_Box<[SignedRecord]>(Array())
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            var local: [SignedRecord] = []
            var rng = SystemRandomNumberGenerator()
            for _ in stride(from: c, to: n, by: chunks) {
                let key = Ed25519KeyPair.generate()
                let geo = GeoPoint(latitude: Double.random(in: -60...70, using: &rng), longitude: Double.random(in: -180...180, using: &rng))
                let record = MediaNodeRecord(
                    publicKey: key.publicKey, region: Region.allCases.randomElement(using: &rng)!.rawValue, geo: geo,
                    url: "https://node.example/api", version: version,
                    capacity: Capacity(bandwidthUpKbps: 1_000_000, maxSessions: 500),
                    load: Load(activeSessions: UInt32.random(in: 0...500, using: &rng)), hlc: HLC(wallMs: nowMs),
                    ttlSeconds: 3600)
                local.append(try! record.signed(with: key))
            }
            out.mutate { $0 += local }
        }
        return out.value
    }

    /// Signed records verified, merged and durably committed to LMDB.
    static func registryMerge() async throws {
        let n = 60_000
        let now = wallClockMs()
        let encoded = makeRecords(n, nowMs: now).map(\.encoded)
        let dir = NSTemporaryDirectory() + "drtc-bench-merge-\(UUID().uuidString)"
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let service = try RegistryService(directory: dir, metrics: DrtcMetrics(), logger: logger)
        let workers = ProcessInfo.processInfo.activeProcessorCount
        let chunk = 256
        // Like concurrent HTTP clients: each worker verifies on its own core and hands
        // batches to the group-commit queue without waiting for the previous commit.
        let elapsed = try await seconds {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for w in 0..<workers {
                    group.addTask {
                        try await withThrowingTaskGroup(of: Int.self) { inflight in
                            var batch: [SignedRecord] = []
                            var pending = 0
                            var accepted = 0
                            for i in stride(from: w, to: n, by: workers) {
                                batch.append(try SignedRecord.verify(encoded: encoded[i], nowMs: wallClockMs()))
                                if batch.count == chunk || i + workers >= n {
                                    let submitted = batch
                                    batch.removeAll(keepingCapacity: true)
                                    inflight.addTask { try await service.merge(submitted).filter { $0 == .accepted }.count }
                                    pending += 1
                                    if pending >= 8, let a = try await inflight.next() {
                                        accepted += a
                                        pending -= 1
                                    }
                                }
                            }
                            for try await a in inflight { accepted += a }
                            return accepted
                        }
                    }
                }
                var total = 0
                for try await a in group { total += a }
                precondition(total == n, "every record must be accepted, got \(total)")
            }
        }
        // Verification alone, one core: the ceiling that libsodium sets.
        let verifyStart = DispatchTime.now().uptimeNanoseconds
        for i in 0..<10_000 { _ = try SignedRecord.verify(encoded: encoded[i], nowMs: now) }
        let verifyPerCore = 10_000 / (Double(DispatchTime.now().uptimeNanoseconds - verifyStart) / 1e9)
        service.close()
        try? FileManager.default.removeItem(atPath: dir)
        let rate = Double(n) / elapsed
        emit(["benchmark": "registry-merge", "records": n, "seconds": round3(elapsed), "perSecond": Int(rate),
              "target": 30_000, "pass": rate >= 30_000, "durable": true, "workers": workers,
              "verifyOnlyPerSecondPerCore": Int(verifyPerCore)])
    }

    /// getMediaNodes(lat, lon, limit 10) over 10,000 records, in process, one thread.
    static func registryQuery() {
        let now = wallClockMs()
        var replica = RegistryReplica()
        for r in makeRecords(10_000, nowMs: now) { replica.merge(r, nowMs: now) }
        var rng = SystemRandomNumberGenerator()
        let points = (0..<4096).map { _ in GeoPoint(latitude: Double.random(in: -60...70, using: &rng), longitude: Double.random(in: -180...180, using: &rng)) }
        _ = replica.getMediaNodes(NodeQuery(near: points[0]), nowMs: now)  // builds the index
        let queries = 200_000
        var found = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for i in 0..<queries {
            found += replica.getMediaNodes(NodeQuery(near: points[i & 4095], limit: 10), nowMs: now).count
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        precondition(found == queries * 10)
        let rate = Double(queries) / elapsed
        emit(["benchmark": "registry-query", "records": 10_000, "queries": queries, "seconds": round3(elapsed),
              "perSecond": Int(rate), "microsecondsPerQuery": round3(elapsed / Double(queries) * 1e6),
              "target": 50_000, "pass": rate >= 50_000])
    }

    static func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
}

/// A small lock-protected box for collecting results from concurrentPerform.
final class Synchronization_Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ v: T) { _value = v }
    func mutate(_ f: (inout T) -> Void) { lock.lock(); f(&_value); lock.unlock() }
    var value: T { lock.lock(); defer { lock.unlock() }; return _value }
}

let all = ["registry-merge", "registry-query", "http-query", "noise-yamux-throughput", "handshakes", "idle-connection-memory",
           "gossip-mesh", "registry-sync", "srtp", "sfu-memory", "sfu-forward", "orchestrator-allocate", "http-allocate", "rpc-verify", "pipe-hop",
           "sim-steady-10k", "sim-steady-10k-fd60", "sim-join-storm-1k", "sim-steady-1k", "sim-partition-heal-1k", "sim-partition-heal-10k", "rewards-ledger", "sim-rewards-10k", "qos-validate",
           "qos-media", "sim-qos-2k"]
// `--name=value` arguments are options (sfu-forward's); the rest name benchmarks.
let names = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("--") }
let requested = names.isEmpty ? all : Array(names)
for name in requested {
    switch name {
    case "registry-merge": try await Bench.registryMerge()
    case "registry-query": Bench.registryQuery()
    case "http-query": try await HTTPBench.run()
    case "noise-yamux-throughput": try await Libp2pBench.throughput()
    case "handshakes": try await Libp2pBench.handshakes()
    case "idle-connection-memory": try await IdleMemoryBench.run()
    case "gossip-mesh": try await MeshBench.gossipMesh()
    case "registry-sync": try await MeshBench.registrySync()
    case "srtp": try SRTPBench.run()
    case "sfu-memory": try SFUMemoryBench.run()
    case "sfu-core": try SFUCoreBench.run(Array(CommandLine.arguments.dropFirst()))
    case "sfu-forward": try await MediaBench.run(MediaBench.Options(Array(CommandLine.arguments.dropFirst())))
    case "orchestrator-allocate": OrchestratorBench.allocate()
    case "http-allocate": try await OrchestratorBench.httpAllocate()
    case "rpc-verify": OrchestratorBench.rpcVerify()
    case "pipe-hop": try await PipeBench.run()
    case "sim-steady-10k": await SimBench.steady10k(forwardDelayMs: nil)
    case "sim-steady-10k-fd60": await SimBench.steady10k(forwardDelayMs: 60)
    case "sim-join-storm-1k": await SimBench.joinStorm1k()
    case "sim-steady-1k": await SimBench.steady1k()
    case "sim-partition-heal-1k": await SimBench.partitionHeal1k()
    case "sim-partition-heal-10k": await SimBench.partitionHeal10k()
    case "sim-steady-50k": await SimBench.steady50k()  // on request: about 10 min and up to 16 GiB
    case "rewards-ledger": RewardsBench.run()
    case "sim-rewards-10k": RewardsBench.simulated()
    case "qos-validate": try await QoSBench.validate()
    case "qos-media": try await QoSBench.media()
    case "sim-qos-2k": await QoSBench.gossip(peers: 2_000)
    case "sim-qos-10k": await QoSBench.gossip(peers: 10_000)
    default:
        FileHandle.standardError.write(Data("unknown benchmark '\(name)'; known: \(all.joined(separator: ", "))\n".utf8))
        exit(2)
    }
}
