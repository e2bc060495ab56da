// The media node's sessions on one UDP port, sans-I/O: WHIP publishers and WHEP viewers, each an
// ICE-lite agent, a DTLS server and a pair of SRTP contexts around one transport of a `Room`
// (mediasoup's Worker → Router → WebRtcTransport). Datagrams, signalling and timer ticks go in,
// each with the time; datagrams to send come out. The NIO adapter owns the socket and the clock.
import Identity
import RTC

/// Codes for `MediaServerError`; the HTTP layer maps them to statuses (Specs/media.md).
public enum MediaServerErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CustomStringConvertible {
        /// The offer is not SDP this server can answer (parse error, no fingerprint, no ICE
        /// credentials, no codec in common, not bundled…): 400.
        case badOffer
        /// A WHEP viewer asked for a room where nothing is published: 409 + Retry-After.
        case nothingPublished
        /// A requested simulcast layer does not exist: 400.
        case badLayer
        /// The node is at its session limit: 503.
        case overloaded
        /// No such session: 404.
        case unknownSession
        public var description: String { rawValue }
    }
}

public typealias MediaServerError = CodedError<MediaServerErrorDomain>

/// What a session is for.
public enum MediaSessionRole: String, Hashable, Sendable {
    /// WHIP: sends media to the room.
    case publisher
    /// WHEP: receives the room's producers.
    case viewer
    /// A node-to-node pipe: mirrors the far node's producers and relays ours (Specs/media.md "Pipes").
    case pipe
}

/// A session created by signalling: its id (the last path segment of the WHIP/WHEP Location)
/// and the SDP answer.
public struct MediaSessionCreated: Hashable, Sendable {
    public var id: String
    public var answer: String
    public var tracks: Int
}

/// Counters for /metrics. Everything dropped is counted under a reason.
public struct MediaServerCounters: Hashable, Sendable {
    public var datagramsIn = 0
    public var bytesIn = 0
    public var datagramsOut = 0
    public var bytesOut = 0
    public var rtpIn = 0
    public var rtpOut = 0
    public var rtcpIn = 0
    public var rtcpOut = 0
    public var srtpUnprotectFailures = 0
    public var srtpProtectFailures = 0
    public var stunUnknownUfrag = 0
    public var stunRejected = 0
    public var dtlsFailures = 0
    /// Datagrams from an address no session has nominated (or not STUN/DTLS/RTP at all).
    public var unknownSource = 0
    public var unknownKind = 0
    /// Media for a session whose DTLS handshake has not finished.
    public var notReady = 0
    public var sessionsCreated = 0
    public var sessionsClosedByClient = 0
    public var sessionsExpired = 0
    public var sessionsFailed = 0
    public var offersRejected = 0
    public init() {}
}

public final class MediaServer {
    public struct Configuration: Sendable {
        /// Host candidates announced in every answer: where the UDP socket is reachable.
        public var candidates: [SocketAddress]
        public var certificate: DTLSCertificate
        /// DTLS-SRTP profiles in server preference order.
        public var srtpProfiles: [SRTPProfile]
        public var capabilities: SDPCapabilities
        public var room: RoomConfiguration
        /// RFC 7675: no authenticated check for this long ends the session.
        public var consentTimeoutMs: UInt64
        /// A session whose DTLS handshake has not completed by then is dropped.
        public var handshakeTimeoutMs: UInt64
        public var maxSessions: Int
        /// How often `tick` should be called; also the RTCP/timer granularity.
        public var tickIntervalMs: UInt64
        /// Names this node in pipe track keys (`<nodeTag>/<producer>`), so a track that comes back
        /// around is recognised; the node's PeerID.
        public var nodeTag = "local"
        /// A room with no clients on this node and one pipe closes that pipe after this long.
        public var idlePipeTimeoutMs: UInt64 = 30_000

        public init(candidates: [SocketAddress], certificate: DTLSCertificate,
                    srtpProfiles: [SRTPProfile] = [.aeadAES128GCM, .aes128CMSHA1_80],
                    capabilities: SDPCapabilities = SDPCapabilities(), room: RoomConfiguration = RoomConfiguration(),
                    consentTimeoutMs: UInt64 = 30_000, handshakeTimeoutMs: UInt64 = 30_000,
                    maxSessions: Int = 1000, tickIntervalMs: UInt64 = 20) {
            self.candidates = candidates
            self.certificate = certificate
            self.srtpProfiles = srtpProfiles
            self.capabilities = capabilities
            self.room = room
            self.consentTimeoutMs = consentTimeoutMs
            self.handshakeTimeoutMs = handshakeTimeoutMs
            self.maxSessions = maxSessions
            self.tickIntervalMs = tickIntervalMs
        }
    }

