import Identity

/// What the application says about a message (libp2p/specs pubsub "Message Validation").
public enum ValidationResult: Sendable, Equatable {
    /// Deliver and forward.
    case accept
    /// Invalid: not forwarded, and the sender's P4 score drops. The reason is a metrics label.
    case reject(String)
    /// Not forwarded, no penalty (e.g. a stale but genuine record).
    case ignore(String)
}

/// What the router asks its shell to do.
public enum GossipAction: Sendable, Equatable {
    /// Write this RPC on the peer's gossip stream.
    case send(PeerID, GossipRPC)
    /// A new, valid message for the application.
    case deliver(GossipMessage, id: MessageID, from: PeerID)
    /// Peer exchange: candidates learned from a PRUNE of a well-scored peer.
    case discovered([PeerID])
}

/// Cumulative counters, read by the shell for `/metrics`.
public struct GossipCounters: Sendable, Equatable {
    public var rpcsIn = 0
    public var rpcsOut = 0
    public var messagesIn = 0
    public var messagesOut = 0
    public var messagesDelivered = 0
    public var messagesPublished = 0
    public var duplicates = 0
    /// Rejected or ignored messages and RPCs, by reason.
    public var rejected: [String: Int] = [:]
    public var ignored: [String: Int] = [:]
    public var graftsIn = 0
    public var prunesIn = 0
    public var ihaveIn = 0
    public var iwantIn = 0
    public var idontwantIn = 0
    public var brokenPromises = 0
    /// Forwards dropped at transmission time because the peer had sent IDONTWANT or the
    /// message itself in the meantime.
    public var suppressed = 0
    public init() {}
}

/// The Gossipsub v1.0/v1.1/v1.2 router as a pure state machine (STYLE.md §1). The shell
/// feeds it peers, decoded RPCs, publish commands and heartbeats, each with the current time,
/// and carries out the returned actions. It never touches a socket, a clock or a task.
///
/// Implements libp2p/specs pubsub/gossipsub: mesh maintenance (D, D_lo, D_hi, D_score,
/// D_out), fanout with TTL, message cache and IHAVE/IWANT gossip with caps, GRAFT/PRUNE with
/// backoff and peer exchange, flood publishing, opportunistic grafting, peer scoring P1–P7
/// with thresholds, IDONTWANT, and StrictSign.
public struct GossipRouter {
    public typealias Validator = (GossipMessage, _ from: PeerID) -> ValidationResult
    /// The StrictSign check (production: `StrictSign.verify`). The simulator injects a memoised
    /// one: thousands of routers in one process verify the same signed bytes
    /// (Specs/simulation.md "Signatures").
    public typealias SignatureCheck = (GossipMessage) -> StrictSign.Failure?

    struct Peer {
        var protocolID: GossipProtocol
        var outbound: Bool
        var topics: Set<String> = []
        /// IDs the peer asked us not to send (v1.2), with their expiry.
        var dontWant: [MessageID: Millis] = [:]
        /// When expired `dontWant` entries are next swept (once per IDONTWANT TTL: lookups
        /// check the expiry anyway, and rebuilding the table every heartbeat was measurable).
        var dontWantSweepAt: Millis = 0
        /// IHAVE messages and IDs received during the current heartbeat.
        var ihaves = 0
        var iasked = 0
        /// The round-trip time the shell measured to the peer (ms), if any.
        var roundTripMs: Millis?
        /// Per topic, the heartbeat at which the peer was last sent IHAVE: the next IHAVE
        /// carries only the windows shifted in since (Specs/gossip.md "Gossip").
        var ihaveTicks: [(topic: String, tick: Int)] = []

        /// Heartbeats since the peer was last sent IHAVE on `topic` (nil: never), noting
        /// `tick` as the new last.
        mutating func noteIHave(_ topic: String, tick: Int) -> Int? {
            for i in ihaveTicks.indices where ihaveTicks[i].topic == topic {
                let since = tick - ihaveTicks[i].tick
                ihaveTicks[i].tick = tick
                return since
            }
            ihaveTicks.append((topic, tick))
            return nil
        }
    }

    // The state every frame reads comes first, so that it shares the fewest cache lines (a
    // simulator holds 10,000 routers, and a frame's router is rarely still in cache).
    var peers: [PeerID: Peer] = [:]
    /// Message IDs seen, when, and who delivered them (duplicate accounting, P3).
    private var seen: SeenCache
    public private(set) var subscriptions: Set<String> = []
    public private(set) var mesh: [String: Set<PeerID>] = [:]
    var scoring: PeerScoring
    public private(set) var counters = GossipCounters()
    /// RPCs being assembled for the current call, in the order their peers were first
    /// addressed (`flush` returns them so). A short list kept between calls with its capacity:
    /// a table rebuilt for every call was an allocation per frame.
    private var outbox: [(peer: PeerID, rpc: GossipRPC)] = []
    /// Validated messages waiting out their hold: (due, message, id, targets), by due time.
    private var pendingForwards: [(due: Millis, message: GossipMessage, id: MessageID, targets: [PeerID])] = []
    /// IWANT promises: message ID → peer → deadline.
    private var promises: [MessageID: [PeerID: Millis]] = [:]
    private var mcache: MessageCache
    /// The median of the peers' measured round-trip times: the hold for a peer not measured yet.
    private var medianRoundTripMs: Millis?
    public private(set) var parameters: GossipParameters
    public let localPeer: PeerID
    public let thresholds: ScoreThresholds
    private let signer: Ed25519KeyPair?
    private let checkSignature: SignatureCheck
    private var rng: SplitMix64
    public private(set) var fanout: [String: Set<PeerID>] = [:]
    private var fanoutLastPublish: [String: Millis] = [:]
    /// (topic, peer) → time before which we must not GRAFT the peer.
    private var backoff: [String: [PeerID: Millis]] = [:]
    private var seqno: UInt64
    private var heartbeatTicks = 0

