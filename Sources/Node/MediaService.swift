import HTTPAPI
import Logging
import MediaNIO
import NIOPosix
import RTC
import SFU
import ServiceLifecycle
import Synchronization

/// The node's media engine (one UDP port, `--media`) and its WHIP/WHEP signalling.
final class MediaService: Service, MediaSignaling {
    let engine: Mutex<MediaEngine?> = Mutex(nil)
    /// Why the port could not be bound at start (the node then runs without media).
    private let startError: Mutex<String?> = Mutex(nil)
    private let exported = Mutex(MediaSnapshot())
    private let config: NodeConfig
    private let metrics: DrtcMetrics
    private let logger: Logger
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Names this node in pipe track keys (its PeerID).
    private let nodeTag: String

    init(config: NodeConfig, metrics: DrtcMetrics, logger: Logger, nodeTag: String = "local") {
        self.nodeTag = nodeTag
        self.config = config
        self.metrics = metrics
        self.logger = logger
    }

    /// Binds the media port. A port already in use leaves the node running without media (the
    /// registry still serves) and says so; WHIP/WHEP then answer 503.
    func start() async {
        do {
            let certificate = try DTLSCertificate(commonName: "drtc")
            let maxSessions = config.capacity.maxSessions > 0 ? Int(config.capacity.maxSessions) : 1000
            let started = try await MediaEngine.start(
                host: config.media.host, port: config.media.port, group: group, certificate: certificate,
                configure: { [nodeTag] in
                    $0.maxSessions = maxSessions
                    $0.nodeTag = nodeTag
                }, logger: logger)
            engine.withLock { $0 = started }
            metrics.onScrape { [weak self] in self?.exportMetrics() }
        } catch {
            startError.withLock { $0 = "cannot serve --media \(config.media): \(error)" }
            logger.error("media disabled: cannot serve --media", metadata: ["media": "\(config.media)", "error": "\(error)"])
        }
    }

    func run() async throws {
        try? await gracefulShutdown()
        await engine.withLock { $0 }?.shutdown()
        try? await group.shutdownGracefully()
    }

    /// The media socket for `/health`: unavailable when it was never bound, or while it is
    /// closed and being bound again.
    func health() -> MediaHealth {
        guard let engine = engine.withLock({ $0 }) else {
            return MediaHealth(status: "unavailable", udp: "\(config.media)", error: startError.withLock { $0 } ?? "media engine not started")
        }
        let socket = engine.socket
        return socket.isUp
            ? MediaHealth(status: "ok", udp: "\(engine.localAddress)")
            : MediaHealth(status: "unavailable", udp: "\(engine.localAddress)", error: "media socket closed (\(socket.lastError ?? "unknown")); rebinding")
    }

    /// The rooms panel of the dashboard: this node's rooms and sessions now.
    func dashboardMedia() async -> DashboardOverview.Media {
        let status = health().status
        guard let engine = engine.withLock({ $0 }) else {
            return DashboardOverview.Media(status: status, sessions: 0, producers: 0, consumers: 0, rooms: [])
        }
        let snapshot = engine.snapshot
        let rooms = await engine.roomStatus(nil).sorted { $0.room < $1.room }.map {
            DashboardOverview.Room(room: $0.room, publishers: $0.publishers, viewers: $0.viewers, tracks: $0.tracks,
                                   pipes: $0.pipes.map(\.peer))
        }
        return DashboardOverview.Media(status: status, sessions: snapshot.sessions, producers: snapshot.producers,
                                       consumers: snapshot.consumers, rooms: rooms)
    }

    // MARK: MediaSignaling

    /// The engine, else the 503 `media_unavailable` that WHIP/WHEP and the RPCs answer. With
    /// `serving`, only while its media port is bound: an answer (or a pipe's parameters) naming
    /// a closed socket would never connect, so say so instead.
    func engineOrThrow(serving: Bool = false) throws -> MediaEngine {
        guard let engine = engine.withLock({ $0 }) else {
            throw APIError(.serviceUnavailable, code: "media_unavailable", "this node's media port \(config.media) could not be bound; see its log")
        }
        let socket = engine.socket
        guard socket.isUp || !serving else {
            var api = APIError(.serviceUnavailable, code: "media_unavailable",
                               "this node's media socket \(engine.localAddress) closed (\(socket.lastError ?? "unknown")) and is being bound again; retry shortly")
            api.headers[.retryAfter] = "1"
            throw api
        }
        return engine
    }