    /// A datagram to send.
    public struct Datagram {
        public var bytes: [UInt8]
        public var to: SocketAddress
        /// The local socket to send from: 0 is the media port; pipes this node dials have their own.
        public var via: Int

        public init(bytes: [UInt8], to: SocketAddress, via: Int = 0) {
            self.bytes = bytes
            self.to = to
            self.via = via
        }
    }

    /// Something the operator's log should say (one line each; never per packet).
    public enum Event: Hashable, Sendable {
        case sessionConnected(id: String, role: MediaSessionRole, room: String, profile: SRTPProfile)
        case sessionClosed(id: String, reason: String)
        case layerSwitched(room: String, consumer: ConsumerID, from: Int?, to: Int)
        /// A pipe's DTLS handshake completed: media crosses it.
        case pipeConnected(id: String, room: String)
        /// A pipe ended (closed, consent lost, DTLS failed, idle); `socket` is its dialled socket, if any.
        case pipeClosed(id: String, room: String, socket: Int, reason: String)
        /// The tracks this node sends over a pipe changed: announce them to the far node.
        case pipeTracksChanged(id: String)
    }

    public let configuration: Configuration
    public internal(set) var counters = MediaServerCounters()
    var random: any RandomNumberGenerator
    var sessions: [String: Session] = [:]
    var byUfrag: [String: String] = [:]
    var byAddress: [SocketAddress: String] = [:]
    /// The session owning each room transport: one lookup per forwarded packet.
    var byTransport: [TransportID: Session] = [:]
    /// Buffers of sent datagrams, reused for forwarded copies (`recycle`).
    var spareBuffers: [[UInt8]] = []
    var rooms: [String: RoomState] = [:]
    var nextTransport: UInt64 = 1
    var roomOutputs: [RoomOutput] = []
    public internal(set) var events: [Event] = []
    /// Pipes by id, and the pipe sessions this node dialled by their local socket.
    var pipes: [String: Session] = [:]
    var pipeBySocket: [Int: Session] = [:]
    var lastRoomSweepAt: UInt64 = 0

    public init(configuration: Configuration, random: any RandomNumberGenerator = SystemRandomNumberGenerator()) {
        self.configuration = configuration
        self.random = random
    }

    // MARK: observation

    public var sessionCount: Int { sessions.count }
    public var roomCount: Int { rooms.count }
    public var producerCount: Int { rooms.values.reduce(0) { $0 + $1.producers.count } }
    public var consumerCount: Int { sessions.values.reduce(0) { $0 + $1.consumers.count } }
    public var pipeCount: Int { pipes.count }

    /// Room-core counters summed over live rooms plus those of rooms already gone.
    public var roomCounters: RoomCounters {
        rooms.values.reduce(retiredRoomCounters) { $0.adding($1.room.counters) }
    }
    var retiredRoomCounters = RoomCounters()

    /// Consumer statistics of a viewer session, in track order.
    public func consumerStats(session id: String) -> [ConsumerStats] {
        guard let s = sessions[id], let room = rooms[s.room] else { return [] }
        return s.consumers.compactMap { room.room.consumerStats($0.consumer) }
    }

    /// Memory estimate of a room's core, for the per-consumer target.
    public func memoryFootprint(room: String) -> MemoryFootprint? { rooms[room]?.room.memoryFootprint() }

    /// Events since the last call.
    public func takeEvents() -> [Event] {
        defer { events.removeAll() }
        return events
    }

    // MARK: signalling (WHIP / WHEP)

