// Session receipts (Specs/rewards.md "Data supplied"): the media node's side (admissions,
// the accumulator, signing and sending) and the orchestrator's (tokens issued, probe sightings,
// countersigning and publishing). Decisions are the pure `ReceiptAccumulator` and
// `CountersignPolicy`; this file gathers their inputs and carries out their results.
import HTTPAPI
import Identity
import Orchestrator
import RegistryGossip
import Rewards
import SFU

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a node remembers for receipts, as media node and as orchestrator.
struct ReceiptBook {
    struct Issued {
        var publish = 0
        var view = 0
        var lastMs: UInt64 = 0
    }
    struct Admission {
        var issuer: [UInt8]
        var tokens: Set<[UInt8]>
        var lastMs: UInt64
    }
    struct Outgoing {
        var receipt: SessionReceipt
        var attempts = 0
        var notBeforeMs: UInt64 = 0
    }

    // Orchestrator side, per (room, node).
    var issued: [Orchestration.RoomNode: Issued] = [:]
    var sightings: [Orchestration.RoomNode: [RoomSighting]] = [:]
    var countersigned: [Orchestration.RoomNode: SignedSessionReceipt] = [:]
    // Media node side, per room.
    var admissions: [String: Admission] = [:]
    var accumulator: ReceiptAccumulator
    var outbox: [Outgoing] = []
    /// The role an orchestrator's placement gave the node in a room (learned from a clamped
    /// proposal), so the room's next parts state it and need no second round.
    var roles: [String: SessionReceipt.Role] = [:]

    /// Forgets what no receipt can still need: older than `keepMs`.
    mutating func prune(olderThan oldest: UInt64) {
        issued = issued.filter { $0.value.lastMs >= oldest }
        for (key, list) in sightings {
            let kept = list.filter { $0.atMs >= oldest }
            sightings[key] = kept.isEmpty ? nil : kept
        }
        countersigned = countersigned.filter { $0.value.receipt.endMs >= oldest }
    }
}

extension Orchestration {
    static let maxReceiptAttempts = 8

    /// n_p and n_c of a room as a status shows it: local publishers plus incoming pipes, local
    /// viewers plus outgoing pipes (Specs/rewards.md: an edge pipe is one viewer of its feeder).
    static func receiptCounts(_ s: RoomStatus) -> RoomSighting {
        let pipesIn = Double(s.pipes.filter { $0.connected && $0.tracksIn > 0 }.count)
        let pipesOut = Double(s.pipes.filter { $0.connected && $0.tracksOut > 0 }.count)
        return RoomSighting(atMs: 0, publishers: Double(s.publishers) + pipesIn, viewers: Double(s.viewers) + pipesOut,
                            pipesIn: pipesIn, pipesOut: pipesOut)
    }

    /// How long evidence is kept: three epochs and the token validity (a part is at most one
    /// epoch long and is countersigned right after it).
    var receiptEvidenceMs: UInt64 { 3 * UInt64(node.config.qosSchedule.epochSeconds) * 1000 + MediaToken.defaultValidityMs }

    // MARK: orchestrator side

    /// A token this peer issued (`commit`).
    func noteIssued(room: String, node id: PeerID, role: ClientRole, atMs now: UInt64) {
        receipts.withLock { book in
            var i = book.issued[RoomNode(room: room, node: id)] ?? ReceiptBook.Issued()
            if role == .publish { i.publish += 1 } else { i.view += 1 }
            i.lastMs = now
            book.issued[RoomNode(room: room, node: id)] = i
        }
    }

    /// A status probe's view of the rooms owned here on node `id`.
    func noteSightings(_ rooms: [RoomStatus], node id: PeerID, atMs at: UInt64) {
        let owned = state.withLock { s in Set(rooms.map(\.room).filter { s.owned[$0]?.node(id) != nil }) }
        let oldest = at > receiptEvidenceMs ? at - receiptEvidenceMs : 0
        receipts.withLock { book in
            for status in rooms where owned.contains(status.room) {
                var sighting = Self.receiptCounts(status)
                sighting.atMs = at
                book.sightings[RoomNode(room: status.room, node: id), default: []].append(sighting)
            }
            book.prune(olderThan: oldest)
        }
    }

