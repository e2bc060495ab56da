// RTCP in and out: NACK → retransmission (RFC 4585 §6.2.1, RFC 4588), PLI/FIR relay (RFC 4585
// §6.3.1, RFC 5104 §4.3.1), REMB from subscribers as bandwidth estimates, SR from publishers for
// LSR/DLSR, and on `tick` the periodic reports: RR toward publishers (RFC 3550 §6.4.2, A.3, A.8),
// SR toward subscribers (§6.4.1) and REMB toward publishers (draft-alvestrand-rmcat-remb-03).
import RTC

extension Room {
    /// One compound RTCP datagram (SRTCP already removed) from `transport`.
    public mutating func receiveRTCP(from transport: TransportID, _ bytes: [UInt8], now: Int64,
                                     into outputs: inout [RoomOutput]) {
        counters.rtcpReceived += 1
        guard transports[transport] != nil else {
            counters.unknownTransport += 1
            return
        }
        let packets: [RTCPPacket]
        do {
            packets = try RTCPPacket.decodeCompound(bytes)
        } catch {
            counters.malformedRTCP += 1
            return
        }
        for packet in packets {
            switch packet {
            case .senderReport(let sr):
                if let route = transports[transport]!.routes[sr.ssrc], !route.isRTX {
                    producers[route.producer]?.layers[route.layer].statistics.recordSenderReport(ntp: sr.ntpTimestamp, at: now)
                }
            case .nack(let nack):
                handleNack(nack, from: transport, now: now, into: &outputs)
            case .pictureLossIndication(let pli):
                handleKeyframeRequest(forConsumerSSRC: pli.mediaSSRC, from: transport, now: now, into: &outputs)
            case .fullIntraRequest(let fir):
                for entry in fir.entries {
                    handleKeyframeRequest(forConsumerSSRC: entry.ssrc, from: transport, now: now, into: &outputs)
                }
            case .receiverEstimatedMaxBitrate(let remb):
                // The subscriber's estimate for everything it receives from us.
                if !transports[transport]!.consumers.isEmpty {
                    setEstimatedBandwidth(transport: transport, bitsPerSecond: Int(clamping: remb.bitrate), now: now, into: &outputs)
                }
            default:
                break  // RR, SDES, BYE, transport-cc, APP: nothing the core acts on yet
            }
        }
    }

    private mutating func handleKeyframeRequest(forConsumerSSRC ssrc: UInt32, from transport: TransportID, now: Int64,
                                                into outputs: inout [RoomOutput]) {
        guard let id = transports[transport]?.consumerBySSRC[ssrc], let c = consumers[id] else {
            counters.unknownSSRC += 1
            return
        }
        counters.keyframeRequestsFromConsumers += 1
        // A relay carries every layer: the request names the layer by its SSRC. Passed upstream
        // (to the publisher, or to the next pipe) at most once per second per producer layer.
        let layer = c.isRelay ? (producers[c.producer]?.layers.firstIndex { $0.ssrc == ssrc } ?? 0) : c.targetLayer
        requestKeyframe(c.producer, layer: layer, now: now, into: &outputs)
    }

