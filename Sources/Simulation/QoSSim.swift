import Gossipsub
import Identity
import QoS
import Registry
import RegistryGossip

/// Verified QoS bundles by their exact bytes, shared by all simulated peers (like
/// `VerificationMemo` for records: a bundle that differs in any byte misses it and is
/// verified for real). One shared object per bundle also checks its ticket once.
final class QoSMemo: @unchecked Sendable {
    private let lock = SimLock()
    private var bundles: [[UInt8]: Result<SignedQoSBundle, QoSRejection>] = [:]
    private(set) var checks = 0
    private(set) var verifications = 0

    func remember(_ b: SignedQoSBundle) { lock.locked { bundles[b.encoded] = .success(b) } }

    func verify(_ bytes: [UInt8]) throws(QoSRejection) -> SignedQoSBundle {
        let hit = lock.locked { () -> Result<SignedQoSBundle, QoSRejection>? in
            checks += 1
            return bundles[bytes]
        }
        let result: Result<SignedQoSBundle, QoSRejection>
        if let hit {
            result = hit
        } else {
            do { result = .success(try SignedQoSBundle.verify(encoded: bytes)) } catch { result = .failure(error) }
            lock.locked {
                verifications += 1
                bundles[bytes] = result
            }
        }
        return try result.get()
    }

    func forget(epochsBefore epoch: UInt64) {
        lock.locked { bundles = bundles.filter { (try? $0.value.get().epoch).map { $0 >= epoch } ?? false } }
    }
}

/// What one QoS epoch of a run looked like (report.json `qos.epochs`).
struct QoSEpochFigures {
    var epoch: UInt64
    var active = 0
    var eligibleChallengers = 0
    var assignedPairs = 0
    var bundles = 0
    var reports = 0
    var countedReports = 0
    /// Active provers with ≥ 3 counted reports.
    var measured = 0
    /// Bundles of the epoch, and how many (bundle, peer) deliveries gossip achieved.
    var deliveries = 0
    var expectedDeliveries = 0
    var bundleBytes = 0
}

extension Simulator {
    /// The QoS settings when the scenario runs QoS.
    var qos: QoSSimSettings? {
        switch config.scenario {
        case .qos, .qosCollusion: config.qosSettings
        default: nil
        }
    }

    var qosSchedule: QoSSchedule { config.qosSettings.schedule }
    var qosLeadMs: UInt64 { min(qosSchedule.setupMs / 2, 10_000) }

    /// Called by `steadyStart`: ground truth and behaviour, the tickets every peer revealed
    /// before the first measured epoch, and one decision per epoch.
    func setUpQoS() {
        guard let settings = qos else { return }
        let n = peers.count
        if config.scenario == .qosCollusion {
            let colluders = max(1, Int((Double(n) * config.attackerShare).rounded()))
            for i in pickDistinct(colluders, from: Array(3..<n)) { peers[i].qosColluder = true }
        }
        let honest = peers.filter { !$0.qosColluder }.map { Int($0.index) }
        for i in pickDistinct(Int((Double(honest.count) * settings.degradedShare).rounded()), from: honest) { peers[i].qosDegraded = true }
        // Colluders inflate each other because their own media is poor: ground truth V = 0.
        for p in peers where p.qosColluder { p.qosDegraded = true }
        let startMs = Self.epochMs + measureFrom / 1000
        qosFirstEpoch = qosSchedule.epoch(atMs: startMs + qosLeadMs) + 1
        // The network was running: every peer revealed its ticket for the first epoch, if
        // active then (genesis: everyone stale, so twice the base activity).
        let seedEpoch = qosFirstEpoch - 1
        let plan = EpochPlan(epoch: qosFirstEpoch, observedNodes: n, parameters: settings.parameters)
        for p in peers {
            let proof = Ticket.prove(epoch: qosFirstEpoch, key: p.key)
            guard let beta = Ticket.verify(proof: proof, node: NodeKey(p.key), epoch: qosFirstEpoch),
                  plan.isActive(beta: beta, stale: true) else { continue }
            let b = QoSBundle(epoch: seedEpoch, challenger: NodeKey(p.key), schedule: qosSchedule, nextTicket: proof).signed(with: p.key)
            qosMemo.remember(b)
            qosLedger.insert(b)
        }
        var e = qosFirstEpoch
        while true {
            let decideMs = qosSchedule.testStartMs(e) - qosLeadMs
            guard decideMs >= Self.epochMs, (decideMs - Self.epochMs) * 1000 < measureFrom + UInt64(config.durationSeconds * 1_000_000) else { break }
            scenarioActions.append(((decideMs - Self.epochMs) * 1000, .qosDecide(e)))
            e += 1
        }
    }