    func countersign(_ request: ReceiptRequestJSON, caller: RPCCaller) async throws -> ReceiptAnswerJSON {
        guard let bytes = Base64.decode(request.receipt) else {
            throw APIError(.badRequest, code: "invalid_receipt", "receipt: expected base64 of a SignedSessionReceipt protobuf (Specs/rewards.proto)", parameter: "receipt")
        }
        let signed: SignedSessionReceipt
        do { signed = try SignedSessionReceipt.verify(encoded: bytes, countersigned: false) } catch {
            throw APIError(.badRequest, code: "invalid_receipt", "receipt: \(error)", parameter: "receipt")
        }
        guard !signed.isCountersigned else {
            throw APIError(.badRequest, code: "invalid_receipt", "receipt: send it with the node's signature only; this peer adds its own", parameter: "receipt")
        }
        let r = signed.receipt
        guard r.nodeID == caller.peerID else {
            throw APIError(.forbidden, code: "not_receipt_node", "only the receipt's node (\(r.nodeID)) may submit it")
        }
        let key = RoomNode(room: r.room, node: caller.peerID)
        let role: SessionReceipt.Role? = state.withLock { s in
            (s.owned[r.room] ?? s.replicas[r.room])?.node(caller.peerID).flatMap { SessionReceipt.Role(rawValue: $0.role.rawValue) }
        }
        let now = self.now
        let epochSeconds = node.config.qosSchedule.epochSeconds
        // Decided and recorded under one lock, so two calls cannot both claim the same time.
        enum Verdict { case done(SignedSessionReceipt), clamped(SessionReceipt, String), refused(String, String) }
        let verdict = receipts.withLock { book -> Verdict in
            if let done = book.countersigned[key], done.body == signed.body { return .done(done) }  // an answer lost on the way
            let issued = book.issued[key] ?? ReceiptBook.Issued()
            let evidence = ReceiptEvidence(publishTokens: issued.publish, viewTokens: issued.view, role: role,
                                           sightings: book.sightings[key] ?? [], countersignedUntilMs: book.countersigned[key]?.receipt.endMs ?? 0)
            switch CountersignPolicy.decide(r, me: node.identity.publicKeyBytes, epochSeconds: epochSeconds, evidence: evidence, nowMs: now) {
            case .countersign:
                let done = signed.countersigned(by: node.identity)
                book.countersigned[key] = done
                return .done(done)
            case .clamp(let backed, let why):
                return .clamped(backed, why)
            case .refuse(let code, let message):
                return .refused(code, message)
            }
        }
        switch verdict {
        case .done(let done):
            node.metrics.counter("drtc_receipts_countersigned_total", "result", "countersigned").increment()
            try await node.receipts.merge([done])
            node.gossip.publish(done.encoded, topic: ReceiptGossip.topic)
            logger.info("receipt countersigned", metadata: [
                "node": "\(r.nodeID)", "room": "\(r.room)", "epoch": "\(r.epoch)", "publishers": "\(r.publishers)", "viewers": "\(r.viewers)",
                "minutes": "\(r.minutes)"])
            return ReceiptAnswerJSON(status: "countersigned", receipt: Base64.encode(done.encoded))
        case .clamped(let backed, let why):
            node.metrics.counter("drtc_receipts_countersigned_total", "result", "clamped").increment()
            logger.info("receipt clamped to what this peer saw", metadata: ["node": "\(r.nodeID)", "room": "\(r.room)", "why": "\(why)"])
            return ReceiptAnswerJSON(status: "clamped", proposal: Base64.encode(backed.body), reason: why)
        case .refused(let code, let message):
            node.metrics.counter("drtc_receipts_countersigned_total", "result", "refused_\(code)").increment()
            logger.info("receipt refused", metadata: ["node": "\(r.nodeID)", "room": "\(r.room)", "code": "\(code)", "why": "\(message)"])
            throw APIError(.unprocessableContent, code: code, message)
        }
    }

    // MARK: media node side

    /// A client admitted with a token of `issuer` (`admit`).
    func noteAdmission(room: String, issuer: String, token: String) {
        guard let id = try? PeerID(issuer), let key = id.inlinedPublicKey?.data, key.count == 32 else { return }
        let hash = SHA256.hash(Array(token.utf8))
        let now = self.now
        receipts.withLock { book in
            if var a = book.admissions[room], a.issuer == key {
                a.tokens.insert(hash)
                a.lastMs = now
                book.admissions[room] = a
            } else {
                book.admissions[room] = ReceiptBook.Admission(issuer: key, tokens: [hash], lastMs: now)
            }
        }
    }