    private mutating func handleNack(_ nack: RTCPNack, from transport: TransportID, now: Int64, into outputs: inout [RoomOutput]) {
        guard let id = transports[transport]?.consumerBySSRC[nack.mediaSSRC], let c = consumers[id],
              let p = producers[c.producer] else {
            counters.unknownSSRC += 1
            return
        }
        let maxAge = configuration.retransmissionMaxAgeMs
        if c.isRelay {
            // The far node lost these on the pipe: resend them as they were (same SSRC and
            // sequence number, so it stores and forwards them like the originals).
            guard let layer = p.layers.firstIndex(where: { $0.ssrc == nack.mediaSSRC }) else { return }
            for pair in nack.pairs {
                for bit in -1..<16 where bit < 0 || pair.lostBitmask & (1 << bit) != 0 {
                    let seq = pair.packetID &+ UInt16(bit + 1)
                    counters.nackedPackets += 1
                    guard let stored = p.layers[layer].buffer.packet(seq, now: now, maxAge: maxAge) else {
                        counters.nackUnknownOrTooOld += 1
                        continue
                    }
                    guard consumers[id]!.takeRetransmitToken(now: now, perSecond: configuration.maxRetransmissionsPerSecond) else {
                        counters.nackRateLimited += 1
                        continue
                    }
                    consumers[id]!.retransmitted += 1
                    counters.retransmitted += 1
                    outputs.append(.sendRTP(c.transport, PacketRewriter.copy(stored)))
                }
            }
            return
        }
        for pair in nack.pairs {
            for bit in -1..<16 where bit < 0 || pair.lostBitmask & (1 << bit) != 0 {
                let seq = pair.packetID &+ UInt16(bit + 1)
                counters.nackedPackets += 1
                guard let entry = consumers[id]!.history.lookup(seq, now: now), entry.age <= maxAge, p.layers.indices.contains(entry.layer),
                      let stored = p.layers[entry.layer].buffer.packet(entry.sourceSequence, now: now, maxAge: maxAge) else {
                    counters.nackUnknownOrTooOld += 1
                    continue
                }
                if let since = entry.sinceRetransmit, since < configuration.nackSameSequenceIntervalMs {
                    counters.nackRateLimited += 1
                    continue
                }
                guard consumers[id]!.takeRetransmitToken(now: now, perSecond: configuration.maxRetransmissionsPerSecond) else {
                    counters.nackRateLimited += 1
                    continue
                }
                consumers[id]!.history.markRetransmitted(seq, at: now)
                let view = RTPHeaderView(validated: stored)
                let d = c.description
                let out: [UInt8]
                if let rtxSSRC = d.rtxSSRC, let rtxPT = d.rtxPayloadType {
                    let rtxSeq = consumers[id]!.rtxSequence
                    consumers[id]!.rtxSequence &+= 1
                    out = PacketRewriter.rtx(stored, view: view, payloadType: rtxPT, sequenceNumber: rtxSeq,
                                             timestamp: entry.outgoingTimestamp, ssrc: rtxSSRC,
                                             originalSequenceNumber: seq, remap: c.remap)
                } else {
                    out = PacketRewriter.rewrite(stored, view: view, payloadType: d.payloadType, sequenceNumber: seq,
                                                 timestamp: entry.outgoingTimestamp, ssrc: d.ssrc, remap: c.remap)
                }
                consumers[id]!.retransmitted += 1
                counters.retransmitted += 1
                outputs.append(.sendRTP(c.transport, out))
            }
        }
    }

    /// Timers: layer re-selection (bitrates changed), keyframe retries for consumers still waiting,
    /// and every `reportIntervalMs` the RTCP reports plus eviction of expired buffered packets.
    public mutating func tick(now: Int64, into outputs: inout [RoomOutput]) {
        sendTransportWideFeedback(now: now, into: &outputs)
        for t in transportOrder {
            for id in transports[t]?.consumers ?? [] {
                updateTargetLayer(id, now: now, into: &outputs)
                guard let c = consumers[id], c.kind == .video, c.isWaitingForKeyframe,
                      let last = producers[c.producer]?.layers[c.targetLayer].lastKeyframeRequestAt else { continue }
                if last == .min || now - last >= configuration.keyframeRequestIntervalMs {
                    requestKeyframe(c.producer, layer: c.targetLayer, now: now, into: &outputs)
                }
            }
        }
        guard lastReportAt == .min || now - lastReportAt >= configuration.reportIntervalMs else { return }
        lastReportAt = now
        let cutoff = now - configuration.retransmissionMaxAgeMs
        for id in Array(producers.keys) {
            withProducerLayers(id) { layers in
                for i in layers.indices { layers[i].buffer.evict(olderThan: cutoff) }
            }
        }
        for t in transportOrder {
            let compound = makeReports(for: t, now: now)
            if !compound.isEmpty {
                outputs.append(.sendRTCP(t, RTCPPacket.encodeCompound(compound)))
                counters.rtcpSent += 1
            }
        }
    }