    /// Between windows, at `testStart(e) − lead`: the aggregation of the run's set so far, and
    /// every alive peer's duties and bundle publication (at the test's end plus a random delay
    /// of up to setup/4, as the node does).
    func decideQoS(epoch e: UInt64) {
        guard let settings = qos else { return }
        let aggregate = QoSAggregate.compute(qosLedger, schedule: qosSchedule, parameters: settings.parameters)
        qosAggregate = aggregate
        tallyQoS(upTo: e)
        var figures = QoSEpochFigures(epoch: e)
        if let r = aggregate.epochs[e] {
            figures.active = r.active.count
            figures.eligibleChallengers = r.active.filter { (r.weights[$0] ?? 0) > 0 }.count
        }
        let jitterRange = max(1, min(qosSchedule.setupMs / 4, 30_000)) * 1000
        for p in peers where p.alive && !p.leaving {
            let duties = aggregate.duties(of: NodeKey(p.key), epoch: e)
            p.qosDuties = duties.provers
            figures.assignedPairs += duties.provers.count
            // Only the last two epochs' bundles can still arrive by gossip.
            p.qosHeld = p.qosHeld.filter { $0.key + 1 >= e }
            let at = (qosSchedule.testEndMs(e) - Self.epochMs) * 1000 + rng.next() % jitterRange
            schedule(at, .qosPublish(p.index, epoch: e), by: nil)
        }
        qosEpochs.append(figures)
        if e >= 3 { qosMemo.forget(epochsBefore: e - 3) }
    }

    /// A peer's bundle of epoch `e`: its reports (modelled measurements; colluders inflate,
    /// sink or withhold) and its ticket for e + 1 when active then. Published through its
    /// router like any message.
    func publishQoS(_ p: SimPeer, epoch e: UInt64) {
        guard let settings = qos, let aggregate = qosAggregate else { return }
        let me = NodeKey(p.key)
        var reports: [QoSReport] = []
        for prover in p.qosDuties {
            guard let i = indexOf[prover.peerID] else { continue }
            let target = peers[Int(i)]
            if p.qosColluder && !target.qosColluder {
                // Half the colluders sink the honest provers they test, half withhold.
                if p.index % 2 == 0 { reports.append(.failed(prover, .noAnswer, intervals: qosSchedule.intervals)) }
                continue
            }
            let samples = modelSamples(p, target, perfect: p.qosColluder, settings)
            let series = SampleSeries(intervalMs: qosSchedule.sampleIntervalMs, samples: samples)
            reports.append(QoSReport(prover: prover, outcome: .completed, counts: ScoreCounts.compute(samples),
                                     minRttUs: samples.map(\.rttUs).filter { $0 > 0 }.min() ?? 0, samplesHash: series.hash))
        }
        var ticket: [UInt8] = []
        let proof = Ticket.prove(epoch: e + 1, key: p.key)
        if let beta = Ticket.verify(proof: proof, node: me, epoch: e + 1),
           aggregate.wouldBeActive(me, beta: beta, epoch: e + 1, ticketsKnown: aggregate.epochs[e]?.tickets.count ?? 1) {
            ticket = proof
        }
        guard !reports.isEmpty || !ticket.isEmpty else { return }
        let bundle = QoSBundle(epoch: e, challenger: me, schedule: qosSchedule, nextTicket: ticket, reports: reports).signed(with: p.key)
        qosMemo.remember(bundle)
        p.qosHeld[e, default: []].insert(bundle.syncID)
        p.partition.pendingQoS.append(bundle)
        guard let (id, actions) = try? p.router.publish(bundle.encoded, topic: QoSGossip.topic, now: p.partition.nowMs) else { return }
        p.partition.pendingQoSMessages.append(id)
        execute(p, actions, accepted: [:])
    }

    /// The modelled samples of one test (Specs/simulation.md "QoS"): per interval, the test
    /// stream's packets (1,100 bytes at the test bitrate) each lost with the path's media loss
    /// (plus the prover's degradation), binomially (normal approximation); the RTT is the
    /// link's round trip with its jitter. `perfect`: what a colluder claims for a friend.
    func modelSamples(_ c: SimPeer, _ prover: SimPeer, perfect: Bool, _ s: QoSSimSettings) -> [QoSSample] {
        let intervalS = Double(qosSchedule.sampleIntervalMs) / 1000
        let expected = max(1.0, (s.bitrateKbps * 1000 / 8 / 1100 * intervalS).rounded())
        let loss = perfect ? 0 : s.mediaLoss + (prover.qosDegraded ? s.degradedLoss : 0)
        let oneWay = oneWayLatencyMs(c, prover)
        var out: [QoSSample] = []
        for _ in 0..<qosSchedule.intervals {
            var lost = 0.0
            if loss > 0 {
                // Box–Muller on the challenger's own generator.
                let u1 = max(1e-12, c.unitRandom()), u2 = c.unitRandom()
                let z = (-2 * _log(u1)).squareRoot() * _cos(2 * .pi * u2)
                lost = min(expected, max(0, (expected * loss + z * (expected * loss * (1 - loss)).squareRoot()).rounded()))
            }
            let jitter = perfect ? 0 : (c.unitRandom() * 2 - 1) * config.link.jitterMs
            let rttMs = max(0.05, 2 * oneWay + jitter)
            out.append(QoSSample(bitrateBps: UInt64((expected - lost) * 1100 * 8 / intervalS), lossPpm: UInt32(lost / expected * 1_000_000),
                                 rttUs: UInt32(rttMs * 1000), jitterUs: UInt32(abs(jitter) * 500)))
        }
        return out
    }

