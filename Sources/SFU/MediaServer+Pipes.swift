// Node-to-node pipes (Specs/media.md "Pipes"): one ICE + DTLS-SRTP association per node pair per
// room, built with this engine's own stack. The node that dials is the ICE-controlling DTLS
// client (like `MediaClient`) on a socket of its own; the other is the ICE-lite DTLS server on
// its media port, as for WHIP/WHEP. Every producer of the room crosses, each as a mirrored
// producer on the far node with its SSRCs and all its layers (relay consumers forward verbatim);
// what crosses is announced by the sender as a list of `PipeTrack`s, carried by signed RPC.
// There is no congestion control on pipes: the orchestrator budgets capacity.
import Identity
import RTC

/// ICE and DTLS parameters of one end of a pipe (exchanged by signed RPC, Specs/rpc.md).
public struct PipeParameters: Codable, Hashable, Sendable {
    public var ufrag: String
    public var password: String
    /// `sha-256 AB:CD:…` of the end's DTLS certificate.
    public var fingerprint: String
    /// `ip:port` host candidates.
    public var candidates: [String]

    public init(ufrag: String, password: String, fingerprint: String, candidates: [String]) {
        self.ufrag = ufrag
        self.password = password
        self.fingerprint = fingerprint
        self.candidates = candidates
    }
}

/// A producer as it crosses a pipe: enough for the far node to mirror it and to answer WHEP
/// offers for it.
public struct PipeTrack: Codable, Hashable, Sendable {
    public struct Layer: Codable, Hashable, Sendable {
        public var rid: String?
        /// Nil until the origin learned it from the first packet carrying the layer's rid.
        public var ssrc: UInt32?
    }
    public struct Extmap: Codable, Hashable, Sendable {
        public var id: UInt16
        public var uri: String
    }

    /// `<origin node>/<room>/<producer>`: stable along the whole cascade.
    public var key: String
    public var kind: String
    public var codec: String
    public var clockRate: UInt32
    public var channels: UInt8?
    public var fmtp: String?
    public var payloadType: UInt8
    /// Lowest to highest quality.
    public var layers: [Layer]
    public var extmaps: [Extmap]
    public var mid: String?

    public static let maxTracks = 64
}

/// The state of one pipe, owned by its session.
final class PipeState {
    let id: String
    /// The far node (its PeerID).
    let peer: String
    /// True on the node that dialled: ICE-controlling, DTLS client, own socket.
    let dialled: Bool
    let remoteUfrag: String
    let remotePassword: [UInt8]
    let remoteAddress: SocketAddress?
    let createdAt: UInt64
    var lastCheckAt: UInt64 = 0
    var lastResponseAt: UInt64?
    var connected = false
    /// Our producers relayed over the pipe.
    var relays: [ProducerID: ConsumerID] = [:]
    /// The far node's tracks, mirrored here.
    var mirrored: [String: ProducerID] = [:]
    var announced: [PipeTrack]?
    var announcedVersion: UInt64 = 0
    var receivedVersion: UInt64 = 0
    var rtpIn = 0
    var rtpOut = 0

    init(id: String, peer: String, dialled: Bool, remoteUfrag: String, remotePassword: [UInt8], remoteAddress: SocketAddress?, createdAt: UInt64) {
        self.id = id
        self.peer = peer
        self.dialled = dialled
        self.remoteUfrag = remoteUfrag
        self.remotePassword = remotePassword
        self.remoteAddress = remoteAddress
        self.createdAt = createdAt
    }
}

/// One pipe in a node's status (RPC `GET /rpc/v1/status`, `GET /rooms/{room}`).
public struct PipeStatus: Codable, Hashable, Sendable {
    public var id: String
    public var peer: String
    /// This node dialled (ICE-controlling DTLS client); else it accepted.
    public var dialled: Bool
    public var connected: Bool
    /// Tracks mirrored here from the far node / relayed to it.
    public var tracksIn: Int
    public var tracksOut: Int
    public var rtpIn: Int
    public var rtpOut: Int
}

/// One room on this node.
public struct RoomStatus: Codable, Hashable, Sendable {
    public var room: String
    /// WHIP and WHEP sessions.
    public var publishers: Int
    public var viewers: Int
    /// Producers, local and mirrored.
    public var tracks: Int
    public var pipes: [PipeStatus]
}