    /// A WHIP publisher: every audio/video m-section it sends becomes a producer of `room`.
    public func publish(room name: String, offer text: String, now: UInt64) throws(MediaServerError) -> MediaSessionCreated {
        let offer = try parse(text)
        let session = try makeSession(role: .publisher, room: name, offer: offer, now: now)
        let answer: SessionDescription
        do {
            answer = try SessionDescription.answer(to: offer, options: answerOptions(session, outgoing: [:], toSendRecv: .recvonly))
        } catch {
            counters.offersRejected += 1
            throw MediaServerError(.badOffer, error.message)
        }
        var producers: [PublishedTrack] = []
        var state = rooms[name] ?? RoomState(room: Room(configuration: configuration.room))
        state.room.addTransport(session.transport)
        for (index, m) in answer.media.enumerated() where m.port != 0 && m.direction?.receives == true {
            let offered = offer.media[index]
            do {
                let description = try ProducerDescription(section: offered, payloadType: m.codecs.first?.payloadType)
                let id = try state.room.addProducer(on: session.transport, description, into: &roomOutputs)
                producers.append(PublishedTrack(id: id, kind: description.kind, codec: m.codecs.first!,
                                                extmaps: offered.extmaps, rids: description.layers.compactMap(\.rid),
                                                key: "\(configuration.nodeTag)/\(name)/\(id.rawValue)"))
            } catch {
                state.room.removeTransport(session.transport, into: &roomOutputs)
                if state.isEmpty { retire(state) } else { rooms[name] = state }
                roomOutputs.removeAll()
                counters.offersRejected += 1
                throw MediaServerError(.badOffer, "m-section \(index) (\(offered.kind)): \(error.message)")
            }
        }
        guard !producers.isEmpty else {
            state.room.removeTransport(session.transport, into: &roomOutputs)
            if state.isEmpty { retire(state) } else { rooms[name] = state }
            roomOutputs.removeAll()
            counters.offersRejected += 1
            throw MediaServerError(.badOffer, "the offer sends no audio or video this server can receive (a WHIP offer needs sendonly or sendrecv m-sections)")
        }
        // Transport-wide feedback when the answer kept both the extension and the rtcp-fb.
        let twccURI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
        if let m = answer.media.first(where: { $0.port != 0 && $0.codecs.contains { $0.feedback.contains("transport-cc") } }),
           let ext = m.extmaps.first(where: { $0.uri == twccURI }), let id = UInt8(exactly: ext.id) {
            state.room.enableTransportWideFeedback(on: session.transport, extensionID: id)
        }
        state.producers += producers
        state.publishers.append(session.id)
        rooms[name] = state
        session.published = producers.map(\.id)
        register(session)
        roomOutputs.removeAll()
        syncPipes(room: name)
        return MediaSessionCreated(id: session.id, answer: answer.serialized, tracks: producers.count)
    }

    /// A WHEP viewer: each receiving m-section of its offer gets the next live producer of the
    /// same kind (in publication order) whose codec it offered. `rid` picks a simulcast layer
    /// for every simulcast producer (nil: the highest the bandwidth estimate allows).
    public func view(room name: String, offer text: String, rid: String?, now: UInt64) throws(MediaServerError) -> MediaSessionCreated {
        guard let state = rooms[name], !state.producers.isEmpty else {
            throw MediaServerError(.nothingPublished, "nothing is published in room '\(name)' yet")
        }
        let offer = try parse(text)
        let session = try makeSession(role: .viewer, room: name, offer: offer, now: now)
        // Assign producers to m-sections before answering, so the answer announces their SSRCs.
        var outgoing: [String: SDPOutgoingTrack] = [:]
        var plans: [String: PlannedConsumer] = [:]
        var taken = Set<ProducerID>()
        for m in offer.media where !m.isDisabled && m.effectiveDirection.receives {
            guard let mid = m.mid else { continue }
            guard let track = state.producers.first(where: { p in
                !taken.contains(p.id) && p.kind.rawValue == m.kind && m.codecs.contains { Self.sameCodec($0, p.codec) }
            }) else { continue }
            taken.insert(track.id)
            var layer: Int? = nil
            if let rid, !track.rids.isEmpty {
                guard let i = track.rids.firstIndex(of: rid) else {
                    throw MediaServerError(.badLayer, "rid '\(rid)' is not a layer of the room's \(track.kind.rawValue) track; it has \(track.rids)")
                }
                layer = i
            }
            let ssrc = randomSSRC(), rtx = randomSSRC()
            outgoing[mid] = SDPOutgoingTrack(ssrc: ssrc, rtxSSRC: rtx, cname: "drtc-\(name)", streamID: name, trackID: "\(track.kind.rawValue)-\(track.id.rawValue)")
            plans[mid] = PlannedConsumer(producer: track.id, ssrc: ssrc, rtxSSRC: rtx, layer: layer)
        }
        guard !plans.isEmpty else {
            counters.offersRejected += 1
            let kinds = state.producers.map { "\($0.kind.rawValue) \($0.codec.name)" }
            throw MediaServerError(.badOffer, "the offer receives none of the room's tracks \(kinds) (a WHEP offer needs recvonly or sendrecv m-sections with a matching codec)")
        }
        let answer: SessionDescription
        do {
            answer = try SessionDescription.answer(to: offer, options: answerOptions(session, outgoing: outgoing, toSendRecv: .sendonly))
        } catch {
            counters.offersRejected += 1
            throw MediaServerError(.badOffer, error.message)
        }
        for m in answer.media where m.port != 0 {
            guard let mid = m.mid, var plan = plans[mid], let track = state.producers.first(where: { $0.id == plan.producer }),
                  let codec = m.codecs.first(where: { Self.sameCodec($0, track.codec) }) else { continue }
            plan.payloadType = codec.payloadType
            plan.rtxPayloadType = m.codecs.first { $0.name.lowercased() == "rtx" && $0.parameters["apt"] == String(codec.payloadType) }?.payloadType
            plan.extensionIDs = ConsumerDescription.extensionIDMap(from: track.extmaps, to: m.extmaps)
            session.planned.append(plan)
        }
        rooms[name]!.viewers.append(session.id)
        rooms[name]!.room.addTransport(session.transport)
        register(session)
        return MediaSessionCreated(id: session.id, answer: answer.serialized, tracks: session.planned.count)
    }