    /// The gossip validator of `drtc/qos/1` at peer `q`: the production pipeline, with
    /// verification memoised and the peer's held bundles for duplicates.
    func validateQoS(_ message: GossipMessage, at q: SimPeer, nowMs: UInt64) -> (ValidationResult, SignedQoSBundle?) {
        let memo = qosMemo
        return QoSGossip.validate(
            message, nowMs: nowMs, schedule: qosSchedule, verify: { bytes throws(QoSRejection) in try memo.verify(bytes) },
            outcome: { b in q.qosHeld[b.epoch]?.contains(b.syncID) == true ? .duplicate : .added(evicted: nil) })
    }

    func holdQoS(_ b: SignedQoSBundle, at p: SimPeer) {
        p.qosHeld[b.epoch, default: []].insert(b.syncID)
    }

    /// Between windows: the bundles published in the window join the run's set.
    func collectPublishedQoS() {
        for part in partitions where !part.pendingQoS.isEmpty || !part.pendingQoSMessages.isEmpty {
            for b in part.pendingQoS.sorted(by: { $0.syncID < $1.syncID }) { qosLedger.insert(b) }
            qosMessageIDs.formUnion(part.pendingQoSMessages)
            part.pendingQoS.removeAll(keepingCapacity: true)
            part.pendingQoSMessages.removeAll(keepingCapacity: true)
        }
    }

    /// Bytes of an RPC that QoS accounts for: its `drtc/qos/1` messages, and the control
    /// entries about them (IHAVE on the topic; IWANT and IDONTWANT of QoS message IDs).
    func qosShare(_ rpc: GossipRPC) -> Int {
        var bytes = 0
        for m in rpc.publish where m.topic == QoSGossip.topic {
            bytes += m.data.count + (m.from?.count ?? 0) + (m.seqno?.count ?? 0) + (m.signature?.count ?? 0) + QoSGossip.topic.utf8.count + 12
        }
        for entry in rpc.control.ihave where entry.topic == QoSGossip.topic {
            bytes += entry.topic.utf8.count + 4 + entry.ids.reduce(0) { $0 + $1.bytes.count + 2 }
        }
        for id in rpc.control.iwant where qosMessageIDs.contains(id) { bytes += id.bytes.count + 2 }
        for id in rpc.control.idontwant where qosMessageIDs.contains(id) { bytes += id.bytes.count + 2 }
        return bytes
    }

    /// Figures of epochs whose bundles have had their gossip window: deliveries per bundle.
    func tallyQoS(upTo e: UInt64) {
        guard let aggregate = qosAggregate else { return }
        for i in qosEpochs.indices where qosEpochs[i].expectedDeliveries == 0 && qosEpochs[i].epoch + 1 < e {
            let epoch = qosEpochs[i].epoch
            let bundles = qosLedger.bundles(epoch: epoch)
            qosEpochs[i].bundles = bundles.count
            qosEpochs[i].bundleBytes = bundles.reduce(0) { $0 + $1.encoded.count }
            qosEpochs[i].reports = bundles.reduce(0) { $0 + $1.bundle.reports.count }
            qosEpochs[i].countedReports = bundles.reduce(0) { sum, b in
                sum + b.bundle.reports.filter { aggregate.reportStatus[ReportRef(bundle: b.syncID, prover: $0.prover)]?.isCounted == true }.count
            }
            qosEpochs[i].measured = aggregate.epochs[epoch]?.measurements.count ?? 0
            let ids = Set(bundles.map(\.syncID))
            let alive = peers.filter { $0.alive }
            qosEpochs[i].expectedDeliveries = ids.count * alive.count
            qosEpochs[i].deliveries = alive.reduce(0) { $0 + (($1.qosHeld[epoch] ?? []).intersection(ids)).count }
        }
    }
}

