// The room (mediasoup's Router): every producer and consumer of one conference, as one value-type
// state machine (STYLE.md §1). Each input takes `now` (milliseconds since the Unix epoch, which SR
// NTP timestamps are derived from) and appends what the shell must do to `outputs`, an array the
// shell owns and reuses so that forwarding does not allocate per packet beyond one copy per consumer.
//
// Why a struct and not a class: it is `Sendable` by construction, the simulator can copy or
// snapshot a room, and tests compare states. It is owned by one event loop in production; all
// mutation goes through `inout` accessors on its dictionaries, so no copy-on-write copies happen
// on the hot path (see `ingest`/`forward`, which mutate in place).
import RTC

struct TransportState: Sendable {
    struct Route: Sendable {
        var producer: ProducerID
        var layer: Int
        var isRTX: Bool
    }

    var producers: [ProducerID] = []
    var consumers: [ConsumerID] = []
    /// Incoming SSRC → producer layer.
    var routes: [UInt32: Route] = [:]
    /// Outgoing SSRC (media and RTX) → consumer, for RTCP feedback from the subscriber.
    var consumerBySSRC: [UInt32: ConsumerID] = [:]
    /// From REMB or `setEstimatedBandwidth(transport:)`: shared by the transport's video consumers.
    var estimatedBitrate: Int?
    /// Set when the publisher negotiated transport-cc.
    var transportWide: TransportWideFeedbackState?
    /// A node-to-node pipe (Specs/media.md "Pipes"): its producers are mirrors of another node's,
    /// its consumers relays that forward every layer verbatim, and losses on it are NACKed upstream.
    var isPipe = false
}

/// Per-consumer figures for metrics and tests.
public struct ConsumerStats: Hashable, Sendable {
    public var currentLayer: Int?
    public var targetLayer: Int
    public var packetsSent: UInt32
    public var octetsSent: UInt32
    public var retransmitted: Int
    /// The bandwidth this consumer's layer choice is capped by, if any.
    public var bitrateBudget: Int?
}

/// Heap use for the memory target (≤ 200 KiB per consumer, buffer share included).
public struct MemoryFootprint: Hashable, Sendable {
    /// Producers' retransmission rings and the packets they hold.
    public var retransmissionBufferBytes: Int
    /// Producer states (their dictionary slots), layer arrays and bitrate meters.
    public var producerStateBytes: Int
    /// Consumer states (their dictionary slots), sent-packet histories and extension remap tables.
    public var consumerStateBytes: Int
    /// Transport states: SSRC routing tables and ID lists.
    public var transportStateBytes: Int
    public var consumers: Int

    public var totalBytes: Int { retransmissionBufferBytes + producerStateBytes + consumerStateBytes + transportStateBytes }
    /// Everything divided equally among the consumers (each (subscriber, track) pair is one).
    public var bytesPerConsumer: Int { consumers == 0 ? 0 : totalBytes / consumers }
}

public struct Room: Sendable {
    public let configuration: RoomConfiguration
    public internal(set) var counters = RoomCounters()

    var transports: [TransportID: TransportState] = [:]
    /// Insertion order, so reports and events come out deterministically (hash seeds are random).
    var transportOrder: [TransportID] = []
    var producers: [ProducerID: ProducerState] = [:]
    var consumers: [ConsumerID: ConsumerState] = [:]
    private var nextProducer: UInt32 = 1
    private var nextConsumer: UInt32 = 1
    var lastReportAt: Int64 = .min

    public init(configuration: RoomConfiguration = RoomConfiguration()) {
        self.configuration = configuration
    }

    // MARK: topology

    /// Registers a participant's transport (idempotent).
    public mutating func addTransport(_ id: TransportID) {
        guard transports[id] == nil else { return }
        transports[id] = TransportState()
        transportOrder.append(id)
    }

    /// Registers a node-to-node pipe's transport (idempotent).
    public mutating func addPipeTransport(_ id: TransportID) {
        addTransport(id)
        transports[id]!.isPipe = true
    }

    /// Removes a transport with its producers (and their consumers everywhere) and its consumers.
    public mutating func removeTransport(_ id: TransportID, into outputs: inout [RoomOutput]) {
        guard let t = transports[id] else { return }
        for p in t.producers { removeProducer(p, into: &outputs) }
        for c in t.consumers { removeConsumer(c, into: &outputs) }
        transports[id] = nil
        transportOrder.removeAll { $0 == id }
    }