    /// Ends a session (WHIP/WHEP DELETE). Returns false for an unknown id.
    @discardableResult
    public func close(session id: String, reason: String = "closed by client", now: UInt64, into out: inout [Datagram]) -> Bool {
        guard let s = sessions[id] else { return false }
        if let address = s.address, s.dtlsConnected || s.dtlsStarted {
            // close_notify, so the client learns at once rather than by consent timeout.
            for d in s.dtls.close(now: now).datagrams { send(d, to: address, via: s.via, into: &out) }
        }
        remove(s, reason: reason)
        return true
    }

    /// The role of a session, or nil.
    public func role(of id: String) -> (role: MediaSessionRole, room: String)? {
        sessions[id].map { ($0.role, $0.room) }
    }

    // MARK: datagrams

    /// One datagram from `source`.
    public func receive(_ datagram: [UInt8], from source: SocketAddress, now: UInt64, into out: inout [Datagram]) {
        var bytes = datagram
        receive(taking: &bytes, from: source, now: now, into: &out)
    }

    /// Same, taking the buffer over (SRTP is removed in place, without a copy); `datagram` is
    /// left empty.
    public func receive(taking datagram: inout [UInt8], from source: SocketAddress, via socket: Int = 0, now: UInt64,
                        into out: inout [Datagram]) {
        counters.datagramsIn += 1
        counters.bytesIn += datagram.count
        let kind = DatagramKind(classifying: datagram)
        if socket != 0 {
            receiveOnDialledPipe(&datagram, kind: kind, from: source, socket: socket, now: now, into: &out)
            return
        }
        switch kind {
        case .stun: receiveSTUN(datagram, from: source, now: now, into: &out)
        case .dtls:
            guard let s = session(at: source) else { return }
            s.dtlsStarted = true
            handle(s.dtls.receive(datagram: datagram, now: now), session: s, now: now, into: &out)
        case .rtp, .rtcp:
            guard let s = session(at: source) else { return }
            var packet: [UInt8] = []
            swap(&packet, &datagram)
            receiveMedia(packet, rtcp: kind == .rtcp, session: s, now: now, into: &out)
        default:
            counters.unknownKind += 1
        }
    }

    /// Timers: DTLS retransmissions, consent and handshake expiry, RTCP reports, layer switches.
    public func tick(now: UInt64, into out: inout [Datagram]) {
        var expired: [(Session, String)] = []
        for s in sessions.values {
            if let pipe = s.pipe, pipe.dialled {
                if let reason = tickDialledPipe(s, pipe, now: now, into: &out) { expired.append((s, reason)) }
                if let due = s.dtlsTimeout, now >= due {
                    handle(s.dtls.handleTimeout(now: now), session: s, now: now, into: &out)
                }
                continue
            }
            if s.ice.isExpired(now: now) {
                expired.append((s, "no ICE consent for \(configuration.consentTimeoutMs / 1000) s (RFC 7675)"))
                continue
            }
            if !s.dtlsConnected, now >= s.createdAt + configuration.handshakeTimeoutMs {
                expired.append((s, "no DTLS handshake within \(configuration.handshakeTimeoutMs / 1000) s"))
                continue
            }
            if let due = s.dtlsTimeout, now >= due {
                handle(s.dtls.handleTimeout(now: now), session: s, now: now, into: &out)
            }
        }
        for (s, reason) in expired {
            counters.sessionsExpired += 1
            remove(s, reason: reason)
        }
        for name in rooms.keys.sorted() {
            rooms[name]!.room.tick(now: Int64(now), into: &roomOutputs)
            flushRoomOutputs(room: name, into: &out)
        }
        tickRooms(now: now, into: &out)
    }

