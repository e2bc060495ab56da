import HTTPAPI
import Identity
import Libp2pNIO
import Logging
import NIOPosix
import QoS
import Registry
import RegistryGossip
import ServiceLifecycle

/// What the QoS parts of a node share.
struct QoSRuntime: Sendable {
    let config: NodeConfig
    let identity: Ed25519KeyPair
    let host: Libp2pHost
    let registry: RegistryService
    let qos: QoSService
    let gossip: MeshGossip
    let media: MediaService
    let metrics: DrtcMetrics
    let logger: Logger
    let clock: @Sendable () -> UInt64
    /// The event loop of the QoS media sockets (challenger sessions, test streams).
    let group: MultiThreadedEventLoopGroup

    /// Challengers connect this long before the test starts (Specs/qos.md "Test protocol").
    var leadMs: UInt64 { min(qos.schedule.setupMs / 2, 10_000) }
}

/// The QoS topic and set in the mesh (Specs/qos.md "Validation", "Replication").
enum QoSWiring {
    static func attach(_ qos: QoSService, to gossip: MeshGossip, metrics: DrtcMetrics, logger: Logger) {
        SetReplication<SignedQoSBundle>(
            topic: QoSGossip.topic, protocolID: QoSGossip.syncProtocolID, metricsPrefix: "drtc_qos_sync", what: "QoS bundle",
            validate: { message, now in
                let (result, bundle) = QoSGossip.validate(
                    message, nowMs: now, schedule: qos.schedule, outcome: { b in qos.withLedger { $0.outcome(of: b) } },
                    unassigned: { b, r in qos.isDefinitelyUnassigned(challenger: b.challenger, prover: r.prover, epoch: b.epoch) })
                if case .reject(let reason) = result {
                    metrics.counter("drtc_qos_bundles_rejected_total", "reason", String(reason.dropFirst("qos_".count))).increment()
                }
                return (result, bundle)
            },
            verify: { bytes in
                do { return try SignedQoSBundle.verify(encoded: bytes) } catch {
                    metrics.counter("drtc_qos_bundles_rejected_total", "reason", (error as? QoSRejection)?.reason ?? "malformed").increment()
                    return nil
                }
            },
            merge: { bundles, gossiped in
                let outcomes = try await qos.merge(bundles)
                guard gossiped else { return }
                for (bundle, outcome) in zip(bundles, outcomes) {
                    if case .added = outcome {
                        metrics.counter("drtc_qos_reports_total", "result", "accepted").increment(by: bundle.bundle.reports.count)
                    }
                }
            },
            syncItems: { qos.withLedger { $0.syncItems } },
            busySample: {
                qos.withLedger { l in Array(l.bundles(epoch: l.epochs.last ?? 0).shuffled().prefix(SyncPolicy.busySample)).map(\.encoded) }
            }
        ).attach(to: gossip, logger: logger)
        metrics.onScrape {
            metrics.gauge("drtc_qos_bundles", "kind", "stored").set(qos.withLedger { $0.count })
        }
    }
}

/// The QoS scheduler (Specs/qos.md): for every epoch, starts this node's tests as challenger
/// shortly before the test phase, ends its test stream as prover when the test ends, and then
/// publishes its bundle (reports and next ticket). A `Service`: graceful shutdown ends the
/// running tests and closes the QoS store.
struct QoSScheduler: Service {
    let rt: QoSRuntime
    let prover: QoSProver

    init(_ rt: QoSRuntime) {
        self.rt = rt
        prover = QoSProver(rt)
    }

    func run() async throws {
        let schedule = rt.qos.schedule
        let startEpoch = schedule.epoch(atMs: rt.clock())
        rt.host.setStreamHandler(TestSignalling.protocolID) { [prover] stream in await prover.handle(stream) }
        rt.metrics.onScrape { [rt] in exportOwnScore(rt) }
        rt.logger.info("QoS scheduler running", metadata: [
            "enabled": "\(rt.config.qos)", "epochSeconds": "\(schedule.epochSeconds)", "testSeconds": "\(schedule.testSeconds)",
            "sampleIntervalMs": "\(schedule.sampleIntervalMs)", "firstTestEpoch": "\(startEpoch + 2)"])
        try? await cancelWhenGracefulShutdown {
            var e = startEpoch
            while !Task.isCancelled {
                try await runEpoch(e, startEpoch: startEpoch)
                e += 1
            }
        }
        await prover.stopAll()
        rt.qos.close()
    }

    private func sleep(until ms: UInt64) async throws {
        let now = rt.clock()
        if ms > now { try await Task.sleep(for: .milliseconds(Int64(ms - now))) }
    }

