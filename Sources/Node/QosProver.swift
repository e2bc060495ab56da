import Identity
import Libp2p
import Libp2pNIO
import Logging
import MediaNIO
import NIOCore
import QoS
import RTC
import SFU
import Synchronization

/// The prover's side of tests (Specs/qos.md "Test protocol"): answers signed requests on
/// `/drtc/qos-test/1.0.0` from its assigned challengers with a viewer session of its own SFU,
/// into which it publishes the epoch's test stream over loopback.
final class QoSProver: Sendable {
    static let maxConcurrentTests = 64

    let rt: QoSRuntime
    private let streams = Mutex<[UInt64: ProverStream]>([:])
    private let creating = Mutex<[UInt64: Task<ProverStream, any Error>]>([:])

    init(_ rt: QoSRuntime) { self.rt = rt }

    /// One request on an inbound stream: verify, decide, answer.
    func handle(_ stream: Libp2pStream) async {
        defer { stream.reset() }
        let body: [UInt8]
        do { body = try await QoSChallenger.readFrame(stream, timeout: .seconds(10)) } catch {
            rt.logger.debug("QoS test request not read", metadata: ["peer": "\(stream.remotePeer)", "error": "\(error)"])
            return
        }
        let request: TestSignalling.Request
        do { request = try TestSignalling.verifyRequest(body) } catch {
            rt.logger.info("QoS test request rejected", metadata: ["peer": "\(stream.remotePeer)", "error": "\(error)"])
            rt.metrics.counter("drtc_qos_tests_total", [("role", "prover"), ("result", "invalid_request")]).increment()
            return
        }
        let response: TestSignalling.Response
        if let reason = refusal(request, remote: stream.remotePeer) {
            response = TestSignalling.Response(to: request, status: .refused, reason: reason)
            rt.metrics.counter("drtc_qos_tests_total", [("role", "prover"), ("result", "refused")]).increment()
            rt.logger.info("QoS test refused", metadata: ["challenger": "\(request.challenger)", "epoch": "\(request.epoch)", "reason": "\(reason)"])
        } else {
            do {
                let answer = try await view(request)
                response = TestSignalling.Response(to: request, status: .accepted, answer: answer)
                rt.metrics.counter("drtc_qos_tests_total", [("role", "prover"), ("result", "accepted")]).increment()
            } catch {
                response = TestSignalling.Response(to: request, status: .refused, reason: "media_unavailable")
                rt.logger.warning("QoS test stream could not start", metadata: ["epoch": "\(request.epoch)", "error": "\(error)"])
            }
        }
        do {
            try await stream.write(LengthPrefixedDecoder.frame(TestSignalling.sign(response, key: rt.identity)))
            await stream.closeWrite()
            // The challenger resets the stream once it has read the answer. A reset sent from
            // here right behind the answer can overtake it: a reset stream drops what its far
            // end has not read yet, which a busy challenger saw as `no_answer` ("stream ended
            // before a message"). So the stream ends from the challenger's side, or after 10 s.
            _ = try? await QoSChallenger.readFrame(stream, timeout: .seconds(10))
        } catch {
            rt.logger.debug("QoS test response not sent", metadata: ["error": "\(error)"])
        }
    }

    /// Why a request is refused, or nil.
    func refusal(_ r: TestSignalling.Request, remote: PeerID) -> String? {
        guard rt.config.qos else { return "qos_disabled" }
        guard r.challenger.peerID == remote else { return "not_authenticated" }
        guard r.prover == NodeKey(rt.identity) else { return "wrong_prover" }
        let schedule = rt.qos.schedule, now = rt.clock(), e = schedule.epoch(atMs: now)
        let current = r.epoch == e && now < schedule.testEndMs(e)
        let upcoming = r.epoch == e + 1 && now + 2 * rt.leadMs >= schedule.testStartMs(e + 1)
        guard current || upcoming else { return "wrong_epoch" }
        let agg = rt.qos.aggregate()
        let me = NodeKey(rt.identity)
        guard let result = agg.epochs[r.epoch], result.active.contains(me), let beta = result.tickets[me] else { return "not_active" }
        guard agg.accepts(challenger: r.challenger, prover: me, epoch: r.epoch, ownBeta: beta) else { return "not_assigned" }
        let running = streams.withLock { $0[r.epoch]?.viewerCount ?? 0 }
        guard running < Self.maxConcurrentTests else { return "busy" }
        guard rt.media.current != nil else { return "media_unavailable" }
        return nil
    }

    /// A viewer session on the epoch's test stream.
    func view(_ r: TestSignalling.Request) async throws -> String {
        guard let engine = rt.media.current else { throw TestSignallingError("media engine not running") }
        let stream = try await testStream(epoch: r.epoch, engine: engine)
        let created = try await engine.view(room: stream.room, offer: r.offer, rid: nil)
        stream.addViewer(created.id)
        return created.answer
    }

    /// The epoch's test stream, started on first use (concurrent requests share one start).
    private func testStream(epoch: UInt64, engine: MediaEngine) async throws -> ProverStream {
        if let s = streams.withLock({ $0[epoch] }) { return s }
        let task = creating.withLock { c -> Task<ProverStream, any Error> in
            if let t = c[epoch] { return t }
            let t = Task { try await ProverStream.start(rt, epoch: epoch, engine: engine) }
            c[epoch] = t
            return t
        }
        let stream = try await task.value
        streams.withLock { $0[epoch] = stream }
        return stream
    }