    func offer(_ sdp: String, room: String, role: MediaRole, rid: String?) async throws -> MediaAnswer {
        let engine = try engineOrThrow(serving: true)
        do {
            let created = switch role {
            case .publisher: try await engine.publish(room: room, offer: sdp)
            case .viewer: try await engine.view(room: room, offer: sdp, rid: rid)
            }
            logger.info("media session created", metadata: ["session": "\(created.id)", "role": "\(role.rawValue)", "room": "\(room)", "tracks": "\(created.tracks)"])
            return MediaAnswer(sessionID: created.id, sdp: created.answer)
        } catch let error as MediaServerError {
            throw Self.apiError(error)
        }
    }

    func end(session: String, room: String, role: MediaRole) async -> Bool {
        guard let engine = engine.withLock({ $0 }) else { return false }
        return await engine.close(session: session, room: room, role: role == .publisher ? .publisher : .viewer)
    }

    static func apiError(_ error: MediaServerError) -> APIError {
        switch error.code {
        case .badOffer:
            return APIError(.badRequest, code: "bad_offer", error.message)
        case .badLayer:
            return APIError(.badRequest, code: "invalid_parameter", "rid: \(error.message)", parameter: "rid")
        case .nothingPublished:
            // Specs/media.md: WHEP before any WHIP is a 409 the client retries.
            var api = APIError(.conflict, code: "nothing_published", "\(error.message); retry after the publisher connected")
            api.headers[.retryAfter] = "1"
            return api
        case .overloaded:
            var api = APIError(.serviceUnavailable, code: "overloaded", error.message)
            api.headers[.retryAfter] = "5"
            return api
        case .unknownSession:
            return APIError(.notFound, code: "unknown_session", error.message)
        }
    }

    // MARK: metrics