    /// - Parameters:
    ///   - signer: the local key, for StrictSign publishing (nil: this router cannot publish).
    ///   - seed: seeds the router's random choices (mesh selection, gossip targets).
    ///   - seqnoStart: first sequence number; production passes the wall-clock nanoseconds so
    ///     that a restarted node never reuses a message ID.
    public init(localPeer: PeerID, signer: Ed25519KeyPair?, parameters: GossipParameters = GossipParameters(),
                score: ScoreParameters = ScoreParameters(), thresholds: ScoreThresholds = ScoreThresholds(),
                seed: UInt64, seqnoStart: UInt64 = 1, checkSignature: SignatureCheck? = nil) {
        self.localPeer = localPeer
        self.signer = signer
        self.checkSignature = checkSignature ?? { StrictSign.verify($0) }
        self.parameters = parameters
        self.thresholds = thresholds
        self.rng = SplitMix64(seed: seed)
        self.mcache = MessageCache(historyLength: parameters.historyLength, historyGossip: parameters.historyGossip)
        self.seen = SeenCache(ttl: parameters.seenTTLMs)
        self.scoring = PeerScoring(parameters: score)
        self.seqno = seqnoStart
    }

    // MARK: - queries

    public var connectedPeers: [PeerID] { Array(peers.keys) }
    public func protocolOf(_ peer: PeerID) -> GossipProtocol? { peers[peer]?.protocolID }
    public func topics(of peer: PeerID) -> Set<String> { peers[peer]?.topics ?? [] }
    public func score(of peer: PeerID, now: Millis) -> Double { scoring.score(peer, now: now) }
    public func isGraylisted(_ peer: PeerID, now: Millis) -> Bool { scoring.score(peer, now: now) < thresholds.graylist }
    public func backoffExpiry(topic: String, peer: PeerID) -> Millis? { backoff[topic]?[peer] }
    public var seenCount: Int { seen.count }
    public func hasSeen(_ id: MessageID) -> Bool { seen.contains(id) }
    public func cachedMessage(_ id: MessageID) -> GossipMessage? { mcache.message(id) }

    /// Adds to a peer's behaviour penalty (P7), for misbehaviour seen by the shell (e.g.
    /// broken framing on its stream).
    public mutating func penalise(_ peer: PeerID, _ amount: Double) { scoring.addPenalty(peer, amount) }

    /// Sets P5 (application-specific score) for a peer.
    public mutating func setApplicationScore(_ peer: PeerID, _ value: Double) { scoring.setAppSpecific(peer, value) }

    // MARK: - peers

    /// A gossip stream to `peer` is up. We announce our subscriptions to it.
    public mutating func addPeer(_ peer: PeerID, protocol proto: GossipProtocol, outbound: Bool, ip: String? = nil, now: Millis) -> [GossipAction] {
        guard peer != localPeer else { return [] }
        // The peer's stream and ours may arrive in either order: the first one registers it.
        guard peers[peer] == nil else { return [] }
        peers[peer] = Peer(protocolID: proto, outbound: outbound)
        scoring.connected(peer, ip: ip)
        if !subscriptions.isEmpty {
            let options = subscriptions.sorted().map { SubscriptionOption(subscribe: true, topic: $0) }
            enqueue(peer) { $0.subscriptions += options }
        }
        return flush()
    }

    public mutating func removePeer(_ peer: PeerID, now: Millis) {
        guard let removed = peers.removeValue(forKey: peer) else { return }
        if removed.roundTripMs != nil { updateMedianRoundTrip() }
        for topic in Array(mesh.keys) { mesh[topic]?.remove(peer) }
        for topic in Array(fanout.keys) { fanout[topic]?.remove(peer) }
        scoring.disconnected(peer, now: now)
        outbox.removeAll { $0.peer == peer }
    }

    // MARK: - link round-trip times

    /// The round-trip time the shell measured to `peer` (production: Yamux pings; the
    /// simulator: its link model), nil when unknown. It sets how long forwards to the peer are
    /// held (`forwardHold`).
    public mutating func setRoundTripTime(_ peer: PeerID, ms: Millis?) {
        guard peers[peer] != nil, peers[peer]!.roundTripMs != ms else { return }
        peers[peer]!.roundTripMs = ms
        updateMedianRoundTrip()
    }

    public func roundTripTime(of peer: PeerID) -> Millis? { peers[peer]?.roundTripMs }

    private mutating func updateMedianRoundTrip() {
        let known = peers.values.compactMap(\.roundTripMs).sorted()
        medianRoundTripMs = known.isEmpty ? nil : known[known.count / 2]
    }