    /// Ends an epoch's stream and its viewer sessions (the test is over).
    func endEpoch(_ epoch: UInt64) async {
        creating.withLock { _ = $0.removeValue(forKey: epoch) }
        guard let stream = streams.withLock({ $0.removeValue(forKey: epoch) }), let engine = rt.media.current else { return }
        await stream.stop(engine: engine)
        rt.metrics.counter("drtc_qos_media_bytes_total", [("role", "prover"), ("direction", "publish")]).increment(by: stream.bytesPublished.withLock { $0 })
    }

    func stopAll() async {
        for epoch in streams.withLock({ Array($0.keys) }) { await endEpoch(epoch) }
    }
}

/// The prover's test stream of one epoch: a `MediaClient` publisher on its own UDP socket,
/// sending `TestVideoSource` packets into a private room of the node's SFU. Loop-confined state.
final class ProverStream: @unchecked Sendable {
    let room: String
    let publisherSession: String
    let client: MediaClient
    let socket: ClientSocket
    let server: RTC.SocketAddress
    let loop: any EventLoop
    let clock: @Sendable () -> UInt64
    private var source: TestVideoSource
    private var ticker: RepeatedTask?
    private var lastCheckMs: UInt64 = 0
    private let viewers = Mutex<[String]>([])
    /// SRTP bytes of the test stream sent into the SFU (the loopback publish).
    let bytesPublished = Mutex(0)

    var viewerCount: Int { viewers.withLock { $0.count } }
    func addViewer(_ id: String) { viewers.withLock { $0.append(id) } }

    private init(room: String, publisherSession: String, client: MediaClient, socket: ClientSocket, server: RTC.SocketAddress,
                 source: TestVideoSource, clock: @escaping @Sendable () -> UInt64) {
        self.room = room
        self.publisherSession = publisherSession
        self.client = client
        self.socket = socket
        self.server = server
        self.loop = socket.eventLoop
        self.source = source
        self.clock = clock
    }

    static func start(_ rt: QoSRuntime, epoch: UInt64, engine: MediaEngine) async throws -> ProverStream {
        let certificate = try DTLSCertificate(commonName: "drtc-qos")
        let client = MediaClient(role: .publisher, certificate: certificate)
        // A capability: nobody can view or publish into a room whose name they cannot guess.
        let room = "qos-" + Hex.encode(secureRandomBytes(16))
        let created = try await engine.publish(room: room, offer: client.offer())
        try client.accept(answer: created.answer)
        guard let server = client.serverCandidates.first else { throw TestSignallingError("publish answer without a candidate") }
        let loop = rt.group.next()
        let box = Mutex<ProverStream?>(nil)
        let socket = try await ClientSocket.open(host: engine.localAddress.ip.description, on: loop) { bytes, from in
            box.withLock { $0 }?.receive(bytes, from: from)
        }
        let source = TestVideoSource(ssrc: client.ssrc, payloadType: MediaClient.videoPayloadType, bitrateKbps: rt.config.qosBitrateKbps,
                                     startMs: rt.clock(), firstSequence: UInt16.random(in: 0...UInt16.max))
        let stream = ProverStream(room: room, publisherSession: created.id, client: client, socket: socket, server: server,
                                  source: source, clock: rt.clock)
        box.withLock { $0 = stream }
        try await loop.submit { stream.ticker = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(10)) { _ in stream.tick() } }.get()
        rt.logger.info("QoS test stream started", metadata: ["epoch": "\(epoch)", "room": "\(room)", "kbps": "\(rt.config.qosBitrateKbps)"])
        return stream
    }

    private func tick() {
        let now = clock()
        if !client.isConnected {
            if now >= lastCheckMs + 100 {
                lastCheckMs = now
                socket.send([client.bindingRequest()], to: server)
            }
            socket.send(client.tick(now: now), to: server)
            return
        }
        if now >= lastCheckMs + 2000 {
            lastCheckMs = now
            socket.send([client.bindingRequest()], to: server)  // consent
        }
        guard let srtp = client.srtpOut else { return }
        let packets = source.packets(upTo: now).compactMap { try? srtp.protect(rtp: $0.encoded()) }
        bytesPublished.withLock { $0 += packets.reduce(0) { $0 + $1.count } }
        socket.send(packets, to: server)
    }

    private func receive(_ bytes: [UInt8], from: RTC.SocketAddress) {
        guard from == server else { return }
        switch DatagramKind(classifying: bytes) {
        case .stun, .dtls:
            socket.send(client.receive(bytes, now: clock()), to: server)
        case .rtcp:
            // A keyframe request from the SFU (a new viewer): PLI (RFC 4585) or FIR (RFC 5104).
            guard let srtp = client.srtpIn, let plain = try? srtp.unprotectRTCP(bytes),
                  let packets = try? RTCPPacket.decodeCompound(plain) else { return }
            let keyframeWanted = packets.contains {
                switch $0 {
                case .pictureLossIndication, .fullIntraRequest: true
                default: false
                }
            }
            if keyframeWanted { source.requestKeyframe() }
        default:
            break
        }
    }

    func stop(engine: MediaEngine) async {
        try? await loop.submit { self.ticker?.cancel() }.get()
        for id in viewers.withLock({ $0 }) { _ = await engine.close(session: id, room: room, role: .viewer) }
        _ = await engine.close(session: publisherSession, room: room, role: .publisher)
        await socket.close()
    }
}