extension Simulator {
    /// The QoS section of the report: coverage per epoch, gossip load, and score error
    /// against the ground truth (a healthy node's true V is that of a loss-free, steady test,
    /// (n − 1)/n; a degraded or colluding node's is 0).
    func qosSection() -> SimReport.QoSSection {
        let settings = config.qosSettings
        var q = SimReport.QoSSection()
        q.epochSeconds = Int(qosSchedule.epochSeconds)
        q.testSeconds = Int(qosSchedule.testSeconds)
        q.productionEpochSeconds = settings.productionEpochSeconds
        let aggregate = QoSAggregate.compute(qosLedger, schedule: qosSchedule, parameters: settings.parameters)
        qosAggregate = aggregate
        tallyQoS(upTo: .max)
        var delivered = 0, expected = 0
        for (i, f) in qosEpochs.enumerated() where f.bundles > 0 {
            var e = SimReport.QoSSection.Epoch()
            e.epoch = i
            e.active = f.active
            e.eligibleChallengers = f.eligibleChallengers
            e.assignedPairs = f.assignedPairs
            e.bundles = f.bundles
            e.reports = f.reports
            e.countedReports = f.countedReports
            e.measured = f.measured
            e.measuredShareOfActive = f.active == 0 ? 0 : Double(f.measured) / Double(f.active)
            e.deliveryRatio = f.expectedDeliveries == 0 ? 0 : Double(f.deliveries) / Double(f.expectedDeliveries)
            e.meanBundleBytes = f.bundles == 0 ? 0 : Double(f.bundleBytes) / Double(f.bundles)
            delivered += f.deliveries
            expected += f.expectedDeliveries
            q.epochs.append(e)
        }
        // Epochs whose bundles were all published and judged (their measurements exist).
        let judged = q.epochs.filter { $0.bundles > 0 && $0.active > 0 }
        q.measuredShareOfActiveMean = judged.isEmpty ? 0 : judged.map(\.measuredShareOfActive).reduce(0, +) / Double(judged.count)
        q.measuredShareOfActiveMin = judged.map(\.measuredShareOfActive).min() ?? 0
        q.deliveryRatio = expected == 0 ? 0 : Double(delivered) / Double(expected)
        let measuredKeys = Set(aggregate.nodes.filter(\.value.measured).keys)
        q.measuredAtLeastOnceShare = Double(measuredKeys.count) / Double(max(1, peers.count))

        let seconds = Double(endAt - measureFrom) / 1e6
        let rates = peers.map { Double($0.qosBytesOut - $0.qosBaselineOut) / seconds }
        q.bytesPerPeerPerSecond = quantiles(rates)
        let scale = Double(qosSchedule.epochSeconds) / settings.productionEpochSeconds
        q.bytesPerPeerPerSecondAtProductionEpoch = quantiles(rates.map { $0 * scale })
        q.bytesPerPeerPerEpochMean = q.bytesPerPeerPerSecond.mean * Double(qosSchedule.epochSeconds)

        let healthyTruth = Double(qosSchedule.intervals - 1) / Double(qosSchedule.intervals)
        var honestErrors: [Double] = []
        var colluderScores: [Double] = []
        var degradedHonest = 0, degradedDetected = 0
        for p in peers {
            let node = aggregate.qos(of: NodeKey(p.key))
            guard let score = node.score else { continue }
            q.measuredNodes += 1
            if p.qosColluder {
                colluderScores.append(score)
            } else {
                honestErrors.append(abs(score - (p.qosDegraded ? 0 : healthyTruth)))
                if p.qosDegraded {
                    degradedHonest += 1
                    if score < 0.3 { degradedDetected += 1 }
                }
            }
        }
        q.colluders = peers.filter(\.qosColluder).count
        q.degraded = peers.filter { $0.qosDegraded && !$0.qosColluder }.count
        let errors = quantiles(honestErrors)
        q.honestMeanAbsError = errors.mean
        q.honestP99AbsError = errors.p99
        q.honestWrongShare = honestErrors.isEmpty ? 0 : Double(honestErrors.filter { $0 > 0.25 }.count) / Double(honestErrors.count)
        q.colluderMeanScore = colluderScores.isEmpty ? 0 : colluderScores.reduce(0, +) / Double(colluderScores.count)
        q.colluderInflatedShare = colluderScores.isEmpty ? 0 : Double(colluderScores.filter { $0 > 0.5 }.count) / Double(colluderScores.count)
        q.degradedDetectedShare = degradedHonest == 0 ? 1 : Double(degradedDetected) / Double(degradedHonest)
        q.bundleChecks = qosMemo.checks
        q.bundleVerifications = qosMemo.verifications
        return q
    }
}