    /// How long a validated message is held before it is forwarded to `peer`
    /// (Specs/gossip.md "Duplicates"): about one one-way latency of the link, so that the
    /// IDONTWANT the peer sends when it gets the message from someone else arrives first.
    /// A peer not measured yet gets the median of the measured ones.
    public func forwardHold(to peer: PeerID) -> Millis {
        Self.forwardHold(roundTripMs: peers[peer]?.roundTripMs ?? medianRoundTripMs, parameters: parameters)
    }

    /// The rule: `forwardDelayRTTFactor` × the round-trip time rounded up to a multiple of
    /// `holdStepMs` (so that one message has few distinct holds, hence few timers), within
    /// [`forwardDelayMs`, `maxForwardDelayMs`]; `forwardDelayMs` when the factor is 0 or the
    /// time unknown.
    public static func forwardHold(roundTripMs: Millis?, parameters p: GossipParameters) -> Millis {
        guard p.forwardDelayRTTFactor > 0, let rtt = roundTripMs else { return p.forwardDelayMs }
        let scaled = Millis((Double(rtt) * p.forwardDelayRTTFactor).rounded(.up))
        let stepped = (scaled + holdStepMs - 1) / holdStepMs * holdStepMs
        return min(max(p.forwardDelayMs, stepped), max(p.forwardDelayMs, p.maxForwardDelayMs))
    }

    public static let holdStepMs: Millis = 5

    // MARK: - subscriptions

    public mutating func subscribe(_ topic: String, now: Millis) -> [GossipAction] {
        guard subscriptions.insert(topic).inserted else { return [] }
        for peer in sortedPeers() { enqueue(peer) { $0.subscriptions.append(SubscriptionOption(subscribe: true, topic: topic)) } }
        // Join (gossipsub-v1.0 "JOIN"): start from fanout peers, fill up to D.
        var members = fanout.removeValue(forKey: topic) ?? []
        fanoutLastPublish[topic] = nil
        members = members.filter { scoring.score($0, now: now) >= 0 }
        if members.count < parameters.d {
            members.formUnion(pick(parameters.d - members.count, from: graftCandidates(topic, excluding: members, now: now)))
        }
        mesh[topic] = []
        for peer in members.sorted() { graft(peer, topic: topic, now: now) }
        return flush()
    }

    public mutating func unsubscribe(_ topic: String, now: Millis) -> [GossipAction] {
        guard subscriptions.remove(topic) != nil else { return [] }
        for peer in sortedPeers() { enqueue(peer) { $0.subscriptions.append(SubscriptionOption(subscribe: false, topic: topic)) } }
        for peer in (mesh.removeValue(forKey: topic) ?? []).sorted() {
            prune(peer, topic: topic, now: now, px: false, backoffMs: parameters.unsubscribeBackoffMs)
        }
        return flush()
    }

    // MARK: - publishing

    /// Signs and sends a message from this node. Returns its ID.
    public mutating func publish(_ data: [UInt8], topic: String, now: Millis) throws -> (MessageID, [GossipAction]) {
        guard let signer else { throw GossipWireError(.badPeerID, "this router has no signing key") }
        guard data.count <= parameters.limits.maxRPCSize - 512 else {
            throw GossipWireError(.oversize, "message of \(data.count) bytes exceeds the \(parameters.limits.maxRPCSize)-byte RPC limit")
        }
        seqno &+= 1
        let message = StrictSign.sign(data: data, topic: topic, seqno: seqno, key: signer)
        let id = StrictSign.messageID(message)
        seen.insert(id, now: now)
        mcache.put(id, message, topic: topic)
        counters.messagesPublished += 1
        var targets: Set<PeerID>
        if parameters.floodPublish {
            targets = Set(peers.filter { $0.value.topics.contains(topic) && scoring.score($0.key, now: now) >= thresholds.publish }.keys)
        } else if let members = mesh[topic] {
            targets = members
        } else {
            if fanout[topic] == nil {
                fanout[topic] = Set(pick(parameters.d, from: peersIn(topic).filter { scoring.score($0, now: now) >= thresholds.publish }))
            }
            targets = fanout[topic] ?? []
        }
        if !subscriptions.contains(topic) { fanoutLastPublish[topic] = now }
        for peer in targets.sorted() { sendMessage(message, to: peer) }
        return (id, flush())
    }

    // MARK: - incoming RPCs

    /// Decodes and handles one RPC frame. Undecodable frames count against the sender.
    public mutating func handle(frame: [UInt8], from peer: PeerID, now: Millis, validate: Validator) -> [GossipAction] {
        // `peers[peer] != nil` would copy the entry out (retaining its tables) on every frame.
        guard peers.index(forKey: peer) != nil else { return [] }
        do {
            let rpc = try GossipRPC(decoding: frame, limits: parameters.limits)
            return handle(knownPeer: peer, rpc, now: now, validate: validate)
        } catch let error as GossipWireError {
            counters.rejected["rpc_" + error.code.rawValue, default: 0] += 1
            scoring.addPenalty(peer, 1)
            return []
        } catch {
            return []
        }
    }

    public mutating func handle(_ rpc: GossipRPC, from peer: PeerID, now: Millis, validate: Validator) -> [GossipAction] {
        guard peers.index(forKey: peer) != nil else { return [] }
        return handle(knownPeer: peer, rpc, now: now, validate: validate)
    }