    /// Adds an incoming track on `transport`.
    public mutating func addProducer(on transport: TransportID, _ description: ProducerDescription,
                                     into outputs: inout [RoomOutput]) throws(SFUError) -> ProducerID {
        guard let t = transports[transport] else {
            throw SFUError(.unknownTransport, "addProducer: \(transport) was never added")
        }
        guard !description.layers.isEmpty, description.layers.count <= 8 else {
            throw SFUError(.invalidDescription, "a producer needs 1…8 layers, got \(description.layers.count)")
        }
        let ssrcs = description.layers.flatMap { [$0.ssrc, $0.rtxSSRC].compactMap { $0 } }
        if let clash = ssrcs.first(where: { t.routes[$0] != nil }) ?? (Set(ssrcs).count == ssrcs.count ? nil : ssrcs.first) {
            throw SFUError(.invalidDescription, "SSRC \(clash) is already used on \(transport)")
        }
        if description.layers.contains(where: { $0.ssrc == nil }), description.ridExtensionID == nil {
            throw SFUError(.invalidDescription, "layers without an SSRC need the rtp-stream-id extension to be identified")
        }
        let id = ProducerID(nextProducer)
        nextProducer += 1
        let video = description.kind == .video
        let capacity = video ? configuration.videoRetransmissionPackets : configuration.audioRetransmissionPackets
        let maxBytes = video ? configuration.videoRetransmissionBytes : .max
        let layers = description.layers.map {
            ProducerLayer(rid: $0.rid, ssrc: $0.ssrc, rtxSSRC: $0.rtxSSRC,
                          buffer: RetransmissionBuffer(capacity: capacity, maxBytes: maxBytes))
        }
        producers[id] = ProducerState(id: id, transport: transport, description: description, layers: layers)
        transports[transport]!.producers.append(id)
        for (i, layer) in description.layers.enumerated() {
            if let s = layer.ssrc { transports[transport]!.routes[s] = .init(producer: id, layer: i, isRTX: false) }
            if let r = layer.rtxSSRC { transports[transport]!.routes[r] = .init(producer: id, layer: i, isRTX: true) }
        }
        outputs.append(.event(.producerAdded(id, transport, description.kind)))
        return id
    }

    /// Removes a producer and all its consumers.
    public mutating func removeProducer(_ id: ProducerID, into outputs: inout [RoomOutput]) {
        guard let p = producers[id] else { return }
        for c in p.consumers { removeConsumer(c, into: &outputs) }
        transports[p.transport]?.producers.removeAll { $0 == id }
        if let routes = transports[p.transport]?.routes.filter({ $0.value.producer != id }) {
            transports[p.transport]?.routes = routes
        }
        producers[id] = nil
        outputs.append(.event(.producerRemoved(id)))
    }

    /// Starts sending `producer` to the subscriber on `transport`. Video waits for a keyframe,
    /// which is requested at once.
    public mutating func addConsumer(on transport: TransportID, of producer: ProducerID, _ description: ConsumerDescription,
                                     now: Int64, into outputs: inout [RoomOutput]) throws(SFUError) -> ConsumerID {
        guard let t = transports[transport] else {
            throw SFUError(.unknownTransport, "addConsumer: \(transport) was never added")
        }
        guard let p = producers[producer] else {
            throw SFUError(.unknownProducer, "addConsumer: \(producer) does not exist (removed?)")
        }
        for s in [description.ssrc, description.rtxSSRC].compactMap({ $0 }) where t.consumerBySSRC[s] != nil || t.routes[s] != nil {
            throw SFUError(.invalidDescription, "outgoing SSRC \(s) is already used on \(transport)")
        }
        let id = ConsumerID(nextConsumer)
        nextConsumer += 1
        let top = p.layers.count - 1
        let preferred = min(max(description.preferredLayer ?? top, 0), top)
        var c = ConsumerState(id: id, transport: transport, producer: producer, description: description,
                              remap: ExtensionRemap(description.extensionIDs), kind: p.description.kind,
                              clockRate: p.description.clockRate, preferredLayer: preferred, targetLayer: preferred,
                              rtxSequence: description.initialSequenceNumber &+ 0x8000,
                              history: SentPacketHistory(capacity: p.layers[0].buffer.capacity),
                              retransmitTokens: Double(configuration.maxRetransmissionsPerSecond))
        c.targetLayer = selectLayer(for: c, transport: t, producer: p, now: now)
        consumers[id] = c
        producers[producer]!.consumers.append(id)
        transports[transport]!.consumers.append(id)
        transports[transport]!.consumerBySSRC[description.ssrc] = id
        if let r = description.rtxSSRC { transports[transport]!.consumerBySSRC[r] = id }
        if p.description.kind == .video { requestKeyframe(producer, layer: c.targetLayer, now: now, into: &outputs) }
        return id
    }