    private func exportMetrics() {
        guard let engine = engine.withLock({ $0 }) else { return }
        let now = engine.snapshot
        let before = exported.withLock { e -> MediaSnapshot in
            defer { e = now }
            return e
        }
        let c = now.counters, p = before.counters, r = now.room, q = before.room, s = now.socket, t = before.socket
        let ps = now.pipeSockets, pt = before.pipeSockets
        let deltas: [(String, String, String, Int)] = [
            ("drtc_media_packets_total", "kind", "rtp_in", c.rtpIn - p.rtpIn),
            ("drtc_media_packets_total", "kind", "rtp_out", c.rtpOut - p.rtpOut),
            ("drtc_media_packets_total", "kind", "rtcp_in", c.rtcpIn - p.rtcpIn),
            ("drtc_media_packets_total", "kind", "rtcp_out", c.rtcpOut - p.rtcpOut),
            ("drtc_media_packets_total", "kind", "retransmitted", r.retransmitted - q.retransmitted),
            ("drtc_media_bytes_total", "direction", "in", c.bytesIn - p.bytesIn),
            ("drtc_media_bytes_total", "direction", "out", c.bytesOut - p.bytesOut),
            ("drtc_media_nacks_total", "result", "requested", r.nackedPackets - q.nackedPackets),
            ("drtc_media_nacks_total", "result", "unknown_or_too_old", r.nackUnknownOrTooOld - q.nackUnknownOrTooOld),
            ("drtc_media_nacks_total", "result", "rate_limited", r.nackRateLimited - q.nackRateLimited),
            ("drtc_media_plis_total", "kind", "from_viewers", r.keyframeRequestsFromConsumers - q.keyframeRequestsFromConsumers),
            ("drtc_media_plis_total", "kind", "sent", r.keyframeRequestsSent - q.keyframeRequestsSent),
            ("drtc_media_plis_total", "kind", "suppressed", r.keyframeRequestsSuppressed - q.keyframeRequestsSuppressed),
            ("drtc_media_srtp_failures_total", "direction", "unprotect", c.srtpUnprotectFailures - p.srtpUnprotectFailures),
            ("drtc_media_srtp_failures_total", "direction", "protect", c.srtpProtectFailures - p.srtpProtectFailures),
            ("drtc_media_dropped_total", "reason", "stun_unknown_ufrag", c.stunUnknownUfrag - p.stunUnknownUfrag),
            ("drtc_media_dropped_total", "reason", "stun_rejected", c.stunRejected - p.stunRejected),
            ("drtc_media_dropped_total", "reason", "unknown_source", c.unknownSource - p.unknownSource),
            ("drtc_media_dropped_total", "reason", "unknown_kind", c.unknownKind - p.unknownKind),
            ("drtc_media_dropped_total", "reason", "not_ready", c.notReady - p.notReady),
            ("drtc_media_dropped_total", "reason", "malformed_rtp", r.malformedRTP - q.malformedRTP),
            ("drtc_media_dropped_total", "reason", "malformed_rtcp", r.malformedRTCP - q.malformedRTCP),
            ("drtc_media_dropped_total", "reason", "unknown_ssrc", r.unknownSSRC - q.unknownSSRC),
            ("drtc_media_dropped_total", "reason", "duplicate_rtp", r.duplicateRTP - q.duplicateRTP),
            ("drtc_media_sessions_total", "event", "created", c.sessionsCreated - p.sessionsCreated),
            ("drtc_media_sessions_total", "event", "expired", c.sessionsExpired - p.sessionsExpired),
            ("drtc_media_sessions_total", "event", "failed", c.sessionsFailed - p.sessionsFailed),
            ("drtc_media_sessions_total", "event", "closed_by_client", c.sessionsClosedByClient - p.sessionsClosedByClient),
            ("drtc_media_sessions_total", "event", "offer_rejected", c.offersRejected - p.offersRejected),
            ("drtc_media_dtls_failures_total", "kind", "handshake", c.dtlsFailures - p.dtlsFailures),
            ("drtc_media_layer_switches_total", "kind", "simulcast", r.layerSwitches - q.layerSwitches),
            ("drtc_media_dropped_total", "reason", "socket_closed", s.droppedWhileClosed - t.droppedWhileClosed),
            ("drtc_media_socket_events_total", "event", "closed", s.closes - t.closes),
            ("drtc_media_socket_events_total", "event", "rebound", s.rebinds - t.rebinds),
            ("drtc_media_socket_events_total", "event", "rebind_failed", s.rebindFailures - t.rebindFailures),
            ("drtc_media_dropped_total", "reason", "truncated", s.truncated - t.truncated),
            ("drtc_media_nacks_total", "result", "sent_upstream", r.nacksSentUpstream - q.nacksSentUpstream),
            ("drtc_media_pipe_socket_events_total", "event", "failed", ps.failures - pt.failures),
            ("drtc_media_dropped_total", "reason", "pipe_socket_closed", ps.droppedWhileClosed - pt.droppedWhileClosed),
            ("drtc_media_dropped_total", "reason", "pipe_truncated", ps.truncated - pt.truncated),
        ]
            + s.sendErrors.map { ("drtc_media_send_errors_total", "errno", $0.key, $0.value - (t.sendErrors[$0.key] ?? 0)) }
            + s.receiveErrors.map { ("drtc_media_receive_errors_total", "errno", $0.key, $0.value - (t.receiveErrors[$0.key] ?? 0)) }
            + ps.sendErrors.map { ("drtc_media_pipe_send_errors_total", "errno", $0.key, $0.value - (pt.sendErrors[$0.key] ?? 0)) }
            + ps.receiveErrors.map { ("drtc_media_pipe_receive_errors_total", "errno", $0.key, $0.value - (pt.receiveErrors[$0.key] ?? 0)) }
        for (label, dim, value, delta) in deltas where delta > 0 {
            metrics.counter(label, dim, value).increment(by: delta)
        }
        metrics.gauge("drtc_media_socket_up", "udp", "\(engine.localAddress)").set(s.isUp ? 1 : 0)
        metrics.gauge("drtc_media_sessions", "kind", "active").set(now.sessions)
        metrics.gauge("drtc_media_rooms", "kind", "active").set(now.rooms)
        metrics.gauge("drtc_media_producers", "kind", "active").set(now.producers)
        metrics.gauge("drtc_media_consumers", "kind", "active").set(now.consumers)
        metrics.gauge("drtc_media_pipes", "kind", "active").set(now.pipes)
    }
}