    /// `handle(_:from:now:validate:)` for a peer already checked to be connected (a frame's
    /// peer was checked before decoding: probing the table again cost a cache miss per frame).
    private mutating func handle(knownPeer peer: PeerID, _ rpc: GossipRPC, now: Millis, validate: Validator) -> [GossipAction] {
        counters.rpcsIn += 1
        let score = scoring.score(peer, now: now)
        if score < thresholds.graylist {
            counters.ignored["graylisted", default: 0] += 1
            return []
        }
        for option in rpc.subscriptions where !option.topic.isEmpty {
            if option.subscribe {
                peers[peer]?.topics.insert(option.topic)
            } else {
                peers[peer]?.topics.remove(option.topic)
                if mesh[option.topic]?.remove(peer) != nil { scoring.prune(peer, topic: option.topic) }
                fanout[option.topic]?.remove(peer)
            }
        }
        for message in rpc.publish { handleMessage(message, from: peer, now: now, validate: validate) }
        if !rpc.control.isEmpty { handleControl(rpc.control, from: peer, score: score, now: now) }
        return flush()
    }

    private mutating func handleMessage(_ message: GossipMessage, from peer: PeerID, now: Millis, validate: Validator) {
        counters.messagesIn += 1
        guard let topic = message.topic, !topic.isEmpty else {
            reject("missing_topic", peer: peer, topic: nil)
            return
        }
        guard subscriptions.contains(topic) else {
            counters.ignored["unsubscribed_topic", default: 0] += 1
            return
        }
        let id = StrictSign.messageID(message)
        if case .duplicate(let first, let newDeliverer) = seen.noteCopy(id, from: peer) {
            counters.duplicates += 1
            promises[id] = nil
            if newDeliverer { scoring.nearFirstDelivery(peer, topic: topic, delayMs: now &- first) }
            return
        }
        // StrictSign before anything is remembered: a forged message must not poison the seen
        // cache with the real author's ID.
        if let failure = checkSignature(message) {
            reject(failure.rawValue, peer: peer, topic: topic)
            return
        }
        seen.insert(id, now: now, from: peer)
        promises[id] = nil
        if message.from == localPeer.bytes {
            counters.ignored["own_message", default: 0] += 1
            return
        }
        // v1.2: tell the rest of the mesh we have it, before the (possibly slow) validation.
        let members = (mesh[topic] ?? []).sorted()
        // Not to its author (it has the message), nor to a peer whose own IDONTWANT came
        // first when ours would reach it after its forward to us is due (`tooLateToRefuse`).
        if message.data.count >= parameters.idontwantMessageThreshold {
            let params = parameters
            for other in members where other != peer && other.bytes != message.from
                && withPeer(other, { $0.protocolID.supportsIDontWant && !Self.tooLateToRefuse(id, to: $0, now: now, params) }) == true {
                enqueue(other) { $0.control.idontwant.append(id) }
            }
        }
        switch validate(message, peer) {
        case .accept:
            break
        case .reject(let reason):
            reject(reason, peer: peer, topic: topic)
            return
        case .ignore(let reason):
            counters.ignored[reason, default: 0] += 1
            return
        }
        scoring.firstDelivery(peer, topic: topic)
        mcache.put(id, message, topic: topic)
        counters.messagesDelivered += 1
        actions.append(.deliver(message, id: id, from: peer))
        // Not back to its author (a PeerID is its bytes: comparing them spares parsing `from`).
        let targets = members.filter { $0 != peer && $0.bytes != message.from }
        // Grouped by hold, shortest first (peers keep their sorted order within a group).
        var holds: [(hold: Millis, targets: [PeerID])] = []
        for target in targets {
            // As `forwardHold(to:)`: a peer not measured yet gets the median.
            let measured = withPeer(target, { $0.roundTripMs }) ?? nil
            let hold = Self.forwardHold(roundTripMs: measured ?? medianRoundTripMs, parameters: parameters)
            if let i = holds.firstIndex(where: { $0.hold == hold }) { holds[i].targets.append(target) } else { holds.append((hold, [target])) }
        }
        for group in holds.sorted(by: { $0.hold < $1.hold }) {
            if group.hold == 0 {
                forward(message, id: id, to: group.targets, now: now)
            } else {
                holdForward(message, id: id, targets: group.targets, due: now &+ group.hold)
            }
        }
    }

    /// Queues a held-back forward, keeping the queue ordered by due time (equal times in
    /// arrival order).
    private mutating func holdForward(_ message: GossipMessage, id: MessageID, targets: [PeerID], due: Millis) {
        var index = pendingForwards.count
        while index > 0 && pendingForwards[index - 1].due > due { index -= 1 }
        pendingForwards.insert((due, message, id, targets), at: index)
    }

    private mutating func forward(_ message: GossipMessage, id: MessageID, to targets: [PeerID], now: Millis) {
        for target in targets {
            if withPeer(target, { Self.refused(id, by: $0, now: now) }) == true {
                counters.suppressed += 1
                continue
            }
            if seen.delivered(id, by: target) {
                counters.suppressed += 1
                continue
            }
            if scoring.score(target, now: now) < thresholds.graylist { continue }
            sendMessage(message, to: target)
        }
    }