    public mutating func removeConsumer(_ id: ConsumerID, into outputs: inout [RoomOutput]) {
        guard let c = consumers[id] else { return }
        producers[c.producer]?.consumers.removeAll { $0 == id }
        transports[c.transport]?.consumers.removeAll { $0 == id }
        if c.isRelay {
            if let routes = transports[c.transport]?.consumerBySSRC.filter({ $0.value != id }) {
                transports[c.transport]?.consumerBySSRC = routes
            }
        } else {
            transports[c.transport]?.consumerBySSRC[c.description.ssrc] = nil
            if let r = c.description.rtxSSRC { transports[c.transport]?.consumerBySSRC[r] = nil }
        }
        consumers[id] = nil
        outputs.append(.event(.consumerRemoved(id)))
    }

    /// Relays `producer` over the pipe `transport`: every layer, verbatim (SSRC, sequence number,
    /// timestamp, payload type and extensions kept), so the far node mirrors the producer with its
    /// SSRCs and picks layers per viewer itself (Jitsi's relays). No layer selection, no bandwidth
    /// estimate, no keyframe wait: the far node's viewers ask for keyframes, and PLI/NACK for the
    /// producer's SSRCs arriving on the pipe are answered here.
    public mutating func addRelayConsumer(on transport: TransportID, of producer: ProducerID) throws(SFUError) -> ConsumerID {
        guard let t = transports[transport], t.isPipe else {
            throw SFUError(.unknownTransport, "addRelayConsumer: \(transport) is not a pipe")
        }
        guard let p = producers[producer] else {
            throw SFUError(.unknownProducer, "addRelayConsumer: \(producer) does not exist (removed?)")
        }
        guard p.transport != transport else {
            throw SFUError(.invalidDescription, "\(producer) came in over \(transport): relaying it back would loop")
        }
        let ssrcs = p.layers.compactMap(\.ssrc)
        if let clash = ssrcs.first(where: { t.consumerBySSRC[$0] != nil || t.routes[$0] != nil }) {
            throw SFUError(.invalidDescription, "SSRC \(clash) is already used on \(transport)")
        }
        let id = ConsumerID(nextConsumer)
        nextConsumer += 1
        let d = ConsumerDescription(ssrc: ssrcs.first ?? 0, payloadType: p.description.payloadType, followsBandwidthEstimate: false)
        var c = ConsumerState(id: id, transport: transport, producer: producer, description: d, remap: ExtensionRemap(nil),
                              kind: p.description.kind, clockRate: p.description.clockRate, preferredLayer: 0, targetLayer: 0,
                              rtxSequence: 0, history: SentPacketHistory(capacity: 1),
                              retransmitTokens: Double(configuration.maxRetransmissionsPerSecond))
        c.isRelay = true
        consumers[id] = c
        producers[producer]!.consumers.append(id)
        transports[transport]!.consumers.append(id)
        for s in ssrcs { transports[transport]!.consumerBySSRC[s] = id }
        return id
    }

    /// Tells the room a layer's SSRC learned elsewhere (a mirrored producer whose origin learned
    /// it from the first packet carrying the layer's rid). No effect when the layer has one.
    public mutating func bindLayer(_ producer: ProducerID, layer: Int, ssrc: UInt32, into outputs: inout [RoomOutput]) {
        guard let p = producers[producer], p.layers.indices.contains(layer), p.layers[layer].ssrc == nil,
              transports[p.transport]?.routes[ssrc] == nil else { return }
        producers[producer]!.layers[layer].ssrc = ssrc
        transports[p.transport]!.routes[ssrc] = .init(producer: producer, layer: layer, isRTX: false)
        registerRelaySSRC(producer, ssrc: ssrc)
        outputs.append(.event(.layerBound(producer, layer: layer, ssrc: ssrc)))
    }

