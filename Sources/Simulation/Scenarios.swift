import Gossipsub
import Identity
import Registry
import RegistryGossip

/// Something a scenario does at a planned instant.
enum ScenarioAction {
    case join
    case churnTick
    case partition
    case heal
    /// QoS: every active peer's duties for the epoch, from the run's report set.
    case qosDecide(UInt64)
}

/// What a scenario did, for its report section.
struct ScenarioLog {
    var joined = 0
    var left = 0
    var crashed = 0
    var churnDebt = 0.0
    var partitionAt: SimTime?
    var healAt: SimTime?
    var victim: Int32?
    var victimSamples: [(t: SimTime, attackerConnections: Int, connections: Int, attackerMesh: Int, mesh: Int, honestOutboundMesh: Int)] = []
}

/// One agreement sample: share of live honest peers whose settled table (records older than
/// `settleMs`) has the majority fingerprint.
struct AgreementSample {
    var t: SimTime
    var agreement: Double
    var peers: Int
}

extension Simulator {
    static let settleMs: UInt64 = 5_000

    func setUpScenario() {
        switch config.scenario {
        case .steady, .churn, .partitionHeal, .floodAttack, .eclipseAttempt, .qos, .qosCollusion:
            steadyStart()
        case .joinStorm:
            joinStormStart()
        }
    }

    /// N peers that already hold every honest peer's record and are connected 8–12 each; the
    /// mesh forms during the warm-up.
    func steadyStart() {
        let n = config.peers
        var roles = [PeerRole](repeating: .honest, count: n)
        switch config.scenario {
        case .floodAttack:
            let attackers = max(1, Int(Double(n) * config.attackerShare))
            for i in pickDistinct(attackers, from: Array(3..<n)) { roles[i] = .flooder }
        case .eclipseAttempt:
            let attackers = min(n / 2, max(Int(Double(n) * config.attackerShare), 2 * config.maxPeers))
            for i in (n - attackers)..<n { roles[i] = .eclipser }
        default: break
        }
        for i in 0..<n { addPeer(role: roles[i]) }
        bootstrap = [0, 1, 2].filter { $0 < n }.map(Int32.init)
        // The table everyone holds: each honest peer's record, signed at a random phase of its
        // refresh interval so that refreshes are spread evenly.
        let honest = peers.filter { $0.role == .honest }
        let schedule = LivenessRule.schedule(baseInterval: config.refreshIntervalSeconds, baseTTL: config.ttlSeconds, liveRecords: honest.count)
        let intervalMs = UInt64(schedule.interval) * 1000
        var shared = RegistryReplica()
        var fingerprint = TableFingerprint()
        var firstRefresh: [Int32: SimTime] = [:]
        for p in honest {
            let phase = rng.next() % intervalMs
            let record = makeRecord(p, hlc: HLC(wallMs: Self.epochMs - phase), status: .active, schedule: schedule)
            p.refreshIntervalMs = intervalMs
            shared.merge(record, nowMs: Self.epochMs)
            fingerprint.add(record.syncID)
            firstRefresh[p.index] = (intervalMs - phase) * 1000
        }
        shared.compact()
        for p in peers {
            p.replica = shared  // copy-on-write: one table until a peer's first merge
            p.fingerprint = fingerprint
            p.knownEarlier = Int(p.index)
            p.caughtUpAt = 0
            p.announce = AnnouncePolicy(isolated: false)
        }
        prewire()
        measureFrom = UInt64(config.warmupSeconds * 1_000_000)
        for p in peers {
            startTimers(p, publishNow: false)
            if let t = firstRefresh[p.index] {
                p.nextRefreshAt = t
                self.schedule(t, .refresh(p.index), by: p)
            }
        }
        switch config.scenario {
        case .churn:
            var t = measureFrom + 1_000_000
            while t < measureFrom + UInt64(config.durationSeconds * 1_000_000) {
                scenarioActions.append((t, .churnTick))
                t += 1_000_000
            }
        case .partitionHeal:
            for p in peers { p.side = p.region % max(2, config.partitionSides) }
            let d = config.durationSeconds * 1_000_000
            scenarioActions.append((measureFrom + UInt64(d * config.partitionAt), .partition))
            scenarioActions.append((measureFrom + UInt64(d * config.healAt), .heal))
        case .eclipseAttempt:
            scenarioLog.victim = 0
        default: break
        }
        if qos != nil { setUpQoS() }
    }

