import Dispatch
import Identity
import Libp2p
import Libp2pNIO
import Logging
import MediaNIO
import NIOCore
import QoS
import RTC
import Registry
import SFU

/// One test as challenger (Specs/qos.md "Test protocol"): signed signalling with the prover
/// over `/drtc/qos-test/1.0.0`, then ICE, DTLS-SRTP and the measurement through `MediaClient`
/// on a UDP socket of its own, until the end of the test.
enum QoSChallenger {
    struct Outcome {
        var report: QoSReport
        var samples: SampleSeries?
        var detail: String
        /// UDP payload bytes received from the prover (media, RTCP, STUN, DTLS).
        var bytesReceived = 0
    }

    static func run(_ rt: QoSRuntime, prover: NodeKey, epoch: UInt64) async -> Outcome {
        let schedule = rt.qos.schedule
        let intervals = schedule.intervals
        func failed(_ outcome: TestOutcome, _ why: String) -> Outcome {
            Outcome(report: .failed(prover, outcome, intervals: intervals), samples: nil, detail: why)
        }
        guard let record = rt.registry.withReplica({ $0.table[prover.peerID] }) else { return failed(.noAnswer, "no registry record") }
        let certificate: DTLSCertificate
        do { certificate = try DTLSCertificate(commonName: "drtc-qos") } catch { return failed(.noAnswer, "no DTLS certificate: \(error)") }
        let client = MediaClient(role: .viewer, certificate: certificate)
        let request = TestSignalling.Request(epoch: epoch, challenger: NodeKey(rt.identity), prover: prover, offer: client.offer())
        let response: TestSignalling.Response
        do {
            response = try await signal(rt, request: request, to: record)
        } catch let error as TestSignalling.Failure {
            return failed(.noAnswer, "signalling: \(error)")
        } catch {
            return failed(.noAnswer, "signalling: \(error)")
        }
        guard response.status == .accepted else { return failed(.refused, "refused: \(response.reason)") }
        do { try client.accept(answer: response.answer) } catch { return failed(.noAnswer, "bad answer: \(error)") }
        guard let server = client.serverCandidates.first else { return failed(.noAnswer, "answer without a candidate") }
        let distance = record.record.geo.flatMap { theirs in rt.config.geo.map { greatCircleKm($0, theirs) } }
        let measurement = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        let loop = rt.group.next()
        let session = ChallengerSession(client: client, measurement: measurement, server: server, clock: rt.clock, loop: loop)
        do {
            let socket = try await ClientSocket.open(host: rt.config.media.host, on: loop) { bytes, from in session.receive(bytes, from: from) }
            await session.run(socket: socket)
            await socket.close()
        } catch {
            return failed(.noAnswer, "media socket: \(error)")
        }
        let m = session.measurement
        let implausible = LocationCheck.isImplausible(minRttUs: m.minRttUs, distanceKm: distance)
        let (report, samples) = m.report(prover: prover, scoring: ScoringParameters(), locationImplausible: implausible)
        return Outcome(report: report, samples: report.counts.samples > 0 ? samples : nil,
                       detail: "\(m.packetsReceived) packets, \(m.payloadBytesReceived) payload bytes", bytesReceived: session.bytesReceived)
    }

    /// Dials the prover if needed and exchanges the signed request and response.
    static func signal(_ rt: QoSRuntime, request: TestSignalling.Request, to record: SignedRecord) async throws -> TestSignalling.Response {
        let peer = request.prover.peerID
        if !rt.host.connectedPeers.contains(peer) {
            var lastError: (any Error)?
            var connected = false
            for text in record.record.multiaddrs {
                guard let addr = try? Multiaddr(text) else { continue }
                do {
                    _ = try await rt.host.dial(addr)
                    connected = true
                    break
                } catch { lastError = error }
            }
            if !connected { throw lastError ?? TestSignallingError("no dialable multiaddr") }
        }
        let stream = try await rt.host.newStream(to: peer, protocols: [TestSignalling.protocolID])
        defer { stream.reset() }
        let (bytes, signed) = TestSignalling.signed(request, key: rt.identity)
        try await stream.write(LengthPrefixedDecoder.frame(bytes))
        await stream.closeWrite()
        let body = try await readFrame(stream, timeout: .seconds(10))
        return try TestSignalling.verifyResponse(body, to: signed)
    }