    /// Relay consumers answer feedback for every layer SSRC, including ones bound late.
    mutating func registerRelaySSRC(_ producer: ProducerID, ssrc: UInt32) {
        for cid in producers[producer]?.consumers ?? [] {
            guard let c = consumers[cid], c.isRelay, transports[c.transport]?.routes[ssrc] == nil else { continue }
            transports[c.transport]!.consumerBySSRC[ssrc] = cid
        }
    }

    /// The producers of the room with the transport each came in on (for pipe announcements).
    public var producerTransports: [(ProducerID, TransportID)] {
        producers.values.sorted { $0.id.rawValue < $1.id.rawValue }.map { ($0.id, $0.transport) }
    }

    /// A producer's description with the layer SSRCs known now.
    public func currentDescription(_ id: ProducerID) -> ProducerDescription? {
        guard let p = producers[id] else { return nil }
        var d = p.description
        for i in d.layers.indices { d.layers[i].ssrc = p.layers[i].ssrc }
        return d
    }

    // MARK: layer control

    /// The subscriber's preferred simulcast layer, by rid (nil: the highest).
    public mutating func setPreferredLayer(_ consumer: ConsumerID, rid: String?, now: Int64,
                                           into outputs: inout [RoomOutput]) throws(SFUError) {
        guard let c = consumers[consumer], let p = producers[c.producer] else {
            throw SFUError(.unknownConsumer, "setPreferredLayer: \(consumer) does not exist")
        }
        let index: Int
        if let rid {
            guard let i = p.layers.firstIndex(where: { $0.rid == rid }) else {
                throw SFUError(.unknownLayer, "\(c.producer) has no layer rid=\(rid); it has \(p.layers.compactMap(\.rid))")
            }
            index = i
        } else {
            index = p.layers.count - 1
        }
        consumers[consumer]!.preferredLayer = index
        updateTargetLayer(consumer, now: now, into: &outputs)
    }

    /// Caps one consumer's layer by an estimate of the bandwidth toward its subscriber (nil: none).
    public mutating func setEstimatedBandwidth(consumer: ConsumerID, bitsPerSecond: Int?, now: Int64,
                                               into outputs: inout [RoomOutput]) {
        guard consumers[consumer] != nil else { return }
        consumers[consumer]!.estimatedBitrate = bitsPerSecond
        updateTargetLayer(consumer, now: now, into: &outputs)
    }

    /// Bandwidth toward a whole subscriber transport, split evenly among its video consumers.
    public mutating func setEstimatedBandwidth(transport: TransportID, bitsPerSecond: Int?, now: Int64,
                                               into outputs: inout [RoomOutput]) {
        guard transports[transport] != nil else { return }
        transports[transport]!.estimatedBitrate = bitsPerSecond
        for c in transports[transport]!.consumers { updateTargetLayer(c, now: now, into: &outputs) }
    }

    func bitrateBudget(for c: ConsumerState, transport t: TransportState) -> Int? {
        guard c.description.followsBandwidthEstimate else { return nil }
        var budget = c.estimatedBitrate
        if let total = t.estimatedBitrate, c.kind == .video {
            let videoConsumers = max(1, t.consumers.lazy.filter { self.consumers[$0]?.kind == .video }.count)
            budget = min(budget ?? .max, total / videoConsumers)
        }
        return budget
    }

    /// Preferred layer capped by the budget: the highest active layer at or below the preference
    /// whose measured bitrate fits; else the lowest active layer (the core never pauses a track).
    func selectLayer(for c: ConsumerState, transport t: TransportState, producer p: ProducerState, now: Int64) -> Int {
        let n = p.layers.count
        guard n > 1 else { return 0 }
        let inactiveAfter = configuration.layerInactiveAfterMs
        let anyActive = p.layers.contains { $0.isActive(now: now, inactiveAfter: inactiveAfter) }
        let budget = bitrateBudget(for: c, transport: t)
        var lowestActive: Int?
        for l in 0..<n where !anyActive || p.layers[l].isActive(now: now, inactiveAfter: inactiveAfter) {
            lowestActive = l
            break
        }
        for l in stride(from: min(c.preferredLayer, n - 1), through: 0, by: -1) {
            if anyActive, !p.layers[l].isActive(now: now, inactiveAfter: inactiveAfter) { continue }
            if let budget, p.layers[l].meter.bitsPerSecond(now: now) > budget { continue }
            return l
        }
        return lowestActive ?? 0
    }