extension MediaServer {
    // MARK: signalling

    /// ICE credentials, fingerprint and candidates for a pipe this node is about to dial from a
    /// socket bound at `candidate`.
    public func newPipeParameters(candidate: SocketAddress) -> PipeParameters {
        PipeParameters(ufrag: randomToken(8), password: randomToken(24),
                       fingerprint: configuration.certificate.fingerprint.sdpValue,
                       candidates: [candidate.description])
    }

    /// Opens one end of pipe `id` of `room` to node `peer`. The accepting end (`socket == nil`)
    /// answers on the media port as an ICE-lite DTLS server and returns its parameters; the
    /// dialling end passes the socket it dials from and the `local` parameters it sent, and
    /// starts connectivity checks on the next tick. `tracks` are the far node's.
    @discardableResult
    public func openPipe(room: String, id: String, peer: String, remote: PipeParameters, local: PipeParameters? = nil,
                         socket: Int? = nil, tracks: [PipeTrack], now: UInt64) throws(MediaServerError) -> PipeParameters {
        guard pipes[id] == nil else { throw MediaServerError(.badOffer, "pipe \(id) exists already") }
        if let other = rooms[room]?.pipes.compactMap({ sessions[$0]?.pipe }).first(where: { $0.peer == peer }) {
            throw MediaServerError(.badOffer, "room \(room) already has pipe \(other.id) to \(peer): one pipe per node pair per room")
        }
        guard sessions.count < configuration.maxSessions else {
            throw MediaServerError(.overloaded, "this node is at its limit of \(configuration.maxSessions) media sessions")
        }
        let fingerprint: DTLSFingerprint
        do { fingerprint = try DTLSFingerprint(sdp: remote.fingerprint) } catch {
            throw MediaServerError(.badOffer, "fingerprint: \(error.message)")
        }
        guard (4...256).contains(remote.ufrag.utf8.count), (22...256).contains(remote.password.utf8.count) else {
            throw MediaServerError(.badOffer, "ICE ufrag must be 4–256 and password 22–256 characters (RFC 8839 §5.4)")
        }
        let dialled = socket != nil
        var remoteAddress: SocketAddress?
        if dialled {
            guard let first = remote.candidates.first, let address = Self.parseCandidate(first) else {
                throw MediaServerError(.badOffer, "the accepting end gave no usable ip:port candidate")
            }
            remoteAddress = address
        }
        let dtls: DTLSEndpoint
        do {
            dtls = try DTLSEndpoint(configuration: .init(role: dialled ? .client : .server, certificate: configuration.certificate,
                                                         remoteFingerprint: fingerprint, srtpProfiles: configuration.srtpProfiles))
        } catch {
            throw MediaServerError(.overloaded, "cannot create a DTLS endpoint: \(error.message)")
        }
        let mine = local ?? PipeParameters(ufrag: uniqueUfrag(), password: randomToken(24),
                                           fingerprint: configuration.certificate.fingerprint.sdpValue,
                                           candidates: configuration.candidates.map(\.description))
        let ice = ICELiteAgent(localUfrag: mine.ufrag, localPassword: mine.password, remoteUfrag: remote.ufrag,
                               configuration: .init(consentTimeoutMilliseconds: configuration.consentTimeoutMs), now: now)
        let transport = TransportID(nextTransport)
        nextTransport += 1
        let s = Session(id: "pipe-" + id, role: .pipe, room: room, transport: transport, ice: ice, dtls: dtls, createdAt: now)
        s.pipe = PipeState(id: id, peer: peer, dialled: dialled, remoteUfrag: remote.ufrag, remotePassword: Array(remote.password.utf8),
                           remoteAddress: remoteAddress, createdAt: now)
        var state = rooms[room] ?? RoomState(room: Room(configuration: configuration.room))
        state.room.addPipeTransport(transport)
        state.pipes.append(s.id)
        rooms[room] = state
        if let socket {
            s.via = socket
            s.address = remoteAddress
            pipeBySocket[socket] = s
        }
        sessions[s.id] = s
        byTransport[transport] = s
        if !dialled { byUfrag[ice.localUfrag] = s.id }
        counters.sessionsCreated += 1
        pipes[id] = s
        applyTracks(tracks, to: s)
        syncPipes(room: room)
        return mine
    }