    private mutating func withProducerLayers(_ id: ProducerID, _ body: (inout [ProducerLayer]) -> Void) {
        guard producers[id] != nil else { return }
        body(&producers[id]!.layers)
    }

    /// SRs for what we send on `t`, then RRs (31 blocks each) for what we receive, then REMB.
    mutating func makeReports(for t: TransportID, now: Int64) -> [RTCPPacket] {
        guard let transport = transports[t] else { return [] }
        var out: [RTCPPacket] = []
        let ntp = Room.ntpTimestamp(unixMs: now)
        for id in transport.consumers {
            guard let c = consumers[id], c.hasSent else { continue }
            // RTP time of `now`: the newest sent timestamp advanced by the wall time since.
            let elapsed = UInt32(truncatingIfNeeded: max(0, now - c.lastSentAt) * Int64(c.clockRate) / 1000)
            out.append(.senderReport(RTCPSenderReport(ssrc: c.description.ssrc, ntpTimestamp: ntp,
                                                      rtpTimestamp: c.highestOutgoingTimestamp &+ elapsed,
                                                      packetCount: c.packetsSent, octetCount: c.octetsSent)))
        }
        var blocks: [RTCPReportBlock] = []
        var rembSSRCs: [UInt32] = []
        for pid in transport.producers {
            guard let p = producers[pid] else { continue }
            for i in p.layers.indices {
                guard let ssrc = p.layers[i].ssrc else { continue }
                if p.description.kind == .video { rembSSRCs.append(ssrc) }
                guard p.layers[i].statistics.started else { continue }
                blocks.append(producers[pid]!.layers[i].statistics.makeReportBlock(ssrc: ssrc, now: now))
            }
        }
        var start = 0
        while start < blocks.count {
            let end = min(start + 31, blocks.count)
            out.append(.receiverReport(RTCPReceiverReport(ssrc: configuration.rtcpSenderSSRC, reports: Array(blocks[start..<end]))))
            start = end
        }
        if !rembSSRCs.isEmpty, let bitrate = rembBitrate(for: transport, now: now) {
            out.append(.receiverEstimatedMaxBitrate(.init(senderSSRC: configuration.rtcpSenderSSRC, bitrate: UInt64(bitrate), ssrcs: rembSSRCs)))
        }
        return out
    }

    /// What a publisher should send: per video producer the minimum of its consumers' budgets
    /// (a single-layer stream must fit its weakest subscriber) — except simulcast producers,
    /// which use the maximum because each consumer already gets a layer that fits it, so the
    /// weakest subscriber must not starve the others of the top layer. Summed over producers and
    /// capped by `maxIncomingBitrate`. Nil when nobody has an estimate and there is no cap.
    func rembBitrate(for transport: TransportState, now: Int64) -> Int? {
        var total: Int?
        for pid in transport.producers {
            guard let p = producers[pid], p.description.kind == .video else { continue }
            var values: [Int] = []
            for cid in p.consumers {
                guard let c = consumers[cid], let ct = transports[c.transport], let b = bitrateBudget(for: c, transport: ct) else { continue }
                values.append(b)
            }
            guard let value = p.layers.count > 1 ? values.max() : values.min() else { continue }
            total = (total ?? 0) + value
        }
        switch (total, configuration.maxIncomingBitrate) {
        case (let t?, let cap?): return min(t, cap)
        case (let t?, nil): return t
        case (nil, let cap?): return cap
        case (nil, nil): return nil
        }
    }

    /// RFC 3550 §4: NTP time is seconds since 1900-01-01 with a 32-bit binary fraction.
    public static func ntpTimestamp(unixMs: Int64) -> UInt64 {
        let seconds = UInt64(max(0, unixMs / 1000 + 2_208_988_800))
        let fraction = UInt64(unixMs % 1000 < 0 ? 0 : unixMs % 1000) << 32 / 1000
        return seconds << 32 | fraction
    }
}