    mutating func updateTargetLayer(_ id: ConsumerID, now: Int64, into outputs: inout [RoomOutput]) {
        guard let c = consumers[id], !c.isRelay, let p = producers[c.producer], let t = transports[c.transport] else { return }
        let target = selectLayer(for: c, transport: t, producer: p, now: now)
        guard target != c.targetLayer else { return }
        consumers[id]!.targetLayer = target
        if target != c.currentLayer, c.kind == .video {
            requestKeyframe(c.producer, layer: target, now: now, into: &outputs)
        }
    }

    /// PLI to the publisher for one layer, at most once per `keyframeRequestIntervalMs`.
    @discardableResult
    mutating func requestKeyframe(_ producer: ProducerID, layer: Int, now: Int64, into outputs: inout [RoomOutput]) -> Bool {
        guard let p = producers[producer], p.description.kind == .video, p.layers.indices.contains(layer),
              let ssrc = p.layers[layer].ssrc else { return false }
        let last = p.layers[layer].lastKeyframeRequestAt
        if last != .min, now - last < configuration.keyframeRequestIntervalMs {
            counters.keyframeRequestsSuppressed += 1
            return false
        }
        producers[producer]!.layers[layer].lastKeyframeRequestAt = now
        let pli = RTCPPacket.encodeCompound([.pictureLossIndication(.init(senderSSRC: configuration.rtcpSenderSSRC, mediaSSRC: ssrc))])
        outputs.append(.sendRTCP(p.transport, pli))
        outputs.append(.event(.keyframeRequested(producer, layer: layer, ssrc: ssrc)))
        counters.keyframeRequestsSent += 1
        counters.rtcpSent += 1
        return true
    }

    // MARK: queries

    public func consumerStats(_ id: ConsumerID) -> ConsumerStats? {
        guard let c = consumers[id], let t = transports[c.transport] else { return nil }
        return ConsumerStats(currentLayer: c.currentLayer, targetLayer: c.targetLayer, packetsSent: c.packetsSent,
                             octetsSent: c.octetsSent, retransmitted: c.retransmitted,
                             bitrateBudget: bitrateBudget(for: c, transport: t))
    }

    /// Measured bitrate of each layer of a producer over the last second, lowest layer first.
    public func layerBitrates(_ id: ProducerID, now: Int64) -> [Int] {
        producers[id]?.layers.map { $0.meter.bitsPerSecond(now: now) } ?? []
    }

    /// SSRCs of a producer's layers (learned from RIDs once packets arrived).
    public func layerSSRCs(_ id: ProducerID) -> [UInt32?] {
        producers[id]?.layers.map(\.ssrc) ?? []
    }

    /// Heap bytes of the room's state, counted from the real capacities of its arrays and
    /// dictionaries (see `HeapSize`); short strings (RIDs, mids) are stored inline and cost nothing.
    public func memoryFootprint() -> MemoryFootprint {
        var buffers = 0
        var producerBytes = HeapSize.dictionary(producers)
        for p in producers.values {
            producerBytes += HeapSize.array(p.layers) + HeapSize.array(p.consumers) + HeapSize.array(p.description.layers)
            for l in p.layers {
                buffers += l.buffer.memoryBytes
                producerBytes += l.meter.memoryBytes
            }
        }
        var consumerBytes = HeapSize.dictionary(consumers)
        for c in consumers.values {
            consumerBytes += c.history.memoryBytes + HeapSize.array(c.remap.table)
                + (c.description.extensionIDs.map(HeapSize.dictionary) ?? 0)
        }
        var transportBytes = HeapSize.dictionary(transports) + HeapSize.array(transportOrder)
        for t in transports.values {
            transportBytes += HeapSize.array(t.producers) + HeapSize.array(t.consumers)
                + HeapSize.dictionary(t.routes) + HeapSize.dictionary(t.consumerBySSRC)
        }
        return MemoryFootprint(retransmissionBufferBytes: buffers, producerStateBytes: producerBytes,
                               consumerStateBytes: consumerBytes, transportStateBytes: transportBytes, consumers: consumers.count)
    }
}