    // MARK: - internals

    struct PublishedTrack {
        var id: ProducerID
        var kind: MediaKind
        var codec: SDPCodec
        var extmaps: [SDPExtmap]
        var rids: [String]
        /// Names the track across pipes: `<origin nodeTag>/<room>/<producer on the origin>`.
        var key: String
    }

    struct PlannedConsumer {
        var producer: ProducerID
        var ssrc: UInt32
        var rtxSSRC: UInt32
        var layer: Int?
        var payloadType: UInt8 = 0
        var rtxPayloadType: UInt8?
        var extensionIDs: [UInt8: UInt8] = [:]
    }

    struct RoomState {
        var room: Room
        var producers: [PublishedTrack] = []
        var viewers: [String] = []
        /// WHIP sessions (their tracks are in `producers`, with mirrored ones).
        var publishers: [String] = []
        /// Pipe sessions (ids).
        var pipes: [String] = []
        /// An orchestrator opened the room (RPC); kept while empty until then.
        var reservedUntil: UInt64 = 0
        /// Since when the room has had no clients and exactly one pipe.
        var idleSince: UInt64?

        var isEmpty: Bool { producers.isEmpty && viewers.isEmpty && pipes.isEmpty }
    }

    final class Session {
        let id: String
        let role: MediaSessionRole
        let room: String
        let transport: TransportID
        var ice: ICELiteAgent
        let dtls: DTLSEndpoint
        let createdAt: UInt64
        var dtlsTimeout: UInt64?
        var dtlsStarted = false
        var dtlsConnected = false
        var srtpIn: SRTPSession?
        var srtpOut: SRTPSession?
        var address: SocketAddress?
        var published: [ProducerID] = []
        var planned: [PlannedConsumer] = []
        var consumers: [(consumer: ConsumerID, producer: ProducerID)] = []
        /// The local socket this session uses: 0, or a pipe's dialled socket.
        var via = 0
        var pipe: PipeState?

        init(id: String, role: MediaSessionRole, room: String, transport: TransportID, ice: ICELiteAgent, dtls: DTLSEndpoint, createdAt: UInt64) {
            self.id = id
            self.role = role
            self.room = room
            self.transport = transport
            self.ice = ice
            self.dtls = dtls
            self.createdAt = createdAt
        }
    }

    func parse(_ text: String) throws(MediaServerError) -> SessionDescription {
        do {
            return try SessionDescription(parsing: text)
        } catch {
            counters.offersRejected += 1
            throw MediaServerError(.badOffer, error.message)
        }
    }

    func makeSession(role: MediaSessionRole, room: String, offer: SessionDescription, now: UInt64) throws(MediaServerError) -> Session {
        guard sessions.count < configuration.maxSessions else {
            throw MediaServerError(.overloaded, "this node is at its limit of \(configuration.maxSessions) media sessions")
        }
        // The BUNDLE transport's credentials: those of the offerer-tagged section (RFC 8843
        // §7.3.1), which bundle-only sections share.
        guard let m = offer.offererTaggedSection(where: \.carriesRTPMedia)
                ?? offer.media.first(where: { $0.port != 0 && $0.carriesRTPMedia }) else {
            counters.offersRejected += 1
            throw MediaServerError(.badOffer, "the offer has no audio or video m-section with a port and an SRTP profile (UDP/TLS/RTP/SAVPF)")
        }
        guard let remoteUfrag = offer.iceUfrag(for: m), offer.icePwd(for: m) != nil else {
            counters.offersRejected += 1
            throw MediaServerError(.badOffer, "the offer has no a=ice-ufrag/a=ice-pwd (RFC 8839 §5.4)")
        }
        guard let fp = offer.fingerprints(for: m).first(where: { $0.hashFunction.lowercased() == "sha-256" }) else {
            counters.offersRejected += 1
            throw MediaServerError(.badOffer, "the offer has no a=fingerprint:sha-256 (RFC 8122 §5); this server checks the DTLS certificate against it")
        }
        let fingerprint: DTLSFingerprint
        do {
            fingerprint = try DTLSFingerprint(sdp: "\(fp.hashFunction) \(fp.value)")
        } catch {
            counters.offersRejected += 1
            throw MediaServerError(.badOffer, "a=fingerprint: \(error.message)")
        }
        let dtls: DTLSEndpoint
        do {
            dtls = try DTLSEndpoint(configuration: .init(role: .server, certificate: configuration.certificate,
                                                         remoteFingerprint: fingerprint, srtpProfiles: configuration.srtpProfiles))
        } catch {
            throw MediaServerError(.overloaded, "cannot create a DTLS endpoint: \(error.message)")
        }
        var ufrag = randomToken(8)
        while byUfrag[ufrag] != nil { ufrag = randomToken(8) }
        let ice = ICELiteAgent(localUfrag: ufrag, localPassword: randomToken(24), remoteUfrag: remoteUfrag,
                               configuration: .init(consentTimeoutMilliseconds: configuration.consentTimeoutMs), now: now)
        var id = randomToken(16)
        while sessions[id] != nil { id = randomToken(16) }
        let transport = TransportID(nextTransport)
        nextTransport += 1
        return Session(id: id, role: role, room: room, transport: transport, ice: ice, dtls: dtls, createdAt: now)
    }