    /// Whether the peer sent IDONTWANT for `id` and it has not expired.
    @inline(__always)
    private static func refused(_ id: MessageID, by p: Peer, now: Millis) -> Bool {
        if let expiry = p.dontWant[id], expiry > now { return true }
        return false
    }

    /// Whether our IDONTWANT for `id` would reach the peer `p` only after its own forward of
    /// the message to us is due: `p` said IDONTWANT for it, so it received the message at
    /// least one one-way latency before we did; its forward waits about its hold (taken to be
    /// ours for the link), and ours takes another one-way latency. When the hold is below the
    /// round trip (a WAN link: 0.8 × RTT) ours always arrives too late. When it is not (the
    /// 5-ms floor on loopback, where event-loop delays dwarf the RTT), ours is still sent.
    /// The link is checked first: it needs no probe of the peer's IDONTWANT table.
    private static func tooLateToRefuse(_ id: MessageID, to p: Peer, now: Millis, _ parameters: GossipParameters) -> Bool {
        guard let rtt = p.roundTripMs, forwardHold(roundTripMs: rtt, parameters: parameters) < rtt else { return false }
        return refused(id, by: p, now: now)
    }

    /// When the next held-back forward is due (nil: none). The shell calls `flushForwards` then.
    public var nextForwardDue: Millis? {
        // Through the buffer: reading `pendingForwards[0].due` copied the whole entry out.
        pendingForwards.withUnsafeBufferPointer { $0.isEmpty ? nil : $0[0].due }
    }

    /// Sends the forwards whose delay has passed, skipping peers that meanwhile sent IDONTWANT
    /// or the message itself.
    public mutating func flushForwards(now: Millis) -> [GossipAction] {
        // Taken out while sending (`forward` never touches it), so that the entries are read
        // in place: copying one out retained the message's six buffers and the target list.
        var pending: [(due: Millis, message: GossipMessage, id: MessageID, targets: [PeerID])] = []
        swap(&pending, &pendingForwards)
        var index = 0
        while index < pending.count, pending[index].due <= now {
            forward(pending[index].message, id: pending[index].id, to: pending[index].targets, now: now)
            index += 1
        }
        pending.removeFirst(index)
        swap(&pending, &pendingForwards)
        return flush()
    }

    private mutating func reject(_ reason: String, peer: PeerID, topic: String?) {
        counters.rejected[reason, default: 0] += 1
        if let topic { scoring.invalidMessage(peer, topic: topic) } else { scoring.addPenalty(peer, 1) }
    }

    /// `score` is the sender's score when its RPC arrived (control is judged by it).
    private mutating func handleControl(_ control: ControlMessage, from peer: PeerID, score: Double, now: Millis) {
        // IHAVE (v1.1: ignored below the gossip threshold, capped per heartbeat).
        if !control.ihave.isEmpty {
            counters.ihaveIn += control.ihave.count
            let counts = withPeer(peer) { p in
                p.ihaves += 1
                return (ihaves: p.ihaves, iasked: p.iasked)
            }
            if score >= thresholds.gossip, let (ihaves, iasked) = counts, ihaves <= parameters.maxIHaveMessages, iasked < parameters.maxIHaveLength {
                var wanted: [MessageID] = []
                var seenHere = Set<MessageID>()
                for entry in control.ihave where subscriptions.contains(entry.topic) {
                    for id in entry.ids where !seen.contains(id) && seenHere.insert(id).inserted { wanted.append(id) }
                }
                let budget = parameters.maxIHaveLength - iasked
                if wanted.count > budget {
                    wanted.shuffle(using: &rng)
                    wanted.removeLast(wanted.count - budget)
                }
                if !wanted.isEmpty {
                    peers[peer]?.iasked += wanted.count
                    enqueue(peer) { $0.control.iwant += wanted }
                    // Track one promise per IWANT, like go-libp2p: enough to catch a peer that
                    // advertises what it never delivers.
                    let tracked = wanted[Int(rng.next() % UInt64(wanted.count))]
                    promises[tracked, default: [:]][peer] = now &+ parameters.iwantFollowupMs
                }
            } else if score >= thresholds.gossip {
                counters.ignored["ihave_flood", default: 0] += 1
            }
        }
        // IWANT
        if !control.iwant.isEmpty {
            counters.iwantIn += control.iwant.count
            if score >= thresholds.gossip {
                var seenHere = Set<MessageID>()
                for id in control.iwant where seenHere.insert(id).inserted {
                    if let message = mcache.messageForIWant(id, peer: peer, limit: parameters.gossipRetransmission) {
                        sendMessage(message, to: peer)
                    } else if mcache.message(id) != nil {
                        counters.ignored["iwant_retransmission_limit", default: 0] += 1
                    }
                }
            }
        }
        // GRAFT
        var prunes: [PruneInfo] = []
        for topic in control.graft {
            counters.graftsIn += 1
            guard subscriptions.contains(topic) else {
                // Unknown topic: PRUNE without PX, so our peers are not leaked.
                prunes.append(PruneInfo(topic: topic, peers: [], backoffSeconds: parameters.pruneBackoffMs / 1000))
                continue
            }
            if mesh[topic]?.contains(peer) == true { continue }
            if let until = backoff[topic]?[peer], until > now {
                // GRAFT during backoff: a protocol violation (v1.1 §"Prune Backoff").
                scoring.addPenalty(peer, 1)
                let pruneTime = until &- parameters.pruneBackoffMs
                if now &- pruneTime < parameters.graftFloodThresholdMs { scoring.addPenalty(peer, 1) }
                counters.rejected["graft_backoff", default: 0] += 1
                addBackoff(peer, topic: topic, ms: parameters.pruneBackoffMs, now: now)
                prunes.append(PruneInfo(topic: topic, peers: [], backoffSeconds: parameters.pruneBackoffMs / 1000))
                continue
            }
            if score < 0 {
                addBackoff(peer, topic: topic, ms: parameters.pruneBackoffMs, now: now)
                prunes.append(PruneInfo(topic: topic, peers: [], backoffSeconds: parameters.pruneBackoffMs / 1000))
                continue
            }
            if (mesh[topic]?.count ?? 0) >= parameters.dHigh && !isOutbound(peer) {
                addBackoff(peer, topic: topic, ms: parameters.pruneBackoffMs, now: now)
                prunes.append(pruneMessage(for: peer, topic: topic, backoffMs: parameters.pruneBackoffMs, now: now))
                continue
            }
            mesh[topic, default: []].insert(peer)
            scoring.graft(peer, topic: topic, now: now)
        }
        if !prunes.isEmpty { enqueue(peer) { $0.control.prune += prunes } }
        // PRUNE
        for prune in control.prune {
            counters.prunesIn += 1
            if mesh[prune.topic]?.remove(peer) != nil { scoring.prune(peer, topic: prune.topic) }
            let ms = prune.backoffSeconds.map { min($0, 3_600) * 1000 } ?? parameters.pruneBackoffMs
            addBackoff(peer, topic: prune.topic, ms: ms, now: now)
            if !prune.peers.isEmpty && score >= thresholds.acceptPX {
                let candidates = prune.peers.filter { $0 != localPeer && peers[$0] == nil }.prefix(parameters.prunePeers)
                if !candidates.isEmpty { actions.append(.discovered(Array(candidates))) }
            }
        }
        // IDONTWANT (v1.2)
        if !control.idontwant.isEmpty {
            // In place: copying the entry out would copy its dontWant table on every frame. One
            // probe of the peer table for the protocol check and the edit.
            let expiry = now &+ parameters.idontwantTTLMs, cap = parameters.maxIDontWantPerPeer
            let supported = withPeer(peer) { p -> Bool in
                guard p.protocolID.supportsIDontWant else { return false }
                for id in control.idontwant {
                    guard p.dontWant.count < cap else { break }
                    p.dontWant[id] = expiry
                }
                return true
            }
            if supported == true { counters.idontwantIn += control.idontwant.count }
        }
    }