    /// Connects every honest peer to random honest peers until it has `minPeers`, none above
    /// `maxPeers` (what the connection maintenance converges to). Flood attackers dial honest
    /// peers the same way; eclipse attackers start dialling when the measurement starts.
    func prewire() {
        let candidates = peers.filter { $0.role == .honest }.map(\.index)
        guard candidates.count > 1 else { return }
        for p in peers where p.role != .eclipser {
            var attempts = 0
            while p.connections.count < config.minPeers && attempts < 200 {
                attempts += 1
                let q = peers[Int(candidates[Int(rng.next() % UInt64(candidates.count))])]
                guard q.index != p.index, p.connections[q.index] == nil, q.connections.count < config.maxPeers else { continue }
                connectNow(p, q)
            }
        }
    }

    func pickDistinct(_ count: Int, from pool: [Int]) -> [Int] {
        var pool = pool
        let count = min(count, pool.count)
        for i in 0..<count {
            let j = i + Int(rng.next() % UInt64(pool.count - i))
            pool.swapAt(i, j)
        }
        return Array(pool.prefix(count))
    }

    /// Three bootstrap peers are up; the other N−3 join within 10 s, knowing only them.
    func joinStormStart() {
        let n = max(config.peers, 4)
        for _ in 0..<3 { addPeer(role: .honest) }
        bootstrap = [0, 1, 2]
        connectNow(peers[0], peers[1])
        connectNow(peers[0], peers[2])
        connectNow(peers[1], peers[2])
        for p in peers {
            p.caughtUpAt = 0
            startTimers(p, publishNow: true)
        }
        measureFrom = 0
        let joiners = n - 3
        for k in 0..<joiners {
            scenarioActions.append((UInt64(10_000_000) * UInt64(k + 1) / UInt64(joiners), .join))
        }
    }

    func perform(_ action: ScenarioAction) {
        switch action {
        case .join:
            joinOne()
        case .churnTick:
            let alive = peers.filter { $0.alive && !$0.leaving && $0.role == .honest && !bootstrap.contains($0.index) }
            scenarioLog.churnDebt += config.churnPerMinute * Double(config.peers) / 60
            while scenarioLog.churnDebt >= 1 && !alive.isEmpty {
                scenarioLog.churnDebt -= 1
                let victim = alive[Int(rng.next() % UInt64(alive.count))]
                guard victim.alive && !victim.leaving else { continue }
                if (scenarioLog.left + scenarioLog.crashed) % 2 == 0 { leave(victim) } else { crash(victim) }
                joinOne()
            }
        case .partition:
            partitioned = true
            scenarioLog.partitionAt = now
            // Cut connections time out on both sides after the keep-alive.
            for p in peers where p.alive {
                for q in p.sortedConnections where peers[Int(q)].side != p.side {
                    let id = p.connections[q]!.id
                    schedule(now + config.crashDetectionMs * 1000, .closed(peer: p.index, remote: q, conn: id), by: nil)
                }
            }
        case .heal:
            partitioned = false
            scenarioLog.healAt = now
        case .qosDecide(let epoch):
            decideQoS(epoch: epoch)
        }
    }

    func joinOne() {
        let p = addPeer(role: .honest)
        scenarioLog.joined += 1
        startTimers(p, publishNow: true)
    }

    /// Graceful leave: the signed tombstone is gossiped, connections close 300 ms later.
    func leave(_ p: SimPeer) {
        scenarioLog.left += 1
        publishOwn(p, status: .leaving)
        p.leaving = true
        p.diedAt = now + 300_000
        for q in p.sortedConnections { disconnect(p, from: q, noticeAfter: 300_000 + linkDelay(p, peers[Int(q)])) }
        p.alive = false
    }