    func answerOptions(_ s: Session, outgoing: [String: SDPOutgoingTrack], toSendRecv: SDPDirection) -> SDPAnswerOptions {
        SDPAnswerOptions(
            iceUfrag: s.ice.localUfrag, icePwd: s.ice.localPassword,
            fingerprint: SDPFingerprint(hashFunction: "sha-256", digest: configuration.certificate.fingerprint.bytes),
            candidates: configuration.candidates.enumerated().map { SDPCandidate(foundation: String($0.offset + 1), address: $0.element) },
            sessionID: random.next() >> 2, capabilities: configuration.capabilities,
            answerToSendRecv: toSendRecv, outgoingTracks: outgoing)
    }

    func register(_ s: Session) {
        sessions[s.id] = s
        byUfrag[s.ice.localUfrag] = s.id
        byTransport[s.transport] = s
        counters.sessionsCreated += 1
    }

    func remove(_ s: Session, reason: String) {
        sessions[s.id] = nil
        byUfrag[s.ice.localUfrag] = nil
        byTransport[s.transport] = nil
        if let a = s.address, byAddress[a] == s.id { byAddress[a] = nil }
        if let pipe = s.pipe {
            pipes[pipe.id] = nil
            if s.via != 0 { pipeBySocket[s.via] = nil }
        }
        if var state = rooms[s.room] {
            state.room.removeTransport(s.transport, into: &roomOutputs)
            state.producers.removeAll { s.published.contains($0.id) }
            state.viewers.removeAll { $0 == s.id }
            state.publishers.removeAll { $0 == s.id }
            state.pipes.removeAll { $0 == s.id }
            roomOutputs.removeAll()
            if state.isEmpty {
                retire(state)
                rooms[s.room] = nil
            } else {
                rooms[s.room] = state
            }
        }
        events.append(.sessionClosed(id: s.id, reason: reason))
        if let pipe = s.pipe { events.append(.pipeClosed(id: pipe.id, room: s.room, socket: s.via, reason: reason)) }
        if rooms[s.room] != nil { syncPipes(room: s.room) }
    }

    func retire(_ state: RoomState) {
        retiredRoomCounters = retiredRoomCounters.adding(state.room.counters)
    }

    func session(at source: SocketAddress) -> Session? {
        guard let id = byAddress[source], let s = sessions[id] else {
            counters.unknownSource += 1
            return nil
        }
        return s
    }

    func receiveSTUN(_ datagram: [UInt8], from source: SocketAddress, now: UInt64, into out: inout [Datagram]) {
        guard let ufrag = ICELiteAgent.localUfrag(of: datagram), let id = byUfrag[ufrag], let s = sessions[id] else {
            counters.stunUnknownUfrag += 1
            return
        }
        for action in s.ice.receive(datagram, from: source, now: now) {
            switch action {
            case .send(let bytes, let to):
                // RFC 8489 §5: class bits C1 (0x0100) and C0 (0x0010) of the message type.
                let type = bytes.count >= 2 ? UInt16(bytes[0]) << 8 | UInt16(bytes[1]) : 0
                if type & 0x0110 == 0x0110 {
                    counters.stunRejected += 1
                } else if s.address == nil, byAddress[source] == nil {
                    // RFC 8445 §7.3.1.4: an authenticated check makes a valid pair even before
                    // nomination, and some clients start DTLS right after the first success.
                    s.address = source
                    byAddress[source] = s.id
                }
                send(bytes, to: to, into: &out)
            case .drop:
                counters.stunRejected += 1
            case .nominated(let address), .selectedAddressChanged(_, let address):
                if let old = s.address, old != address, byAddress[old] == s.id { byAddress[old] = nil }
                s.address = address
                byAddress[address] = s.id
            }
        }
    }