    /// Once a second: feeds the accumulator the rooms served now and sends the receipts of
    /// the parts it closed (and those waiting for a retry). `closing`: the node is shutting
    /// down; every open part ends now.
    func tickReceipts(closing: Bool = false) async {
        let statuses = await media.roomStatus(nil)
        let now = self.now
        let closed = receipts.withLock { book -> [SessionReceipt] in
            let served = Set(statuses.map(\.room))
            // An admission precedes its session by a moment; one without a room for a minute is over.
            book.admissions = book.admissions.filter { served.contains($0.key) || $0.value.lastMs + 60_000 > now }
            book.roles = book.roles.filter { book.admissions[$0.key] != nil }
            let samples = closing ? [] : statuses.compactMap { s -> RoomSample? in
                guard let a = book.admissions[s.room] else { return nil }
                let c = Self.receiptCounts(s)
                // A node that dialled a pipe has a parent in the cascade; the orchestrator's
                // placement corrects the guess (origin or member) when it countersigns.
                let role: SessionReceipt.Role = book.roles[s.room] ?? (s.pipes.contains(where: \.dialled) ? .edge : .origin)
                return RoomSample(room: s.room, orchestrator: a.issuer, role: role, publishers: c.publishers, viewers: c.viewers, tokenHashes: a.tokens)
            }
            let closed = book.accumulator.observe(samples, atMs: now)
            book.outbox += closed.map { ReceiptBook.Outgoing(receipt: $0) }
            return closed
        }
        if !closed.isEmpty { node.metrics.counter("drtc_receipts_signed_total", "kind", "part").increment(by: closed.count) }
        let due = receipts.withLock { book -> [ReceiptBook.Outgoing] in
            let due = book.outbox.filter { $0.notBeforeMs <= now }
            book.outbox.removeAll { $0.notBeforeMs <= now }
            return due
        }
        guard !due.isEmpty else { return }
        // Sent beside the orchestration loop, so an unreachable orchestrator (3-s timeouts)
        // never delays probes and repairs; at shutdown, waited for.
        let sending = Task { for item in due { await self.send(item) } }
        if closing { await sending.value }
    }

    private func send(_ item: ReceiptBook.Outgoing) async {
        var receipt = item.receipt
        let orchestrator = receipt.orchestratorID
        func retry(_ why: String) {
            var again = item
            again.attempts += 1
            guard again.attempts < Self.maxReceiptAttempts else {
                node.metrics.counter("drtc_receipts_sent_total", "result", "gave_up").increment()
                logger.warning("gave up sending a session receipt", metadata: ["orchestrator": "\(orchestrator)", "room": "\(receipt.room)", "error": "\(why)"])
                return
            }
            again.notBeforeMs = now + (1_000 << UInt64(again.attempts))
            receipts.withLock { $0.outbox.append(again) }
        }
        guard let rec = record(orchestrator) else { return retry("the orchestrator has no live record") }
        // At most one clamped proposal: the node signs it when it only narrows its own claim.
        for _ in 0..<2 {
            let signed = SignedSessionReceipt.sign(receipt, key: node.identity)
            let response: RPCResponse
            do {
                let body = try APIJSON.encode(ReceiptRequestJSON(receipt: Base64.encode(signed.encoded)))
                response = try await rpc.call(orchestrator, baseURL: rec.record.url, method: .POST, path: "/rpc/v1/receipts", body: body, timeout: .seconds(3))
            } catch {
                return retry("\(error)")
            }
            guard response.ok else {
                if response.status >= 500 || response.status == 401 { return retry("\(response.status) \(response.errorCode ?? "")") }
                node.metrics.counter("drtc_receipts_sent_total", "result", "refused").increment()
                logger.info("session receipt refused by its orchestrator", metadata: [
                    "orchestrator": "\(orchestrator)", "room": "\(receipt.room)", "status": "\(response.status)", "code": "\(response.errorCode ?? "")"])
                return
            }
            guard let answer = try? JSONDecoder().decode(ReceiptAnswerJSON.self, from: Data(response.body)) else { return retry("unreadable answer") }
            if answer.status == "countersigned", let bytes = answer.receipt.flatMap(Base64.decode),
               let done = try? SignedSessionReceipt.verify(encoded: bytes), done.body == signed.body {
                node.metrics.counter("drtc_receipts_sent_total", "result", "countersigned").increment()
                do { try await node.receipts.merge([done]) } catch {
                    logger.warning("could not store a countersigned receipt", metadata: ["error": "\(error)"])
                }
                return
            }
            if answer.status == "clamped", let body = answer.proposal.flatMap(Base64.decode), let proposed = try? SessionReceipt(body: body),
               CountersignPolicy.isNarrowing(proposed, of: receipt) {
                logger.info("session receipt clamped by its orchestrator", metadata: ["room": "\(receipt.room)", "why": "\(answer.reason ?? "")"])
                receipts.withLock { $0.roles[proposed.room] = proposed.role }
                receipt = proposed
                continue
            }
            break
        }
        node.metrics.counter("drtc_receipts_sent_total", "result", "bad_answer").increment()
        logger.warning("the orchestrator answered a session receipt with something this node cannot sign or verify", metadata: ["orchestrator": "\(orchestrator)"])
    }
}