    /// Called by the shell just before it writes `rpc` to `peer` (the RPC may have waited in a
    /// send queue): drops messages the peer has meanwhile said it does not want (v1.2
    /// IDONTWANT), or has sent us itself. Returns false when nothing is left to send.
    public mutating func filterOutgoing(_ rpc: inout GossipRPC, to peer: PeerID, now: Millis) -> Bool {
        guard !rpc.publish.isEmpty, let dontWant = withPeer(peer, { $0.dontWant }) else { return !rpc.isEmpty }
        let before = rpc.publish.count
        rpc.publish.removeAll { message in
            let id = StrictSign.messageID(message)
            if let expiry = dontWant[id], expiry > now { return true }
            return seen.delivered(id, by: peer)
        }
        counters.suppressed += before - rpc.publish.count
        return !rpc.isEmpty
    }

    // MARK: - heartbeat

    /// Mesh maintenance, gossip emission, cache shifting, score decay. Call every
    /// `parameters.heartbeatIntervalMs`.
    public mutating func heartbeat(now: Millis) -> [GossipAction] {
        heartbeatTicks += 1
        scoring.refresh(now: now)
        let sweepEvery = parameters.idontwantTTLMs
        // In place, by index (no array of keys, no probe per peer).
        var i = peers.startIndex
        while i != peers.endIndex {
            Self.resetHeartbeat(&peers.values[i], now: now, sweepEvery: sweepEvery)
            peers.formIndex(after: &i)
        }
        // Broken IWANT promises (P7).
        for (id, waiting) in promises {
            var remaining = waiting
            for (peer, deadline) in waiting where deadline <= now {
                scoring.addPenalty(peer, 1)
                counters.brokenPromises += 1
                remaining[peer] = nil
            }
            promises[id] = remaining.isEmpty ? nil : remaining
        }
        for topic in mesh.keys.sorted() { maintainMesh(topic, now: now) }
        for topic in fanout.keys.sorted() {
            if let last = fanoutLastPublish[topic], last &+ parameters.fanoutTTLMs < now {
                fanout[topic] = nil
                fanoutLastPublish[topic] = nil
                continue
            }
            var members = fanout[topic]!.filter { peers[$0]?.topics.contains(topic) == true && scoring.score($0, now: now) >= thresholds.publish }
            if members.count < parameters.d {
                let candidates = peersIn(topic).filter { !members.contains($0) && scoring.score($0, now: now) >= thresholds.publish }
                members.formUnion(pick(parameters.d - members.count, from: candidates))
            }
            fanout[topic] = members
            emitGossip(topic, exclude: members, now: now)
        }
        mcache.shift()
        seen.expire(now: now)
        for topic in Array(backoff.keys) {
            backoff[topic] = backoff[topic]!.filter { $0.value &+ parameters.pruneBackoffSlackMs > now }
            if backoff[topic]!.isEmpty { backoff[topic] = nil }
        }
        return flush()
    }