    /// The far node's current tracks on pipe `id` (a full list; older versions are ignored).
    /// Returns false for an unknown pipe.
    @discardableResult
    public func setPipeTracks(id: String, version: UInt64, tracks: [PipeTrack]) -> Bool {
        guard let s = pipes[id], let pipe = s.pipe else { return false }
        guard version > pipe.receivedVersion else { return true }
        pipe.receivedVersion = version
        applyTracks(tracks, to: s)
        syncPipes(room: s.room)
        return true
    }

    /// What this node sends over pipe `id` now, with a new version number; nil for an unknown pipe.
    public func pipeAnnouncement(id: String) -> (version: UInt64, tracks: [PipeTrack], peer: String)? {
        guard let s = pipes[id], let pipe = s.pipe else { return nil }
        let tracks = outgoingTracks(of: s)
        pipe.announced = tracks
        pipe.announcedVersion += 1
        return (pipe.announcedVersion, tracks, pipe.peer)
    }

    /// Ends pipe `id` (DTLS close_notify to the far node). False if unknown.
    @discardableResult
    public func closePipe(id: String, reason: String, now: UInt64, into out: inout [Datagram]) -> Bool {
        guard let s = pipes[id] else { return false }
        return close(session: s.id, reason: reason, now: now, into: &out)
    }

    /// Ends the pipe this node dialled from local socket `socket` (the socket failed). Its id,
    /// or nil when no pipe uses the socket.
    @discardableResult
    public func closeDialledPipe(socket: Int, reason: String, now: UInt64, into out: inout [Datagram]) -> String? {
        guard let s = pipeBySocket[socket], let id = s.pipe?.id else { return nil }
        close(session: s.id, reason: reason, now: now, into: &out)
        return id
    }

    /// An orchestrator placed clients here (RPC): the room exists, empty, until `until`.
    public func reserveRoom(_ name: String, until: UInt64) {
        var state = rooms[name] ?? RoomState(room: Room(configuration: configuration.room))
        state.reservedUntil = max(state.reservedUntil, until)
        rooms[name] = state
    }

    /// Ends every session and pipe of a room (RPC close room). Returns how many.
    public func closeRoom(_ name: String, now: UInt64, into out: inout [Datagram]) -> Int {
        let ids = sessions.values.filter { $0.room == name }.map(\.id)
        for id in ids { close(session: id, reason: "room closed by an orchestrator", now: now, into: &out) }
        if let state = rooms[name], state.isEmpty {
            retire(state)
            rooms[name] = nil
        }
        return ids.count
    }

    public var roomNames: [String] { rooms.keys.sorted() }

    /// The far node of pipe `id`.
    public func pipePeer(_ id: String) -> String? { pipes[id]?.pipe?.peer }

    public func roomStatus(_ name: String) -> RoomStatus? {
        guard let state = rooms[name] else { return nil }
        let pipeStatus = state.pipes.compactMap { sessions[$0] }.compactMap { s -> PipeStatus? in
            guard let p = s.pipe else { return nil }
            return PipeStatus(id: p.id, peer: p.peer, dialled: p.dialled, connected: p.connected, tracksIn: p.mirrored.count,
                              tracksOut: p.relays.count, rtpIn: p.rtpIn, rtpOut: p.rtpOut)
        }
        return RoomStatus(room: name, publishers: state.publishers.count, viewers: state.viewers.count,
                          tracks: state.producers.count, pipes: pipeStatus)
    }

    // MARK: internals

