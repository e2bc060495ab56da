import Dispatch
import Foundation
import HTTPAPI
import Identity
import Logging
import Node
import QoS
import RegistryGossip
import Simulation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// QoS benchmarks (Specs/qos.md): report validation and durable commit, the gossip load at
/// 10,000 peers (simulator), and the media cost of testing.
enum QoSBench {
    /// `qos-validate`: bundles of 8 reports each — decoded, checked (fields, Ed25519 bundle
    /// signature, ECVRF ticket proof) and group-committed to LMDB by one worker per core, as
    /// gossip and sync hand them to the node. Reported per report, with the same run's raw
    /// Ed25519 verifications per second per core for reference.
    static func validate() async throws {
        let schedule = QoSSchedule.standard
        let reportsPerBundle = 8
        let bundles = 6_250
        let epoch = schedule.epoch(atMs: wallClockMs())
        let keys = (0..<bundles).map { _ in Ed25519KeyPair.generate() }
        let encoded = Synchronization_Box<[[UInt8]]>(Array(repeating: [], count: bundles))
        DispatchQueue.concurrentPerform(iterations: ProcessInfo.processInfo.activeProcessorCount) { c in
            var rng = SystemRandomNumberGenerator()
            for i in stride(from: c, to: bundles, by: ProcessInfo.processInfo.activeProcessorCount) {
                let provers = Set((0..<reportsPerBundle).map { _ in Int.random(in: 0..<bundles, using: &rng) }).filter { $0 != i }
                let reports = provers.map { p in
                    QoSReport(prover: NodeKey(keys[p]), outcome: .completed,
                              counts: ScoreCounts(intervals: schedule.intervals, samples: schedule.intervals, bitrateGood: 230, lossGood: 236, latencyGood: 235),
                              minRttUs: 12_000, samplesHash: Array(secureRandomBytes(16)))
                }
                let b = QoSBundle(epoch: epoch, challenger: NodeKey(keys[i]), schedule: schedule,
                                  nextTicket: Ticket.prove(epoch: epoch + 1, key: keys[i]), reports: reports).signed(with: keys[i])
                encoded.mutate { $0[i] = b.encoded }
            }
        }
        let all = encoded.value
        let reports = try all.reduce(0) { $0 + (try SignedQoSBundle.verify(encoded: $1)).bundle.reports.count }
        let dir = NSTemporaryDirectory() + "drtc-bench-qos-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let service = try QoSService(directory: dir, schedule: schedule, metrics: DrtcMetrics(), logger: logger)
        let workers = ProcessInfo.processInfo.activeProcessorCount
        let elapsed = try await Bench.seconds {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for w in 0..<workers {
                    group.addTask {
                        try await withThrowingTaskGroup(of: Int.self) { inflight in
                            var batch: [SignedQoSBundle] = []
                            var pending = 0, added = 0
                            for i in stride(from: w, to: all.count, by: workers) {
                                batch.append(try SignedQoSBundle.verify(encoded: all[i]))
                                if batch.count == 64 || i + workers >= all.count {
                                    let submitted = batch
                                    batch.removeAll(keepingCapacity: true)
                                    inflight.addTask { try await service.merge(submitted).filter { if case .added = $0 { true } else { false } }.count }
                                    pending += 1
                                    if pending >= 8, let a = try await inflight.next() {
                                        added += a
                                        pending -= 1
                                    }
                                }
                            }
                            for try await a in inflight { added += a }
                            return added
                        }
                    }
                }
                var total = 0
                for try await a in group { total += a }
                precondition(total == all.count, "every bundle must be stored, got \(total)")
            }
        }
        // The same run's reference: raw Ed25519 verifications, one core.
        let sample = try all.prefix(2_000).map { try SignedQoSBundle.verify(encoded: $0) }
        let n = 10_000
        let start = DispatchTime.now().uptimeNanoseconds
        var ok = 0
        for i in 0..<n {
            let b = sample[i % sample.count]
            if Ed25519.verify(signature: b.signature, message: SignedQoSBundle.signingPrefix + b.body, publicKey: b.challenger.bytes) { ok += 1 }
        }
        precondition(ok == n)
        let ed25519PerCore = Double(n) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        // And one ECVRF ticket verification, one core.
        let vrfStart = DispatchTime.now().uptimeNanoseconds
        for b in sample.prefix(1_000) { precondition(Ticket.verify(proof: b.bundle.nextTicket, node: b.challenger, epoch: epoch + 1) != nil) }
        let vrfPerCore = 1_000 / (Double(DispatchTime.now().uptimeNanoseconds - vrfStart) / 1e9)
        let digest = service.digest()
        service.close()
        // The two halves on their own: verification on every core, and the durable commit of
        // already verified bundles into an empty store.
        let verifyOnly = try await Bench.seconds {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<workers {
                    group.addTask { for i in stride(from: w, to: all.count, by: workers) { _ = try SignedQoSBundle.verify(encoded: all[i]) } }
                }
                try await group.waitForAll()
            }
        }
        let verified = try all.map { try SignedQoSBundle.verify(encoded: $0) }
        let dir2 = dir + "-commit"
        defer { try? FileManager.default.removeItem(atPath: dir2) }
        let store2 = try QoSService(directory: dir2, schedule: schedule, metrics: DrtcMetrics(), logger: logger)
        let commitOnly = try await Bench.seconds {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for start in stride(from: 0, to: verified.count, by: 64) {
                    let chunk = Array(verified[start..<min(verified.count, start + 64)])
                    group.addTask { _ = try await store2.merge(chunk) }
                }
                try await group.waitForAll()
            }
        }
        store2.close()
        let rate = Double(reports) / elapsed
        Bench.emit(["benchmark": "qos-validate", "bundles": all.count, "reports": reports, "reportsPerBundle": reportsPerBundle,
                    "workers": workers, "seconds": Bench.round3(elapsed), "reportsPerSecond": Int(rate),
                    "bundlesPerSecond": Int(Double(all.count) / elapsed), "durable": true,
                    "ed25519VerifiesPerSecondPerCore": Int(ed25519PerCore), "ecvrfVerifiesPerSecondPerCore": Int(vrfPerCore),
                    "ratioToEd25519PerCore": Bench.round3(rate / ed25519PerCore), "digest": String(digest.prefix(16)),
                    "verifyOnlyReportsPerSecond": Int(Double(reports) / verifyOnly), "commitOnlyReportsPerSecond": Int(Double(reports) / commitOnly),
                    "target": 20_000, "pass": rate >= 20_000])
    }

    /// `sim-qos-2k` / `sim-qos-10k`: QoS gossip in `drtc sim` (50 ± 10 ms links, 1 % loss),
    /// two-minute epochs; the load per peer is also given scaled to the production epoch.
    /// Beyond 512 nodes the bundles per epoch do not grow with N (≈ 2 × the active target at
    /// the network's start, ≈ 1 × later), so neither does the load per peer; the simulator's
    /// memory does (every simulated router keeps ~1 kB per message for its 2-minute seen
    /// window): 10,000 peers need ~20 GB (Specs/simulation.md "QoS").
    static func gossip(peers: Int) async {
        await SimBench.run("sim-qos-\(peers / 1000)k", scenario: .qos, peers: peers, duration: 390, forwardDelayMs: 60) { r, _, _ in
            let q = r.qos
            return ("QoS gossip <= 10 kB/s per peer at the production epoch; >= 95 % of active provers measured per epoch",
                    (q?.bytesPerPeerPerSecondAtProductionEpoch.mean ?? .infinity) <= 10_000 && (q?.measuredShareOfActiveMean ?? 0) >= 0.95)
        }
    }

    /// `qos-media`: two real `drtc node`s on loopback test each other with a short schedule;
    /// the bytes a challenger received per test second give the media cost per node and
    /// production epoch (λ tests as prover and as challenger, 1,200 s each).
    static func media() async throws {
        let kbps = 1000
        let args = ["--log-level", "warning", "--media", "127.0.0.1:0", "--qos-epoch", "20", "--qos-test-duration", "12", "--qos-sample-interval", "2",
                    "--qos-bitrate-kbps", String(kbps), "--geo", "50,8"]
        let dirA = NSTemporaryDirectory() + "drtc-bench-qos-media-a-\(UUID().uuidString)"
        let dirB = NSTemporaryDirectory() + "drtc-bench-qos-media-b-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: dirA)
            try? FileManager.default.removeItem(atPath: dirB)
        }
        let (a, baseA) = try BenchNode.start(dataDir: dirA, extraArguments: args)
        defer { BenchNode.stop(a) }
        let health = try JSONSerialization.jsonObject(with: try await URLSession.shared.data(from: URL(string: baseA + "/health")!).0) as! [String: Any]
        let bootstrap = (health["multiaddrs"] as! [String])[0]
        let (b, baseB) = try BenchNode.start(dataDir: dirB, extraArguments: args + ["--bootstrap", bootstrap])
        defer { BenchNode.stop(b) }
        func metric(_ base: String, _ name: String, _ labels: String) async throws -> Double {
            let text = String(decoding: try await URLSession.shared.data(from: URL(string: base + "/metrics")!).0, as: UTF8.self)
            return text.split(separator: "\n").filter { $0.hasPrefix(name + "{") && $0.contains(labels) }
                .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
        }
        // Two epochs before the first test, then the test: up to ~60 s.
        let deadline = Date().addingTimeInterval(150)
        var tests = 0.0, received = 0.0, published = 0.0
        while Date() < deadline {
            tests = try await metric(baseA, "drtc_qos_tests_total", "result=\"completed\"")
            received = try await metric(baseA, "drtc_qos_media_bytes_total", "role=\"challenger\"")
            published = try await metric(baseB, "drtc_qos_media_bytes_total", "role=\"prover\"")
            if tests >= 1 && received > 0 && published > 0 { break }
            try await Task.sleep(for: .seconds(1))
        }
        guard tests >= 1, published > 0 else { throw BenchError("no QoS test completed within 150 s") }
        // Media flows from the challenger's connection, `lead` before the test (min(setup/2,
        // 10 s) = 4 s here), to the test's end.
        let seconds = 12.0 + 4.0
        let perTestSecond = received / tests / seconds
        let lambda = QoSParameters().expectedChallengers(active: 512)
        let perEpoch = perTestSecond * (1200 + 10) * lambda
        Bench.emit(["benchmark": "qos-media", "bitrateKbps": kbps, "testsMeasured": Int(tests),
                    "challengerBytesPerSecond": Int(perTestSecond), "proverLoopbackBytesPerSecond": Int(published / tests / seconds),
                    "expectedChallengersPerProver": lambda,
                    "bytesPerNodePerEpochAsProver": Int(perEpoch), "bytesPerNodePerEpochAsChallenger": Int(perEpoch),
                    "note": "per production epoch: (1,200 s test + 10 s lead) x lambda tests, at the default 1,000 kbit/s; bytes = SRTP datagrams (RTP/SRTP headers included, UDP/IP not); as prover the same again is published into the own SFU over loopback",
                    "target": "report", "pass": true])
    }
}