/// Heap bytes of Swift's native collections, from their real capacities. An array is one heap
/// object: a 32-byte header, then `capacity` elements. A native dictionary is one object with a
/// header, an occupancy bitmap and key and value arrays of `buckets` slots each, where `buckets`
/// is the power of two whose 3/4 is its `capacity` (the stdlib's maximum load factor). Empty
/// collections share a static singleton and cost nothing.
enum HeapSize {
    static let objectHeaderBytes = 32
    static let dictionaryHeaderBytes = 80

    static func array<T>(_ a: [T]) -> Int {
        a.capacity == 0 ? 0 : objectHeaderBytes + a.capacity * MemoryLayout<T>.stride
    }

    static func dictionary<K, V>(_ d: [K: V]) -> Int {
        guard d.capacity > 0 else { return 0 }
        var buckets = 1
        while buckets * 3 / 4 < d.capacity { buckets <<= 1 }
        return dictionaryHeaderBytes + (buckets + 63) / 64 * 8 + buckets * (MemoryLayout<K>.stride + MemoryLayout<V>.stride)
    }
}

// MARK: - media path

extension Room {
    /// One RTP packet (SRTP already removed) from `transport`: validated, recorded for
    /// retransmission and reports, and copied to every consumer that receives its layer.
    public mutating func receiveRTP(from transport: TransportID, _ bytes: [UInt8], now: Int64,
                                    into outputs: inout [RoomOutput]) {
        var none: [[UInt8]] = []
        receiveRTP(from: transport, bytes, now: now, into: &outputs, reusing: &none)
    }

    /// Same, writing the consumers' copies into buffers taken from `spare` (see
    /// `MediaServer.recycle`) while it has any.
    public mutating func receiveRTP(from transport: TransportID, _ bytes: [UInt8], now: Int64,
                                    into outputs: inout [RoomOutput], reusing spare: inout [[UInt8]]) {
        counters.rtpReceived += 1
        guard let route0 = transports[transport].map({ $0.routes }) else {
            counters.unknownTransport += 1
            return
        }
        do {
            _ = try RTPPacketBuffer(bytes)
        } catch {
            counters.malformedRTP += 1
            return
        }
        let view = RTPHeaderView(validated: bytes)
        recordTransportWide(transport, view: view, bytes: bytes, now: now)
        guard let route = route0[view.ssrc] ?? bindLayerByRID(transport: transport, view: view, bytes: bytes, into: &outputs) else {
            counters.unknownSSRC += 1
            return
        }
        if route.isRTX {
            counters.publisherRTXDropped += 1
            return
        }
        let producerID = route.producer
        let layer = route.layer
        let maxAge = configuration.retransmissionMaxAgeMs
        var isKeyframe = false
        var consumerIDs: [ConsumerID] = []
        enum Verdict { case accepted, wrongPayloadType, duplicate, sequenceJump }
        var verdict = Verdict.accepted
        var previousHighest: UInt16?
        // One in-place access to the producer (no copy of its buffers).
        withProducer(producerID) { p in
            guard view.payloadType == p.description.payloadType else { verdict = .wrongPayloadType; return }
            if p.layers[layer].buffer.contains(view.sequenceNumber, now: now, maxAge: maxAge) { verdict = .duplicate; return }
            if p.layers[layer].statistics.started { previousHighest = p.layers[layer].statistics.maxSequence }
            guard p.layers[layer].statistics.update(sequence: view.sequenceNumber, rtpTimestamp: view.timestamp,
                                                    arrivalMs: now, clockRate: p.description.clockRate) else {
                verdict = .sequenceJump
                return
            }
            p.layers[layer].buffer.store(bytes, sequence: view.sequenceNumber, now: now, maxAge: maxAge)
            p.layers[layer].meter.add(bytes.count, now: now)
            p.layers[layer].lastPacketAt = now
            p.layers[layer].bytesReceived += bytes.count
            isKeyframe = !view.payload.isEmpty
                && KeyframeDetector.isKeyframeStart(codec: p.description.codec, payload: bytes[view.payload])
            if isKeyframe { p.layers[layer].lastKeyframeAt = now }
            consumerIDs = p.consumers
        }
        switch verdict {
        case .accepted: break
        case .wrongPayloadType: counters.unexpectedPayloadType += 1; return
        case .duplicate: counters.duplicateRTP += 1; return
        case .sequenceJump: counters.sequenceJump += 1; return
        }
        if let previousHighest, transports[transport]?.isPipe == true {
            nackGapUpstream(transport, ssrc: view.ssrc, previousHighest: previousHighest, sequence: view.sequenceNumber, into: &outputs)
        }
        for id in consumerIDs {
            // One in-place dictionary access per consumer; the consumer appends its copy itself.
            switch consumers[id]?.forward(bytes, view: view, layer: layer, isKeyframe: isKeyframe, now: now, into: &outputs, reusing: &spare) {
            case .drop?, nil:
                continue
            case .forward?:
                break
            case .switched(let from)?:
                outputs.append(.event(.layerSwitched(id, from: from, to: layer)))
                counters.layerSwitches += 1
            }
            counters.rtpForwarded += 1
        }
    }