    func handle(_ output: DTLSOutput, session s: Session, now: UInt64, into out: inout [Datagram]) {
        if let address = s.address {
            for d in output.datagrams { send(d, to: address, via: s.via, into: &out) }
        }
        s.dtlsTimeout = output.nextTimeout
        for event in output.events {
            switch event {
            case .connected(let keys):
                do {
                    s.srtpIn = try SRTPSession(profile: keys.profile, key: keys.remoteKey, salt: keys.remoteSalt, direction: .inbound)
                    s.srtpOut = try SRTPSession(profile: keys.profile, key: keys.localKey, salt: keys.localSalt, direction: .outbound)
                } catch {
                    counters.sessionsFailed += 1
                    remove(s, reason: "SRTP set-up failed: \(error)")
                    return
                }
                s.dtlsConnected = true
                events.append(.sessionConnected(id: s.id, role: s.role, room: s.room, profile: keys.profile))
                if let pipe = s.pipe {
                    pipe.connected = true
                    events.append(.pipeConnected(id: pipe.id, room: s.room))
                }
                startConsumers(s, now: now, into: &out)
            case .failed(let error):
                counters.dtlsFailures += 1
                counters.sessionsFailed += 1
                remove(s, reason: "DTLS failed: \(error.message)")
                return
            case .closed:
                counters.sessionsClosedByClient += 1
                remove(s, reason: "DTLS close_notify from the client")
                return
            case .alert, .applicationData:
                break
            }
        }
    }

    /// Consumers start once SRTP is up, so the first keyframe is not wasted on a transport that
    /// cannot send yet.
    func startConsumers(_ s: Session, now: UInt64, into out: inout [Datagram]) {
        guard s.role == .viewer, rooms[s.room] != nil else { return }
        for plan in s.planned {
            let description = ConsumerDescription(
                ssrc: plan.ssrc, payloadType: plan.payloadType, rtxSSRC: plan.rtxPayloadType == nil ? nil : plan.rtxSSRC,
                rtxPayloadType: plan.rtxPayloadType, extensionIDs: plan.extensionIDs,
                initialSequenceNumber: UInt16.random(in: 0...UInt16.max, using: &random),
                initialTimestamp: UInt32.random(in: 0...UInt32.max, using: &random), preferredLayer: plan.layer,
                followsBandwidthEstimate: plan.layer == nil)
            // The producer may have left since the offer; its m-section then stays silent.
            if let c = try? rooms[s.room]!.room.addConsumer(on: s.transport, of: plan.producer, description, now: Int64(now), into: &roomOutputs) {
                s.consumers.append((c, plan.producer))
            }
        }
        s.planned = []
        flushRoomOutputs(room: s.room, into: &out)
    }

    /// SRTP or SRTCP from a session: decrypted once, then into the room.
    func receiveMedia(_ datagram: consuming [UInt8], rtcp: Bool, session s: Session, now: UInt64, into out: inout [Datagram]) {
        guard let srtp = s.srtpIn else {
            counters.notReady += 1
            return
        }
        var packet = datagram
        do {
            if rtcp { try srtp.unprotectRTCP(&packet) } else { try srtp.unprotect(srtp: &packet) }
        } catch {
            counters.srtpUnprotectFailures += 1
            return
        }
        // Only packets that pass SRTP authentication (and its replay window) from the session's
        // address count: a forged or replayed datagram does not keep a session alive.
        s.ice.noteAuthenticatedMedia(now: now)
        if rtcp {
            counters.rtcpIn += 1
            rooms[s.room]?.room.receiveRTCP(from: s.transport, packet, now: Int64(now), into: &roomOutputs)
        } else {
            counters.rtpIn += 1
            s.pipe?.rtpIn += 1
            rooms[s.room]?.room.receiveRTP(from: s.transport, packet, now: Int64(now), into: &roomOutputs, reusing: &spareBuffers)
        }
        flushRoomOutputs(room: s.room, into: &out)
    }

    func flushRoomOutputs(room: String, into out: inout [Datagram]) {
        var layersBound = false
        defer { if layersBound { syncPipes(room: room) } }
        // Each packet is taken out of the list before it is protected, so that it is the only
        // reference to its buffer and the SRTP tag is appended in place: iterating the list
        // would hold a second reference and every append would copy the packet.
        var outputs: [RoomOutput] = []
        swap(&outputs, &roomOutputs)
        outputs.reverse()
        while let output = outputs.popLast() {
            switch consume output {
            case .sendRTP(let t, let bytes):
                protectAndSend(bytes, on: t, rtcp: false, into: &out)
            case .sendRTCP(let t, let bytes):
                protectAndSend(bytes, on: t, rtcp: true, into: &out)
            case .event(.layerSwitched(let c, let from, let to)):
                events.append(.layerSwitched(room: room, consumer: c, from: from, to: to))
            case .event(.layerBound):
                layersBound = true
            case .event:
                break
            }
        }
        swap(&outputs, &roomOutputs)  // keeps the list's capacity
    }