    /// One epoch: tests (if active and eligible), then the bundle.
    private func runEpoch(_ e: UInt64, startEpoch: UInt64) async throws {
        let schedule = rt.qos.schedule
        let me = NodeKey(rt.identity)
        let decideAt = schedule.testStartMs(e) - rt.leadMs
        let jitterMs = UInt64.random(in: 0...max(1, min(schedule.setupMs / 4, 30_000)))
        var outcomes: [QoSChallenger.Outcome] = []
        if rt.clock() <= decideAt {
            try await sleep(until: decideAt)
            let duties = rt.config.qos ? rt.qos.aggregate().duties(of: me, epoch: e) : .idle
            if duties.active {
                rt.logger.info("QoS epoch", metadata: ["epoch": "\(e)", "eligible": "\(duties.eligible)", "provers": "\(duties.provers.count)"])
            }
            outcomes = try await withThrowingTaskGroup(of: QoSChallenger.Outcome.self) { group in
                for p in duties.provers { group.addTask { await QoSChallenger.run(rt, prover: p, epoch: e) } }
                try await sleep(until: schedule.testEndMs(e) + jitterMs)
                var all: [QoSChallenger.Outcome] = []
                for try await o in group { all.append(o) }
                return all
            }
        } else {
            try await sleep(until: schedule.testEndMs(e) + jitterMs)
        }
        await prover.endEpoch(e)
        for o in outcomes {
            rt.metrics.counter("drtc_qos_tests_total", [("role", "challenger"), ("result", o.report.outcome.rawValue)]).increment()
            rt.metrics.counter("drtc_qos_media_bytes_total", [("role", "challenger"), ("direction", "in")]).increment(by: o.bytesReceived)
            rt.logger.info("QoS test done", metadata: [
                "epoch": "\(e)", "prover": "\(o.report.prover)", "outcome": "\(o.report.outcome.rawValue)",
                "V": "\(o.report.counts.score)", "detail": "\(o.detail)"])
        }
        if rt.config.qos { await publish(epoch: e, outcomes, startEpoch: startEpoch) }
        rt.qos.collectGarbage()
    }

    /// Signs, stores and gossips this node's bundle for epoch `e`: its reports, and its ticket
    /// for e + 1 when it is active then. Never a second bundle for an epoch (that would be
    /// equivocation), e.g. after a restart.
    private func publish(epoch e: UInt64, _ outcomes: [QoSChallenger.Outcome], startEpoch: UInt64) async {
        let me = NodeKey(rt.identity)
        guard rt.qos.withLedger({ $0.bundles(epoch: e, challenger: me).isEmpty }) else { return }
        var ticket: [UInt8] = []
        if e + 1 >= startEpoch + 2 {
            let proof = Ticket.prove(epoch: e + 1, key: rt.identity)
            let agg = rt.qos.aggregate()
            if let beta = Ticket.verify(proof: proof, node: me, epoch: e + 1),
               agg.wouldBeActive(me, beta: beta, epoch: e + 1, ticketsKnown: (agg.epochs[e + 1]?.tickets.count ?? 0) + 1) {
                ticket = proof
            }
        }
        guard !outcomes.isEmpty || !ticket.isEmpty else { return }
        for o in outcomes { if let s = o.samples { rt.qos.saveSamples(s, epoch: e) } }
        let bundle = QoSBundle(epoch: e, challenger: me, schedule: rt.qos.schedule, nextTicket: ticket,
                               reports: outcomes.map(\.report)).signed(with: rt.identity)
        do {
            _ = try await rt.qos.merge([bundle])
        } catch {
            rt.logger.error("could not store own QoS bundle", metadata: ["epoch": "\(e)", "error": "\(error)"])
            return
        }
        rt.gossip.publish(bundle.encoded, topic: QoSGossip.topic)
        rt.metrics.counter("drtc_qos_bundles_published_total", "kind", ticket.isEmpty ? "reports" : "reports_and_ticket").increment()
        rt.logger.info("QoS bundle published", metadata: [
            "epoch": "\(e)", "reports": "\(outcomes.count)", "nextTicket": "\(!ticket.isEmpty)", "bytes": "\(bundle.encoded.count)"])
    }
}

/// `drtc_qos_score` & co.: this node's own latest smoothed scores (absent while unmeasured).
private func exportOwnScore(_ rt: QoSRuntime) {
    let q = rt.qos.aggregate().qos(of: NodeKey(rt.identity))
    guard let score = q.score else { return }
    let node = rt.identity.peerID.description
    rt.metrics.gauge("drtc_qos_score", "node", node).set(score)
    if let b = q.bitrateScore { rt.metrics.gauge("drtc_qos_bitrate_score", "node", node).set(b) }
    if let f = q.fractionalLossScore { rt.metrics.gauge("drtc_qos_loss_score", "node", node).set(f) }
    if let l = q.latencyScore { rt.metrics.gauge("drtc_qos_latency_score", "node", node).set(l) }
}