    private static func resetHeartbeat(_ p: inout Peer, now: Millis, sweepEvery: Millis) {
        p.ihaves = 0
        p.iasked = 0
        if !p.dontWant.isEmpty && now >= p.dontWantSweepAt {
            // In place, keeping the capacity: a filtered copy was regrown every few frames. By
            // index, so that only the expired IDs are copied out.
            var expired: [MessageID] = []
            var j = p.dontWant.startIndex
            while j != p.dontWant.endIndex {
                if p.dontWant.values[j] <= now { expired.append(p.dontWant.keys[j]) }
                p.dontWant.formIndex(after: &j)
            }
            for id in expired { p.dontWant.removeValue(forKey: id) }
            p.dontWantSweepAt = now &+ sweepEvery
        }
    }

    private mutating func maintainMesh(_ topic: String, now: Millis) {
        var members = mesh[topic] ?? []
        // Peers with a negative score leave the mesh.
        for peer in members.sorted() where scoring.score(peer, now: now) < 0 {
            members.remove(peer)
            prune(peer, topic: topic, now: now, px: false)
        }
        if members.count < parameters.dLow {
            let candidates = graftCandidates(topic, excluding: members, now: now)
            for peer in pick(parameters.d - members.count, from: candidates) {
                members.insert(peer)
                graft(peer, topic: topic, now: now)
            }
        }
        if members.count > parameters.dHigh {
            // Keep the D_score best, fill up to D at random, then honour the outbound quota.
            var ranked = members.sorted().shuffled(using: &rng)
            ranked.sort { scoring.score($0, now: now) > scoring.score($1, now: now) }
            var keep = Array(ranked.prefix(parameters.dScore))
            var rest = Array(ranked.dropFirst(parameters.dScore))
            rest.shuffle(using: &rng)
            keep += rest.prefix(parameters.d - keep.count)
            var outboundKept = keep.filter { isOutbound($0) }.count
            if outboundKept < parameters.dOut {
                for peer in rest.dropFirst(parameters.d - min(parameters.d, keep.count)) where isOutbound(peer) && !keep.contains(peer) {
                    guard outboundKept < parameters.dOut else { break }
                    if let victim = keep.lastIndex(where: { !isOutbound($0) }) { keep.remove(at: victim) }
                    keep.append(peer)
                    outboundKept += 1
                }
            }
            let keepSet = Set(keep)
            for peer in members.sorted() where !keepSet.contains(peer) {
                prune(peer, topic: topic, now: now, px: true)
            }
            members = keepSet
        }
        if members.count >= parameters.dLow {
            // Outbound quota (v1.1): an attacker that only connects inbound cannot own our mesh.
            let outbound = members.filter { isOutbound($0) }.count
            if outbound < parameters.dOut {
                let candidates = graftCandidates(topic, excluding: members, now: now).filter { isOutbound($0) }
                for peer in pick(parameters.dOut - outbound, from: candidates) {
                    members.insert(peer)
                    graft(peer, topic: topic, now: now)
                }
            }
        }
        if heartbeatTicks % parameters.opportunisticGraftTicks == 0 && members.count > 1 {
            let scores = members.map { scoring.score($0, now: now) }.sorted()
            let median = scores[scores.count / 2]
            if median < thresholds.opportunisticGraft {
                let candidates = graftCandidates(topic, excluding: members, now: now).filter { scoring.score($0, now: now) > median }
                for peer in pick(parameters.opportunisticGraftPeers, from: candidates) {
                    members.insert(peer)
                    graft(peer, topic: topic, now: now)
                }
            }
        }
        mesh[topic] = members
        emitGossip(topic, exclude: members, now: now)
    }

    /// IHAVE to `dLazy` (or `gossipFactor` of the) peers outside the mesh. A peer gossiped
    /// `k` heartbeats ago is sent only the newest `k` windows: it was told of the older ones
    /// then, and would have asked for what it lacked.
    private mutating func emitGossip(_ topic: String, exclude: Set<PeerID>, now: Millis) {
        let windows = mcache.gossipWindows
        // byAge[k - 1]: the IDs of the newest k windows, newest first.
        let byAge = mcache.gossipIDsByWindow(topic: topic)
        guard !(byAge.last?.isEmpty ?? true) else { return }
        let candidates = peersIn(topic).filter { !exclude.contains($0) && scoring.score($0, now: now) >= thresholds.gossip }
        let count = max(parameters.dLazy, Int(parameters.gossipFactor * Double(candidates.count)))
        let tick = heartbeatTicks
        for peer in pick(count, from: candidates) {
            let since = withPeer(peer, { $0.noteIHave(topic, tick: tick) }) ?? nil
            let k = min(windows, max(1, since ?? windows))
            var ids = byAge[k - 1]
            if ids.isEmpty { continue }
            if ids.count > parameters.maxIHaveLength {
                // Truncated: the peer is owed the rest, so its next IHAVE covers every window.
                ids.shuffle(using: &rng)
                ids.removeLast(ids.count - parameters.maxIHaveLength)
                withPeer(peer) { $0.ihaveTicks.removeAll { $0.topic == topic } }
            }
            enqueue(peer) { $0.control.ihave.append((topic, ids)) }
        }
    }