    /// `192.0.2.1:3478` or `[2001:db8::1]:3478`.
    static func parseCandidate(_ text: String) -> SocketAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return SocketAddress(host, port: port)
    }

    func uniqueUfrag() -> String {
        var ufrag = randomToken(8)
        while byUfrag[ufrag] != nil { ufrag = randomToken(8) }
        return ufrag
    }

    /// Relays every producer of the room that did not come in over a pipe onto it, and tells
    /// the shell which pipes' announcements changed.
    func syncPipes(room name: String) {
        guard let state = rooms[name], !state.pipes.isEmpty else { return }
        let producers = state.room.producerTransports
        for sid in state.pipes {
            guard let s = sessions[sid], let pipe = s.pipe else { continue }
            for (pid, transport) in producers where transport != s.transport && pipe.relays[pid] == nil {
                if let c = try? rooms[name]!.room.addRelayConsumer(on: s.transport, of: pid) { pipe.relays[pid] = c }
            }
            let live = Set(producers.map(\.0))
            pipe.relays = pipe.relays.filter { live.contains($0.key) }
            if outgoingTracks(of: s) != pipe.announced { events.append(.pipeTracksChanged(id: pipe.id)) }
        }
    }

    /// The room's producers that did not come in over this pipe, as tracks.
    func outgoingTracks(of s: Session) -> [PipeTrack] {
        guard let state = rooms[s.room] else { return [] }
        var out: [PipeTrack] = []
        for (pid, transport) in state.room.producerTransports where transport != s.transport {
            guard let t = state.producers.first(where: { $0.id == pid }), let d = state.room.currentDescription(pid) else { continue }
            out.append(PipeTrack(
                key: t.key, kind: t.kind.rawValue, codec: t.codec.name, clockRate: t.codec.clockRate, channels: t.codec.channels,
                fmtp: t.codec.formatParameters, payloadType: d.payloadType,
                layers: d.layers.map { PipeTrack.Layer(rid: $0.rid, ssrc: $0.ssrc) },
                extmaps: t.extmaps.map { PipeTrack.Extmap(id: $0.id, uri: $0.uri) }, mid: d.mid))
        }
        return out
    }

    /// Mirrors the far node's tracks on the pipe's transport: new ones become producers, gone
    /// ones are removed, layers that learned their SSRC are bound. A track that originated here
    /// or already reaches this room another way is ignored (no loops, no duplicates).
    func applyTracks(_ tracks: [PipeTrack], to s: Session) {
        guard let pipe = s.pipe, var state = rooms[s.room] else { return }
        let wanted = tracks.prefix(PipeTrack.maxTracks)
        let keys = Set(wanted.map(\.key))
        for (key, pid) in pipe.mirrored where !keys.contains(key) {
            state.room.removeProducer(pid, into: &roomOutputs)
            state.producers.removeAll { $0.id == pid }
            s.published.removeAll { $0 == pid }
            pipe.mirrored[key] = nil
        }
        for track in wanted {
            if let pid = pipe.mirrored[track.key] {
                for (i, layer) in track.layers.enumerated() {
                    if let ssrc = layer.ssrc { state.room.bindLayer(pid, layer: i, ssrc: ssrc, into: &roomOutputs) }
                }
                continue
            }
            guard !track.key.hasPrefix(configuration.nodeTag + "/"), !state.producers.contains(where: { $0.key == track.key }),
                  let (description, published) = Self.mirror(track) else { continue }
            guard let pid = try? state.room.addProducer(on: s.transport, description, into: &roomOutputs) else { continue }
            var p = published
            p.id = pid
            state.producers.append(p)
            s.published.append(pid)
            pipe.mirrored[track.key] = pid
        }
        rooms[s.room] = state
        roomOutputs.removeAll()
    }

    /// A producer description and a publication record for a mirrored track; nil when the
    /// track is not one this engine forwards.
    static func mirror(_ t: PipeTrack) -> (ProducerDescription, PublishedTrack)? {
        guard let kind = MediaKind(rawValue: t.kind), (1...8).contains(t.layers.count), t.key.utf8.count <= 256,
              t.codec.utf8.count <= 32, t.clockRate > 0, t.payloadType < 128, t.extmaps.count <= 16,
              t.extmaps.allSatisfy({ (1...255).contains($0.id) && $0.uri.utf8.count <= 256 }) else { return nil }
        let extmaps = t.extmaps.map { SDPExtmap(id: $0.id, uri: $0.uri) }
        func extID(_ uri: String) -> UInt8? { extmaps.first { $0.uri == uri }.flatMap { UInt8(exactly: $0.id) } }
        let description = ProducerDescription(
            kind: kind, codec: CodecFamily(encodingName: t.codec), payloadType: t.payloadType, clockRate: t.clockRate,
            layers: t.layers.map { ProducerLayerDescription(rid: $0.rid, ssrc: $0.ssrc) },
            ridExtensionID: extID(ProducerDescription.ridURI), repairedRidExtensionID: extID(ProducerDescription.repairedRidURI),
            mid: t.mid, midExtensionID: extID(ProducerDescription.midURI))
        let codec = SDPCodec(payloadType: t.payloadType, name: t.codec, clockRate: t.clockRate, channels: t.channels, formatParameters: t.fmtp)
        return (description, PublishedTrack(id: ProducerID(0), kind: kind, codec: codec, extmaps: extmaps,
                                            rids: t.layers.compactMap(\.rid), key: t.key))
    }

    /// Datagrams on a pipe's own socket: only from the far node's candidate.
    func receiveOnDialledPipe(_ datagram: inout [UInt8], kind: DatagramKind, from source: SocketAddress, socket: Int, now: UInt64,
                              into out: inout [Datagram]) {
        guard let s = pipeBySocket[socket], let pipe = s.pipe, source == pipe.remoteAddress else {
            counters.unknownSource += 1
            return
        }
        switch kind {
        case .stun:
            // RFC 8445 §7.2.5: a success response, authenticated with the far end's password.
            guard let m = try? STUNMessage(decoding: datagram), m.messageClass == .successResponse,
                  STUNMessage.checkIntegrity(datagram[...], key: pipe.remotePassword) == .valid else {
                counters.stunRejected += 1
                return
            }
            pipe.lastResponseAt = now
            if !s.dtlsStarted {
                s.dtlsStarted = true
                handle(s.dtls.start(now: now), session: s, now: now, into: &out)
            }
        case .dtls:
            handle(s.dtls.receive(datagram: datagram, now: now), session: s, now: now, into: &out)
        case .rtp, .rtcp:
            var packet: [UInt8] = []
            swap(&packet, &datagram)
            receiveMedia(packet, rtcp: kind == .rtcp, session: s, now: now, into: &out)
        default:
            counters.unknownKind += 1
        }
    }

    /// Connectivity checks and consent (RFC 7675) for a pipe this node dialled: every 200 ms
    /// until the far end answers, then every 2.5 s. Returns a reason when the pipe is dead.
    func tickDialledPipe(_ s: Session, _ pipe: PipeState, now: UInt64, into out: inout [Datagram]) -> String? {
        let last = pipe.lastResponseAt ?? pipe.createdAt
        if now >= last + configuration.consentTimeoutMs {
            return pipe.lastResponseAt == nil ? "the far node never answered connectivity checks" : "no ICE consent for \(configuration.consentTimeoutMs / 1000) s (RFC 7675)"
        }
        if !s.dtlsConnected, now >= s.createdAt + configuration.handshakeTimeoutMs {
            return "no DTLS handshake within \(configuration.handshakeTimeoutMs / 1000) s"
        }
        let interval: UInt64 = pipe.lastResponseAt == nil ? 200 : 2500
        if let address = pipe.remoteAddress, now >= pipe.lastCheckAt + interval {
            pipe.lastCheckAt = now
            let check = MediaClient.bindingRequest(serverUfrag: pipe.remoteUfrag, clientUfrag: s.ice.localUfrag,
                                                   serverPassword: pipe.remotePassword, random: &random).datagram
            send(check, to: address, via: s.via, into: &out)
        }
        return nil
    }

    /// Once a second: reservations that lapsed, and pipes left idle (a room with no clients
    /// here and one pipe: nobody on this side needs it).
    func tickRooms(now: UInt64, into out: inout [Datagram]) {
        guard now >= lastRoomSweepAt + 1000 else { return }
        lastRoomSweepAt = now
        for name in rooms.keys.sorted() {
            guard var state = rooms[name] else { continue }
            if state.isEmpty, state.reservedUntil <= now {
                retire(state)
                rooms[name] = nil
                continue
            }
            let idle = state.publishers.isEmpty && state.viewers.isEmpty && state.pipes.count == 1 && state.reservedUntil <= now
            guard idle else {
                if state.idleSince != nil { state.idleSince = nil; rooms[name] = state }
                continue
            }
            guard let since = state.idleSince else { state.idleSince = now; rooms[name] = state; continue }
            if now >= since + configuration.idlePipeTimeoutMs, let sid = state.pipes.first {
                close(session: sid, reason: "idle: no clients in room \(name) on this node", now: now, into: &out)
            }
        }
    }
}