    func crash(_ p: SimPeer) {
        scenarioLog.crashed += 1
        p.alive = false
        p.diedAt = now
        for q in p.sortedConnections {
            let id = p.connections[q]!.id
            schedule(now + config.crashDetectionMs * 1000, .closed(peer: q, remote: p.index, conn: id), by: nil)
        }
    }

    // MARK: - attackers

    /// flood-attack: each heartbeat an attacker publishes an invalid record (a real record with
    /// a corrupted signature, correctly signed at the pubsub layer) and spams GRAFT, IHAVE of
    /// IDs it never delivers, and IWANT.
    func floodAttack(_ p: SimPeer) {
        p.attackCounter += 1
        // A record from the attacker's own table (another peer's state may be changing on
        // another thread).
        let victim = peers[Int(p.attackCounter % UInt64(min(peers.count, 64)))].id
        let victimRecord = Self.read(&p.replica) { $0.table[victim] ?? $0.table[peers[0].id] }
        if var bytes = victimRecord?.encoded {
            bytes[bytes.count - 1 - Int(p.attackCounter % 60)] ^= 0x5A
            if let (_, actions) = try? p.router.publish(bytes, topic: RegistryGossip.topic, now: p.partition.nowMs) {
                execute(p, actions, accepted: [:])
            }
        }
        var bogus: [MessageID] = []
        for k in 0..<50 {
            var id = p.id.bytes
            withUnsafeBytes(of: (p.attackCounter << 16 | UInt64(k)).bigEndian) { id += $0 }
            bogus.append(MessageID(id))
        }
        var control = ControlMessage()
        control.graft = [RegistryGossip.topic]
        control.ihave = [(RegistryGossip.topic, bogus)]
        control.iwant = Array(bogus.prefix(20))
        for q in p.sortedConnections {
            var rpc = GossipRPC()
            rpc.control = control
            send(p, .gossip(to: q, rpc))
        }
    }

    /// eclipse-attempt: attackers keep dialling the victim.
    func eclipseDial(_ p: SimPeer) {
        guard p.partition.now >= measureFrom, let victim = scenarioLog.victim, p.connections[victim] == nil else { return }
        dial(p, victim)
    }

    func sampleVictim() {
        guard let v = scenarioLog.victim else { return }
        let victim = peers[Int(v)]
        let conns = victim.sortedConnections
        let mesh = victim.router.mesh[RegistryGossip.topic] ?? []
        let attackerConns = conns.filter { peers[Int($0)].role == .eclipser }.count
        let attackerMesh = mesh.filter { indexOf[$0].map { peers[Int($0)].role == .eclipser } ?? false }.count
        let honestOutbound = mesh.filter { peer in
            guard let i = indexOf[peer] else { return false }
            return peers[Int(i)].role == .honest && victim.connections[i]?.outbound == true
        }.count
        scenarioLog.victimSamples.append((now, attackerConns, conns.count, attackerMesh, mesh.count, honestOutbound))
    }

    // MARK: - agreement

    func sampleAgreement() {
        let cutoff = nowMs > Self.settleMs ? nowMs - Self.settleMs : 0
        var counts: [TableFingerprint: Int] = [:]
        var total = 0
        for p in peers where p.alive && p.role == .honest {
            // The settled table: undo this peer's merges of records newer than the cutoff.
            var settled = p.fingerprint
            var keep: [RecentMerge] = []
            for m in p.recent where m.wallMs > cutoff {
                settled.remove(m.added)
                if let r = m.removed { settled.add(r) }
                keep.append(m)
            }
            p.recent = keep
            counts[settled, default: 0] += 1
            total += 1
        }
        let majority = counts.values.max() ?? 0
        samples.append(AgreementSample(t: now, agreement: total == 0 ? 1 : Double(majority) / Double(total), peers: total))
        if config.scenario == .eclipseAttempt { sampleVictim() }
        if config.scenario == .joinStorm, fullTableAt == nil, let last = scenarioActions.last?.0, now >= last,
           peers.allSatisfy({ $0.fingerprint.count == peers.count }) {
            fullTableAt = now - last
        }
        if samples.count == 1 {
            for p in peers { p.baselineBytesOut = p.bytesOut; p.baselineBytesIn = p.bytesIn }
        }
    }
}
