import Gossipsub
import QoS
import RegistryGossip

/// Nearest-rank quantile of an ascending array.
func quantile<T: BinaryFloatingPoint>(_ sorted: [T], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((q * Double(sorted.count)).rounded(.up)) - 1
    return Double(sorted[min(max(rank, 0), sorted.count - 1)])
}

func quantiles(_ values: [Double]) -> SimReport.Quantiles {
    let sorted = values.sorted()
    var q = SimReport.Quantiles()
    guard !sorted.isEmpty else { return q }
    q.p50 = quantile(sorted, 0.5)
    q.p99 = quantile(sorted, 0.99)
    q.p9999 = quantile(sorted, 0.9999)
    q.max = sorted.last!
    q.mean = sorted.reduce(0, +) / Double(sorted.count)
    return q
}

extension Simulator {
    /// Updates published this long before the end are not judged (still in flight).
    var graceMs: UInt64 { min(10_000, UInt64(config.durationSeconds * 250)) }

    func makeReport() -> SimReport {
        var r = SimReport()
        r.peers = config.peers
        r.seed = config.seed
        r.scenario = config.scenario.rawValue
        r.durationSeconds = config.durationSeconds
        r.warmupSeconds = measureFrom == 0 ? 0 : config.warmupSeconds
        r.link = config.link
        r.minPeers = config.minPeers
        r.maxPeers = config.maxPeers
        r.events = eventsProcessed
        r.rewards = rewardsSection()

        // Convergence and delivery over (update, peer) pairs whose peer lived to the end.
        let judgedUntil = endAt > graceMs * 1000 ? endAt - graceMs * 1000 : 0
        var latencies: [Double] = []
        var duplicates: [Double] = []
        var expected = 0, delivered = 0
        var perUpdateP99: [Double] = [], perUpdateP9999: [Double] = []
        var judged = 0
        for u in updates where u.publishedAt <= judgedUntil {
            judged += 1
            var lat: [Double] = []
            var uExpected = 0
            for (i, v) in u.liveAfter.enumerated() where v != TrackedUpdate.notExpected && peers[i].alive {
                uExpected += 1
                if v != TrackedUpdate.pending {
                    lat.append(Double(v) / 1e6)
                    if u.copies[i] > 0 { duplicates.append(Double(u.copies[i]) - 1) }
                }
            }
            expected += uExpected
            delivered += lat.count
            latencies += lat
            lat.sort()
            // Time until the update was live on 99% / 99.99% of its expected peers (∞ if never).
            func reach(_ share: Double) -> Double {
                let need = Int((share * Double(uExpected)).rounded(.up))
                guard need > 0 else { return 0 }
                return need <= lat.count ? lat[need - 1] : .infinity
            }
            perUpdateP99.append(reach(0.99))
            perUpdateP9999.append(reach(0.9999))
        }
        r.updates = judged
        r.deliveryRatio = expected == 0 ? 1 : Double(delivered) / Double(expected)
        latencies.sort()
        // Undelivered pairs count as never converging: quantiles are over all expected pairs.
        func pooled(_ q: Double) -> Double {
            let need = Int((q * Double(expected)).rounded(.up))
            guard need > 0 else { return 0 }
            return need <= latencies.count ? latencies[need - 1] : -1
        }
        r.convergence.p50 = pooled(0.5)
        r.convergence.p99 = pooled(0.99)
        r.convergence.p9999 = pooled(0.9999)
        r.convergence.max = delivered < expected ? -1 : (latencies.last ?? 0)
        r.convergence.mean = latencies.isEmpty ? 0 : latencies.reduce(0, +) / Double(latencies.count)
        r.worstUpdateP99 = perUpdateP99.map { $0.isFinite ? $0 : -1 }.reduce(0) { $1 < 0 || $0 < 0 ? -1 : max($0, $1) }
        r.worstUpdateP9999 = perUpdateP9999.map { $0.isFinite ? $0 : -1 }.reduce(0) { $1 < 0 || $0 < 0 ? -1 : max($0, $1) }
        r.duplicates = quantiles(duplicates)

        // Bandwidth per peer over the time it was up within the measurement window.
        var rates: [Double] = [], ratesIn: [Double] = []
        for p in peers where p.role == .honest {
            let from = max(measureFrom, p.joinedAt)
            let to = min(endAt, p.diedAt ?? endAt)
            guard to > from + 1_000_000 else { continue }
            let seconds = Double(to - from) / 1e6
            let baseOut = p.joinedAt > measureFrom ? 0 : p.baselineBytesOut
            let baseIn = p.joinedAt > measureFrom ? 0 : p.baselineBytesIn
            rates.append(Double(p.bytesOut - baseOut) / seconds)
            ratesIn.append(Double(p.bytesIn - baseIn) / seconds)
        }
        r.bytesPerPeerPerSecond = quantiles(rates)
        r.bytesInPerPeerPerSecond = quantiles(ratesIn)
        r.bandwidthSorted = downsample(rates.sorted(), to: 200)

        r.agreementSeries = samples.map { (Double($0.t - measureFrom) / 1e6, $0.agreement) }
        r.signatureChecks = memo.signatureChecks
        r.signatureVerifications = memo.signatureVerifications
        r.recordChecks = memo.recordChecks
        r.recordVerifications = memo.recordVerifications
        r.snapshotsBuilt = snapshots.built
        r.syncBusyReplies = busyReplies

        // Charts: share of expected pairs live by time since publication, and the CDF of
        // delivery latency among delivered pairs.
        let horizon = max(1.0, min(latencies.last ?? 1, 30))
        var curve: [(Double, Double)] = []
        var idx = 0
        for step in 0...200 {
            let t = horizon * Double(step) / 200
            while idx < latencies.count && latencies[idx] <= t { idx += 1 }
            curve.append((t, expected == 0 ? 1 : Double(idx) / Double(expected)))
        }
        r.convergenceCurve = curve
        var cdf: [(Double, Double)] = []
        if !latencies.isEmpty {
            for step in 0...200 {
                let q = Double(step) / 200
                cdf.append((quantile(latencies, q), q))
            }
        }
        r.latencyCDF = cdf
        r.outcome = scenarioOutcome()
        if qos != nil { r.qos = qosSection() }
        return r
    }

