import Dispatch
import Foundation
import Gossipsub
import HTTPAPI
import Identity
import Libp2p
import Libp2pNIO
import Logging
import Node
import Registry
import Synchronization

/// Mesh benchmarks with the production shell (MeshGossip + RegistryService on LMDB) over real
/// loopback TCP + Noise + Yamux, many nodes in one process.
enum MeshBench {
    final class Peer: Sendable {
        let host: Libp2pHost
        let registry: RegistryService
        let gossip: MeshGossip

        init(dir: String) throws {
            var logger = Logger(label: "bench")
            logger.logLevel = .error
            let key = Ed25519KeyPair.generate()
            let metrics = DrtcMetrics()
            host = Libp2pHost(identity: key, logger: logger)
            registry = try RegistryService(directory: dir, metrics: metrics, logger: logger)
            let parameters = MeshGossip.defaultParameters()
            gossip = MeshGossip(host: host, identity: key, registry: registry, metrics: metrics, logger: logger,
                                heartbeatMs: 1_000, parameters: parameters, clock: wallClockMs)
            gossip.start()
        }

        func close() async {
            gossip.stop()
            await host.shutdown()
            registry.close()
        }
    }

    static func makePeers(_ n: Int, base: String) async throws -> [Peer] {
        var peers: [Peer] = []
        for i in 0..<n {
            let p = try Peer(dir: "\(base)/n\(i)")
            try await p.host.listen([try Multiaddr("/ip4/127.0.0.1/tcp/0")])
            peers.append(p)
        }
        return peers
    }

    static func tempDir(_ name: String) -> String {
        let dir = NSTemporaryDirectory() + "drtc-bench-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    /// 50 nodes, each dialling 8 random others (the node's default degree); heartbeats every
    /// second. Phase 1: 300 record updates from random nodes at 20/s — publish-to-delivery
    /// latency at every other node and duplicates per delivery. Phase 2: the steady state of
    /// 1,000 heartbeating records under the liveness rule — bytes per node per second.
    static func gossipMesh() async throws {
        let n = 50
        let base = tempDir("gossip")
        let peers = try await makePeers(n, base: base)
        for (i, p) in peers.enumerated() {
            for j in (0..<n).filter({ $0 != i }).shuffled().prefix(4) {
                _ = try? await p.host.dial(peers[j].host.listenAddresses[0])
            }
        }
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                for p in peers { p.gossip.heartbeat() }
            }
        }
        try await Task.sleep(for: .seconds(4))
        let published = Mutex<[SyncID: UInt64]>([:])
        let latencies = Mutex<[Double]>([])
        for p in peers {
            p.gossip.onDeliver { record in
                let now = DispatchTime.now().uptimeNanoseconds
                if let t = published.withLock({ $0[record.syncID] }) {
                    latencies.withLock { $0.append(Double(now - t) / 1e6) }
                }
            }
        }
        let before = peers.map { $0.gossip.counters }
        let count = 300
        let records = Bench.makeRecords(count, nowMs: wallClockMs())
        for record in records {
            let origin = peers.randomElement()!
            _ = try await origin.registry.merge([record])
            published.withLock { $0[record.syncID] = DispatchTime.now().uptimeNanoseconds }
            origin.gossip.publish(record)
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .seconds(2))
        let after = peers.map { $0.gossip.counters }
        let delivered = zip(before, after).reduce(0) { $0 + $1.1.messagesDelivered - $1.0.messagesDelivered }
        let duplicates = zip(before, after).reduce(0) { $0 + $1.1.duplicates - $1.0.duplicates }
        let suppressed = zip(before, after).reduce(0) { $0 + $1.1.suppressed - $1.0.suppressed }
        let sorted = latencies.withLock { $0 }.sorted()
        let expected = count * (n - 1)
        let p99 = percentile(sorted, 0.99)
        let dupPerMessage = Double(duplicates) / Double(max(1, delivered))
        Bench.emit([
            "benchmark": "gossip-mesh", "nodes": n, "messages": count, "deliveries": sorted.count, "expectedDeliveries": expected,
            "p50Ms": Bench.round3(percentile(sorted, 0.5)), "p99Ms": Bench.round3(p99), "maxMs": Bench.round3(sorted.last ?? 0),
            "duplicatesPerDelivery": Bench.round3(dupPerMessage),
            "suppressedPerDelivery": Bench.round3(Double(suppressed) / Double(max(1, delivered))),
            "meanMeshDegree": Bench.round3(Double(peers.reduce(0) { $0 + $1.gossip.meshSize }) / Double(n)),
            "meanConnections": Bench.round3(Double(peers.reduce(0) { $0 + $1.host.connectedPeers.count }) / Double(n)),
            "target": "p99 < 50 ms, duplicates <= 3", "pass": p99 < 50 && dupPerMessage <= 3 && sorted.count == expected,
        ])