    /// NACK hop by hop: a gap of up to `maxUpstreamNackGap` packets in a stream arriving over a
    /// pipe is asked for at once from the node upstream, which answers from its own buffer; the
    /// viewers here are answered from this node's buffer once the packets arrive.
    private mutating func nackGapUpstream(_ transport: TransportID, ssrc: UInt32, previousHighest: UInt16, sequence: UInt16,
                                          into outputs: inout [RoomOutput]) {
        let gap = sequence &- previousHighest
        guard gap >= 2, gap <= Self.maxUpstreamNackGap else { return }
        let lost = (1..<gap).map { previousHighest &+ $0 }
        let nack = RTCPNack(senderSSRC: configuration.rtcpSenderSSRC, mediaSSRC: ssrc, lostSequenceNumbers: lost)
        outputs.append(.sendRTCP(transport, RTCPPacket.encodeCompound([.nack(nack)])))
        counters.nacksSentUpstream += lost.count
        counters.rtcpSent += 1
    }

    /// Longer gaps are an outage, not loss: the viewers' PLIs recover from them.
    static let maxUpstreamNackGap: UInt16 = 64

    private mutating func withProducer(_ id: ProducerID, _ body: (inout ProducerState) -> Void) {
        guard producers[id] != nil else { return }
        body(&producers[id]!)
    }

    /// RFC 8852: a simulcast layer announced only by rid gets its SSRC from the first packet
    /// carrying that rid (repaired-rid for its RTX stream), and the mid when the producer has one.
    private mutating func bindLayerByRID(transport: TransportID, view: RTPHeaderView, bytes: [UInt8],
                                         into outputs: inout [RoomOutput]) -> TransportState.Route? {
        guard let t = transports[transport] else { return nil }
        for pid in t.producers {
            guard let p = producers[pid] else { continue }
            let d = p.description
            if let midID = d.midExtensionID, let mid = d.mid, let value = view.extensionValue(id: midID, in: bytes),
               !value.elementsEqual(mid.utf8) { continue }
            // The payload type says whether this is the layer's RTX stream: libwebrtc's RTX
            // padding probes carry the rid itself, not only repaired-rid, and binding one of them
            // as the media SSRC would leave the layer's real packets unroutable.
            let isRTX = d.rtxPayloadType == view.payloadType
            for extID in [d.ridExtensionID, d.repairedRidExtensionID] {
                guard let extID, let value = view.extensionValue(id: extID, in: bytes) else { continue }
                guard let i = p.layers.firstIndex(where: { $0.rid.map { value.elementsEqual($0.utf8) } ?? false }) else { continue }
                if isRTX {
                    guard p.layers[i].rtxSSRC == nil else { continue }
                    producers[pid]!.layers[i].rtxSSRC = view.ssrc
                } else {
                    guard p.layers[i].ssrc == nil else { continue }
                    producers[pid]!.layers[i].ssrc = view.ssrc
                    registerRelaySSRC(pid, ssrc: view.ssrc)
                    outputs.append(.event(.layerBound(pid, layer: i, ssrc: view.ssrc)))
                }
                let route = TransportState.Route(producer: pid, layer: i, isRTX: isRTX)
                transports[transport]!.routes[view.ssrc] = route
                return route
            }
        }
        return nil
    }
}