    // MARK: - helpers

    var actions: [GossipAction] = []

    /// Reads or edits a peer's entry in place (nil: not connected). `peers[id]?.field` copies
    /// the whole entry out first — retaining and releasing its tables — and the router does
    /// that for every target of every message.
    @inline(__always) @discardableResult
    private mutating func withPeer<R>(_ id: PeerID, _ body: (inout Peer) -> R) -> R? {
        guard let i = peers.index(forKey: id) else { return nil }
        return body(&peers.values[i])
    }

    private mutating func graft(_ peer: PeerID, topic: String, now: Millis) {
        mesh[topic, default: []].insert(peer)
        scoring.graft(peer, topic: topic, now: now)
        enqueue(peer) { $0.control.graft.append(topic) }
    }

    private mutating func prune(_ peer: PeerID, topic: String, now: Millis, px: Bool, backoffMs: Millis? = nil) {
        let backoffMs = backoffMs ?? parameters.pruneBackoffMs
        mesh[topic]?.remove(peer)
        scoring.prune(peer, topic: topic)
        addBackoff(peer, topic: topic, ms: backoffMs, now: now)
        let info = px ? pruneMessage(for: peer, topic: topic, backoffMs: backoffMs, now: now)
            : PruneInfo(topic: topic, peers: [], backoffSeconds: backoffMs / 1000)
        enqueue(peer) { $0.control.prune.append(info) }
    }

    private mutating func pruneMessage(for peer: PeerID, topic: String, backoffMs: Millis, now: Millis) -> PruneInfo {
        var info = PruneInfo(topic: topic, peers: [], backoffSeconds: backoffMs / 1000)
        if peers[peer]?.protocolID.supportsPeerExchange == true {
            let candidates = peersIn(topic).filter { $0 != peer && scoring.score($0, now: now) >= 0 }
            info.peers = pick(parameters.prunePeers, from: candidates)
        }
        return info
    }

    private mutating func addBackoff(_ peer: PeerID, topic: String, ms: Millis, now: Millis) {
        let until = now &+ ms
        if let current = backoff[topic]?[peer], current >= until { return }
        backoff[topic, default: [:]][peer] = until
    }

    private func peersIn(_ topic: String) -> [PeerID] {
        // Read in place: `peers.filter` built a second table, copying every entry (and
        // retaining its tables), several times per heartbeat.
        var out: [PeerID] = []
        var i = peers.startIndex
        while i != peers.endIndex {
            if peers.values[i].topics.contains(topic) { out.append(peers.keys[i]) }
            peers.formIndex(after: &i)
        }
        return out.sorted()
    }

    private func graftCandidates(_ topic: String, excluding members: Set<PeerID>, now: Millis) -> [PeerID] {
        peersIn(topic).filter { peer in
            !members.contains(peer) && (backoff[topic]?[peer]).map { $0 <= now } ?? true && scoring.score(peer, now: now) >= 0
        }
    }

    private func sortedPeers() -> [PeerID] { peers.keys.sorted() }

    /// Whether `peer` is connected on a connection we dialled. Read in place: `peers[peer]?.outbound`
    /// copied the entry out, and the heartbeat asks it for every mesh member.
    private func isOutbound(_ peer: PeerID) -> Bool {
        guard let i = peers.index(forKey: peer) else { return false }
        return peers.values[i].outbound
    }

    /// Up to `count` distinct elements of `from`, chosen uniformly with the router's RNG.
    private mutating func pick(_ count: Int, from candidates: [PeerID]) -> [PeerID] {
        guard count > 0 else { return [] }
        if candidates.count <= count { return candidates }
        var pool = candidates
        for i in 0..<count {
            let j = i + Int(rng.next() % UInt64(pool.count - i))
            pool.swapAt(i, j)
        }
        return Array(pool.prefix(count))
    }

    private mutating func sendMessage(_ message: GossipMessage, to peer: PeerID) {
        counters.messagesOut += 1
        enqueue(peer) { $0.publish.append(message) }
    }

    private mutating func enqueue(_ peer: PeerID, _ edit: (inout GossipRPC) -> Void) {
        // `peers[peer] != nil` copied the entry out (its topic set and IDONTWANT table).
        guard peers.index(forKey: peer) != nil else { return }
        // `PeerID` equality compares a hash word first; a call addresses a few peers.
        if let i = outbox.firstIndex(where: { $0.peer == peer }) {
            edit(&outbox[i].rpc)
        } else {
            var rpc = GossipRPC()
            edit(&rpc)
            outbox.append((peer, rpc))
        }
    }

    private mutating func flush() -> [GossipAction] {
        var out = actions
        actions = []
        guard !outbox.isEmpty else { return out }
        // Moved out in order, keeping the list's capacity for the next call.
        outbox.reverse()
        while let entry = outbox.popLast() {
            if !entry.rpc.isEmpty {
                counters.rpcsOut += 1
                out.append(.send(entry.peer, entry.rpc))
            }
        }
        return out
    }
}