    /// One length-prefixed frame of at most `TestSignalling.maxMessageSize` bytes.
    static func readFrame(_ stream: Libp2pStream, timeout: Duration) async throws -> [UInt8] {
        try await withThrowingTaskGroup(of: [UInt8].self) { group in
            group.addTask {
                var decoder = LengthPrefixedDecoder(maxMessageSize: TestSignalling.maxMessageSize)
                while let chunk = try await stream.read() {
                    decoder.append(chunk)
                    if let frame = try decoder.next() { return frame }
                }
                throw TestSignallingError("stream ended before a message")
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                stream.reset()
                throw TestSignallingError("no answer within \(timeout)")
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
    }
}

struct TestSignallingError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The challenger's media session. Everything but `run` happens on `loop`.
final class ChallengerSession: @unchecked Sendable {
    let client: MediaClient
    private(set) var measurement: ChallengerMeasurement
    let server: RTC.SocketAddress
    let clock: @Sendable () -> UInt64
    let loop: any EventLoop
    private var socket: ClientSocket?
    /// Consent checks in flight: transaction → send time (µs, monotonic).
    private var pending: [STUNTransactionID: UInt64] = [:]
    private var lastCheckMs: UInt64 = 0
    private(set) var bytesReceived = 0
    private var done: EventLoopPromise<Void>?
    private var ticker: RepeatedTask?

    init(client: MediaClient, measurement: ChallengerMeasurement, server: RTC.SocketAddress, clock: @escaping @Sendable () -> UInt64, loop: any EventLoop) {
        self.client = client
        self.measurement = measurement
        self.server = server
        self.clock = clock
        self.loop = loop
    }

    static func monotonicMicros() -> UInt64 { DispatchTime.now().uptimeNanoseconds / 1000 }

    /// Runs until the end of the test (or until the task is cancelled: shutdown).
    func run(socket: ClientSocket) async {
        let finished: EventLoopFuture<Void> = loop.submit { () -> EventLoopFuture<Void> in
            self.socket = socket
            let promise = self.loop.makePromise(of: Void.self)
            self.done = promise
            self.ticker = self.loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(20)) { _ in self.tick() }
            return promise.futureResult
        }.flatMap { $0 }
        await withTaskCancellationHandler {
            try? await finished.get()
        } onCancel: {
            loop.execute { self.finish() }
        }
    }

    private func finish() {
        ticker?.cancel()
        ticker = nil
        done?.succeed(())
        done = nil
    }

    private func send(_ datagrams: [[UInt8]]) { socket?.send(datagrams, to: server) }

    private func tick() {
        let now = clock()
        measurement.advance(toMs: now)
        if now >= measurement.endMs {
            finish()
            return
        }
        if !client.isConnected {
            // Connectivity checks every 200 ms until DTLS is up, and DTLS retransmissions.
            if now >= lastCheckMs + 200 {
                lastCheckMs = now
                send([client.bindingRequest()])
            }
            send(client.tick(now: now))
        } else if now >= lastCheckMs + 1000 {
            // One consent check a second (RFC 7675 asks for one every 5 s at least): its round
            // trip is the RTT sample, measured here.
            lastCheckMs = now
            let (datagram, id) = client.consentCheck()
            pending[id] = Self.monotonicMicros()
            if pending.count > 64 { pending.removeAll() }
            send([datagram])
        }
    }

    func receive(_ bytes: [UInt8], from: RTC.SocketAddress) {
        guard from == server else { return }
        bytesReceived += bytes.count
        let now = clock()
        switch DatagramKind(classifying: bytes) {
        case .stun:
            if let id = client.bindingSuccess(bytes), let sent = pending.removeValue(forKey: id) {
                let rtt = Self.monotonicMicros() &- sent
                measurement.roundTrip(us: UInt32(min(rtt, UInt64(UInt32.max))), atMs: now)
            }
            send(client.receive(bytes, now: now))
        case .dtls:
            send(client.receive(bytes, now: now))
        case .rtp:
            guard let srtp = client.srtpIn, let plain = try? srtp.unprotect(srtp: bytes), let packet = try? RTPPacket(decoding: plain) else { return }
            measurement.received(packet, atMs: now)
        default:
            break  // RTCP sender reports: not used, the challenger measures for itself
        }
    }
}