        // Phase 2: 1,000 records, each republished on the liveness rule's interval.
        let tableSize = 1_000
        let schedule = LivenessRule.schedule(baseInterval: 30, baseTTL: 90, liveRecords: tableSize)
        let rate = Double(tableSize) / Double(schedule.interval)
        let seconds = 30.0
        let keys = (0..<tableSize).map { _ in Ed25519KeyPair.generate() }
        let trafficBefore = peers.map { $0.gossip.trafficBytes }
        let start = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds {
            let due = Int(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 * rate)
            while sent < due {
                let key = keys[sent % tableSize]
                let record = try MediaNodeRecord(
                    publicKey: key.publicKey, region: "EU", geo: GeoPoint(latitude: 50, longitude: 8), url: "https://node.example/api",
                    discoveryURL: "https://node.example/api", ip: "192.0.2.1", metricsURL: "https://node.example/metrics",
                    version: "bench", multiaddrs: ["/ip4/192.0.2.1/tcp/4001/p2p/\(key.peerID)"],
                    capacity: Capacity(bandwidthUpKbps: 1_000_000, maxSessions: 500), hlc: HLC(wallMs: wallClockMs(), logical: UInt32(sent)),
                    refreshIntervalSeconds: schedule.interval, ttlSeconds: schedule.ttl).signed(with: key)
                let origin = peers[sent % n]
                _ = try await origin.registry.merge([record])
                origin.gossip.publish(record)
                sent += 1
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let perNode = zip(trafficBefore, peers.map { $0.gossip.trafficBytes }).map { Double($1.out - $0.out + $1.in - $0.in) / elapsed }.sorted()
        let mean = perNode.reduce(0, +) / Double(perNode.count)
        Bench.emit([
            "benchmark": "gossip-steady-bandwidth", "nodes": n, "tableRecords": tableSize, "refreshIntervalSeconds": Int(schedule.interval),
            "updatesPerSecond": Bench.round3(rate), "meanBytesPerNodePerSecond": Int(mean), "p99BytesPerNodePerSecond": Int(percentile(perNode, 0.99)),
            "note": "gossip RPC bytes in+out per node, without Noise/Yamux framing",
        ])
        heartbeat.cancel()
        for p in peers { await p.close() }
        try? FileManager.default.removeItem(atPath: base)
    }

    /// An empty node joins a peer holding 10,000 records; then, after both diverge by 100
    /// records, they reconcile again.
    static func registrySync() async throws {
        let base = tempDir("sync")
        let peers = try await makePeers(2, base: base)
        let (full, joiner) = (peers[0], peers[1])
        let records = Bench.makeRecords(10_000, nowMs: wallClockMs())
        _ = try await full.registry.merge(records)
        let size = records.reduce(0) { $0 + $1.encoded.count }
        let start = DispatchTime.now().uptimeNanoseconds
        try await joiner.host.dial(full.host.listenAddresses[0])  // the dialler syncs at once
        while joiner.registry.withReplica({ $0.table.count }) < records.count {
            try await Task.sleep(for: .milliseconds(2))
        }
        let joinSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        try await Task.sleep(for: .milliseconds(200))
        let join = joiner.gossip.lastSync() ?? (records: 0, bytesIn: 0, bytesOut: 0)
        let joinBytes = join.bytesIn + join.bytesOut
        Bench.emit([
            "benchmark": "registry-sync-join", "records": records.count, "recordBytes": size, "seconds": Bench.round3(joinSeconds),
            "wireBytes": joinBytes, "wireOverRecords": Bench.round3(Double(joinBytes) / Double(size)),
            "target": "< 2 s, < 2x the records' size", "pass": joinSeconds < 2 && joinBytes < 2 * size,
        ])

        // Partition: 50 new records on each side (merged locally, not gossiped).
        let fresh = Bench.makeRecords(100, nowMs: wallClockMs())
        _ = try await full.registry.merge(Array(fresh[..<50]))
        _ = try await joiner.registry.merge(Array(fresh[50...]))
        let diffSize = fresh.reduce(0) { $0 + $1.encoded.count }
        var runs: [(Double, Int)] = []
        for _ in 0..<3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            await joiner.gossip.syncWith(full.host.peerID)
            let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            let s = joiner.gossip.lastSync() ?? (records: 0, bytesIn: 0, bytesOut: 0)
            runs.append((t, s.bytesIn + s.bytesOut))
        }
        let (ms, bytes) = runs[0]
        let converged = joiner.registry.withReplica { $0.table.count } == 10_100 && full.registry.withReplica { $0.table.count } == 10_100
        Bench.emit([
            "benchmark": "registry-sync-partition", "tableRecords": 10_100, "differingRecords": fresh.count, "differingBytes": diffSize,
            "ms": Bench.round3(ms), "wireBytes": bytes, "wireOverDiffering": Bench.round3(Double(bytes) / Double(diffSize)),
            "inSyncRoundTripMs": Bench.round3(runs[2].0), "inSyncWireBytes": runs[2].1, "converged": converged,
            "target": "< 100 ms, < 20x the differing records", "pass": converged && ms < 100 && bytes < 20 * diffSize,
        ])
        for p in peers { await p.close() }
        try? FileManager.default.removeItem(atPath: base)
    }
}