    func protectAndSend(_ packet: consuming [UInt8], on t: TransportID, rtcp: Bool, into out: inout [Datagram]) {
        guard let s = byTransport[t], let srtp = s.srtpOut, let a = s.address else {
            counters.notReady += 1
            return
        }
        var bytes = packet
        do {
            if rtcp { try srtp.protectRTCP(&bytes) } else { try srtp.protect(rtp: &bytes) }
        } catch {
            counters.srtpProtectFailures += 1
            return
        }
        if rtcp { counters.rtcpOut += 1 } else {
            counters.rtpOut += 1
            s.pipe?.rtpOut += 1
        }
        send(bytes, to: a, via: s.via, into: &out)
    }

    /// Takes back the buffers of datagrams the shell has sent, for the next forwarded copies
    /// (`Room.receiveRTP(…reusing:)`), and empties `datagrams` (keeping its capacity). At most
    /// `maxSpareBuffers` are kept, and only media-sized ones (RTCP buffers are small).
    public func recycle(_ datagrams: inout [Datagram]) {
        for i in datagrams.indices where spareBuffers.count < Self.maxSpareBuffers && datagrams[i].bytes.capacity >= 1_024 {
            var buffer: [UInt8] = []
            swap(&buffer, &datagrams[i].bytes)
            spareBuffers.append(buffer)
        }
        datagrams.removeAll(keepingCapacity: true)
    }

    static let maxSpareBuffers = 1_024

    func send(_ bytes: [UInt8], to address: SocketAddress, via socket: Int = 0, into out: inout [Datagram]) {
        counters.datagramsOut += 1
        counters.bytesOut += bytes.count
        out.append(Datagram(bytes: bytes, to: address, via: socket))
    }

    /// Same codec for forwarding purposes: name and clock rate, and for H.264 the profile.
    static func sameCodec(_ a: SDPCodec, _ b: SDPCodec) -> Bool {
        guard a.name.lowercased() == b.name.lowercased(), a.clockRate == b.clockRate else { return false }
        if a.name.lowercased() == "h264" {
            let pa = a.parameters, pb = b.parameters
            return pa["packetization-mode"] == pb["packetization-mode"]
                && pa["profile-level-id"]?.prefix(4).lowercased() == pb["profile-level-id"]?.prefix(4).lowercased()
        }
        return true
    }

    func randomSSRC() -> UInt32 { UInt32.random(in: 1...UInt32.max, using: &random) }

    /// ice-chars (RFC 8839 §5.4) from a base-62 alphabet; 24 chars ≈ 143 bits for passwords.
    func randomToken(_ length: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        return String(decoding: (0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &random)] }, as: UTF8.self)
    }
}

extension RoomCounters {
    /// Field-wise sum, for totals across rooms.
    func adding(_ o: RoomCounters) -> RoomCounters {
        var r = self
        r.rtpReceived += o.rtpReceived
        r.rtpForwarded += o.rtpForwarded
        r.rtcpReceived += o.rtcpReceived
        r.rtcpSent += o.rtcpSent
        r.malformedRTP += o.malformedRTP
        r.malformedRTCP += o.malformedRTCP
        r.unknownSSRC += o.unknownSSRC
        r.unknownTransport += o.unknownTransport
        r.duplicateRTP += o.duplicateRTP
        r.unexpectedPayloadType += o.unexpectedPayloadType
        r.sequenceJump += o.sequenceJump
        r.publisherRTXDropped += o.publisherRTXDropped
        r.nackedPackets += o.nackedPackets
        r.retransmitted += o.retransmitted
        r.nackUnknownOrTooOld += o.nackUnknownOrTooOld
        r.nackRateLimited += o.nackRateLimited
        r.keyframeRequestsFromConsumers += o.keyframeRequestsFromConsumers
        r.keyframeRequestsSent += o.keyframeRequestsSent
        r.keyframeRequestsSuppressed += o.keyframeRequestsSuppressed
        r.layerSwitches += o.layerSwitches
        r.nacksSentUpstream += o.nacksSentUpstream
        return r
    }
}