    func downsample(_ values: [Double], to n: Int) -> [Double] {
        guard values.count > n else { return values }
        return (0..<n).map { values[Int(Double($0) * Double(values.count - 1) / Double(n - 1))] }
    }

    func scenarioOutcome() -> [(String, Double)] {
        var out: [(String, Double)] = []
        switch config.scenario {
        case .steady, .qos, .qosCollusion:
            break
        case .joinStorm, .churn:
            // Catch-up: time from joining until a peer held every record that existed when it joined.
            var catchUp: [Double] = []
            var pending = 0
            for p in peers where p.index >= 3 && p.joinedAt > 0 && p.alive {
                if let t = p.caughtUpAt { catchUp.append(Double(t - p.joinedAt) / 1e6) } else { pending += 1 }
            }
            let q = quantiles(catchUp)
            out += [("joined", Double(scenarioLog.joined)), ("joinCatchUpP50Seconds", q.p50), ("joinCatchUpP99Seconds", q.p99),
                    ("joinCatchUpMaxSeconds", q.max), ("joinersNotCaughtUp", Double(pending))]
            let honest = peers.filter { $0.alive && $0.role == .honest }
            let liveNodes = Set(honest.map(\.id))
            let full = honest.filter { p in
                let held = p.replica.table.records.filter { $0.isLive(nowMs: nowMs) }.map(\.nodeID)
                return liveNodes.isSubset(of: Set(held))
            }.count
            out.append(("fullTableShareAtEnd", honest.isEmpty ? 1 : Double(full) / Double(honest.count)))
            if config.scenario == .joinStorm {
                out.append(("fullTableSeconds", fullTableAt.map { Double($0) / 1e6 } ?? -1))
            } else {
                out += [("left", Double(scenarioLog.left)), ("crashed", Double(scenarioLog.crashed))]
            }
        case .partitionHeal:
            let heal = scenarioLog.healAt ?? endAt
            let healed = samples.first { $0.t >= heal && $0.agreement >= 0.999 }
            out += [("partitionAtSeconds", Double((scenarioLog.partitionAt ?? 0) - measureFrom) / 1e6),
                    ("healAtSeconds", Double(heal - measureFrom) / 1e6),
                    ("minAgreementDuringPartition", samples.filter { $0.t >= (scenarioLog.partitionAt ?? 0) && $0.t < heal }.map(\.agreement).min() ?? 1),
                    ("healSeconds", healed.map { Double($0.t - heal) / 1e6 } ?? -1)]
        case .floodAttack:
            var pairs = 0, graylisted = 0, fullyGraylisted = 0, attackers = 0
            let now = nowMs
            for a in peers where a.role == .flooder {
                attackers += 1
                var all = true
                for q in a.sortedConnections where peers[Int(q)].role == .honest {
                    pairs += 1
                    if peers[Int(q)].router.isGraylisted(a.id, now: now) { graylisted += 1 } else { all = false }
                }
                if all { fullyGraylisted += 1 }
            }
            var rejected = 0
            for p in peers where p.role == .honest { rejected += p.router.counters.rejected.values.reduce(0, +) }
            out += [("attackers", Double(attackers)), ("attackerConnections", Double(pairs)),
                    ("graylistedShare", pairs == 0 ? 1 : Double(graylisted) / Double(pairs)),
                    ("attackersGraylistedByAllNeighbours", Double(fullyGraylisted)), ("rejectedMessagesOrRPCs", Double(rejected))]
        case .eclipseAttempt:
            let s = scenarioLog.victimSamples.filter { $0.t >= measureFrom }
            let shares = s.map { $0.connections == 0 ? 0 : Double($0.attackerConnections) / Double($0.connections) }
            let meshShares = s.map { $0.mesh == 0 ? 0 : Double($0.attackerMesh) / Double($0.mesh) }
            var victimExpected = 0, victimDelivered = 0
            let v = Int(scenarioLog.victim ?? 0)
            let judgedUntil = endAt > graceMs * 1000 ? endAt - graceMs * 1000 : 0
            for u in updates where u.publishedAt <= judgedUntil && v < u.liveAfter.count && u.liveAfter[v] != TrackedUpdate.notExpected {
                victimExpected += 1
                if u.liveAfter[v] != TrackedUpdate.pending { victimDelivered += 1 }
            }
            out += [("attackers", Double(peers.filter { $0.role == .eclipser }.count)),
                    ("victimAttackerConnectionShareMean", shares.isEmpty ? 0 : shares.reduce(0, +) / Double(shares.count)),
                    ("victimAttackerConnectionShareMax", shares.max() ?? 0),
                    ("victimAttackerMeshShareMax", meshShares.max() ?? 0),
                    ("victimHonestOutboundMeshMin", Double(s.map(\.honestOutboundMesh).min() ?? 0)),
                    ("victimDeliveryRatio", victimExpected == 0 ? 1 : Double(victimDelivered) / Double(victimExpected))]
        }
        return out
    }
}
