// The media node's one UDP port (DESIGN.md "Media I/O"): a NIO datagram channel whose event
// loop owns the sans-I/O `MediaServer`. Every datagram, timer tick and signalling call runs on
// that loop, so the server needs no lock on the packet path; writes produced by one read batch
// are flushed together (sendmmsg).
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTC
import SFU
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Totals for /metrics, refreshed by the loop on every tick.
public struct MediaSnapshot: Sendable {
    public var counters = MediaServerCounters()
    public var room = RoomCounters()
    public var sessions = 0
    public var rooms = 0
    public var producers = 0
    public var consumers = 0
    public var pipes = 0
    public init() {}
}

public final class MediaEngine: Sendable {
    public let localAddress: RTC.SocketAddress
    private let channel: any Channel
    private let server: NIOLoopBound<MediaServer>
    private let snapshotBox = Mutex(MediaSnapshot())
    private let clock: MediaClock
    private let logger: Logger
    private let ticker: NIOLockedValueBox<RepeatedTask?> = .init(nil)
    /// Sockets of the pipes this node dialled, by the number the server knows them by.
    private let pipeChannels: NIOLoopBoundBox<[Int: any Channel]>
    private let nextPipeSocket: NIOLoopBoundBox<Int>
    private let host: String
    private let eventSink: NIOLockedValueBox<(@Sendable (MediaServer.Event) -> Void)?> = .init(nil)

    /// Binds `host:port` (port 0: any) and starts the server's timers. `announce` replaces the
    /// bound address in answers' candidates (e.g. a public address in front of a NAT).
    public static func start(host: String, port: Int, group: any EventLoopGroup, certificate: DTLSCertificate,
                             announce: [RTC.SocketAddress]? = nil, configure: (inout MediaServer.Configuration) -> Void = { _ in },
                             logger: Logger) async throws -> MediaEngine {
        let loop = group.next()
        let handler = MediaChannelHandler(logger: logger)
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            // recvmmsg: NIO splits one receive buffer evenly among the vector's messages, so it
            // must hold 64 full datagrams (a smaller one silently truncates every packet).
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 64 * 2048))
            .channelOption(.datagramVectorReadMessageCount, value: 64)
            .channelInitializer { channel in channel.pipeline.addHandler(handler) }
            .bind(host: host, port: port).get()
        guard let bound = channel.localAddress, let local = RTC.SocketAddress(nio: bound) else {
            try? await channel.close()
            throw MediaServerError(.overloaded, "--media \(host):\(port): bound to an address that is not IPv4/IPv6")
        }
        var config = MediaServer.Configuration(candidates: announce ?? [local], certificate: certificate)
        configure(&config)
        let engine = try await loop.submit {
            let server = MediaServer(configuration: config)
            handler.server = server
            return MediaEngine(channel: channel, server: NIOLoopBound(server, eventLoop: loop), local: local, host: host, logger: logger)
        }.get()
        handler.engine = engine
        engine.startTicking(every: config.tickIntervalMs)
        logger.notice("media listening", metadata: ["udp": "\(local)", "srtpProfiles": "\(config.srtpProfiles.map(\.rawValue))",
                                                     "libsrtp": "\(SRTPLibrary.version)"])
        return engine
    }

    private init(channel: any Channel, server: NIOLoopBound<MediaServer>, local: RTC.SocketAddress, host: String, logger: Logger) {
        self.channel = channel
        self.server = server
        self.localAddress = local
        self.host = host
        self.logger = logger
        self.clock = MediaClock()
        self.addressCache = NIOLoopBoundBox([:], eventLoop: channel.eventLoop)
        self.pipeChannels = NIOLoopBoundBox([:], eventLoop: channel.eventLoop)
        self.nextPipeSocket = NIOLoopBoundBox(1, eventLoop: channel.eventLoop)
    }

    /// Pipe events (connected, closed, tracks changed) go to `sink`, on the engine's loop.
    public func onEvent(_ sink: @escaping @Sendable (MediaServer.Event) -> Void) {
        eventSink.withLockedValue { $0 = sink }
    }

    /// Milliseconds on the server's clock: Unix time at start plus monotonic time since.
    var now: UInt64 { clock.nowMs() }

    // MARK: signalling

    public func publish(room: String, offer: String) async throws -> MediaSessionCreated {
        try await onLoop { server, now, _ in try server.publish(room: room, offer: offer, now: now) }
    }

    public func view(room: String, offer: String, rid: String?) async throws -> MediaSessionCreated {
        try await onLoop { server, now, _ in try server.view(room: room, offer: offer, rid: rid, now: now) }
    }

    /// Ends a session; false when it does not exist (or belongs to another room or role).
    public func close(session id: String, room: String, role: MediaSessionRole) async -> Bool {
        (try? await onLoop { server, now, out in
            guard let owner = server.role(of: id), owner.room == room, owner.role == role else { return false }
            return server.close(session: id, now: now, into: &out)
        }) ?? false
    }

    /// Per-consumer statistics of a viewer session (tests and benchmarks).
    public func consumerStats(session id: String) async -> [ConsumerStats] {
        (try? await onLoop { server, _, _ in server.consumerStats(session: id) }) ?? []
    }

    public func memoryFootprint(room: String) async -> MemoryFootprint? {
        (try? await onLoop { server, _, _ in server.memoryFootprint(room: room) }) ?? nil
    }

    public var snapshot: MediaSnapshot { snapshotBox.withLock { $0 } }

    // MARK: pipes and rooms (Specs/media.md "Pipes")

    /// Binds a socket for a pipe this node dials (same host as the media port, any port) and
    /// returns the parameters to send to the accepting node.
    public func preparePipe() async throws -> (socket: Int, parameters: PipeParameters) {
        let loop = channel.eventLoop
        let number = try await loop.submit { () -> Int in
            let n = self.nextPipeSocket.value
            self.nextPipeSocket.value += 1
            return n
        }.get()
        let handler = MediaChannelHandler(logger: logger, socket: number)
        let pipeChannel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 64 * 2048))
            .channelOption(.datagramVectorReadMessageCount, value: 64)
            .channelInitializer { channel in channel.pipeline.addHandler(handler) }
            .bind(host: host, port: 0).get()
        guard let bound = pipeChannel.localAddress, let local = RTC.SocketAddress(nio: bound) else {
            try? await pipeChannel.close()
            throw MediaServerError(.overloaded, "a pipe socket bound to an address that is not IPv4/IPv6")
        }
        return try await loop.submit {
            handler.server = self.server.value
            handler.engine = self
            self.pipeChannels.value[number] = pipeChannel
            return (number, self.server.value.newPipeParameters(candidate: local))
        }.get()
    }

    /// Opens a pipe end (see `MediaServer.openPipe`). A dialling end that fails gives its socket back.
    public func openPipe(room: String, id: String, peer: String, remote: PipeParameters, local: PipeParameters? = nil,
                         socket: Int? = nil, tracks: [PipeTrack]) async throws -> PipeParameters {
        do {
            return try await onLoop { server, now, _ in
                try server.openPipe(room: room, id: id, peer: peer, remote: remote, local: local, socket: socket, tracks: tracks, now: now)
            }
        } catch {
            if let socket { await releasePipeSocket(socket) }
            throw error
        }
    }

    /// Gives back a socket from `preparePipe` that no pipe uses.
    public func releasePipeSocket(_ socket: Int) async {
        let ch = try? await channel.eventLoop.submit { self.pipeChannels.value.removeValue(forKey: socket) }.get()
        if let ch = ch ?? nil { try? await ch.close() }
    }

    public func setPipeTracks(id: String, version: UInt64, tracks: [PipeTrack]) async -> Bool {
        (try? await onLoop { server, _, _ in server.setPipeTracks(id: id, version: version, tracks: tracks) }) ?? false
    }

    public func pipeAnnouncement(id: String) async -> (version: UInt64, tracks: [PipeTrack], peer: String)? {
        (try? await onLoop { server, _, _ in server.pipeAnnouncement(id: id) }) ?? nil
    }

    public func closePipe(id: String, reason: String) async -> Bool {
        (try? await onLoop { server, now, out in server.closePipe(id: id, reason: reason, now: now, into: &out) }) ?? false
    }

    public func pipePeer(_ id: String) async -> String? {
        (try? await onLoop { server, _, _ in server.pipePeer(id) }) ?? nil
    }

    public func reserveRoom(_ room: String, forMs: UInt64) async {
        _ = try? await onLoop { server, now, _ in server.reserveRoom(room, until: now + forMs) }
    }

    public func closeRoom(_ room: String) async -> Int {
        (try? await onLoop { server, now, out in server.closeRoom(room, now: now, into: &out) }) ?? 0
    }

    public func roomStatus(_ room: String?) async -> [RoomStatus] {
        (try? await onLoop { server, _, _ in
            (room.map { [$0] } ?? server.roomNames).compactMap { server.roomStatus($0) }
        }) ?? []
    }

    public func shutdown() async {
        ticker.withLockedValue { $0?.cancel() }
        let pipes = (try? await channel.eventLoop.submit { Array(self.pipeChannels.value.values) }.get()) ?? []
        for p in pipes { try? await p.close() }
        try? await channel.close()
    }

    // MARK: loop

    /// Runs `body` on the loop, sends what it produced and logs its events.
    private func onLoop<T: Sendable>(_ body: @escaping @Sendable (MediaServer, UInt64, inout [MediaServer.Datagram]) throws -> T) async throws -> T {
        try await channel.eventLoop.submit {
            let server = self.server.value
            var out: [MediaServer.Datagram] = []
            let result = try body(server, self.now, &out)
            self.write(out, flush: true)
            self.logEvents(server)
            return result
        }.get()
    }

    private func startTicking(every ms: UInt64) {
        let task = channel.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64(ms)), delay: .milliseconds(Int64(ms))) { _ in
            let server = self.server.value
            var out: [MediaServer.Datagram] = []
            server.tick(now: self.now, into: &out)
            self.write(out, flush: true)
            self.logEvents(server)
            self.snapshotBox.withLock { s in
                s.counters = server.counters
                s.room = server.roomCounters
                s.sessions = server.sessionCount
                s.rooms = server.roomCount
                s.producers = server.producerCount
                s.consumers = server.consumerCount
                s.pipes = server.pipeCount
            }
        }
        ticker.withLockedValue { $0 = task }
    }

    /// NIO socket addresses by RTC address: building one from a string per packet would cost
    /// more than the packet. Bounded: a flood of spoofed sources only refills it.
    private let addressCache: NIOLoopBoundBox<[RTC.SocketAddress: NIOCore.SocketAddress]>

    func write(_ datagrams: [MediaServer.Datagram], flush: Bool) {
        guard !datagrams.isEmpty else { return }
        var flushPipes: Set<Int> = []
        for d in datagrams {
            guard let to = nioAddress(d.to) else { continue }
            var out = channel
            if d.via != 0 {
                guard let pipe = pipeChannels.value[d.via] else { continue }
                out = pipe
                flushPipes.insert(d.via)
            }
            let buffer = out.allocator.buffer(bytes: d.bytes)
            out.write(AddressedEnvelope(remoteAddress: to, data: buffer), promise: nil)
        }
        if flush {
            channel.flush()
            for p in flushPipes { pipeChannels.value[p]?.flush() }
        }
    }

    private func nioAddress(_ a: RTC.SocketAddress) -> NIOCore.SocketAddress? {
        if let hit = addressCache.value[a] { return hit }
        guard let made = try? NIOCore.SocketAddress(ipAddress: a.ip.description, port: Int(a.port)) else { return nil }
        if addressCache.value.count > 4096 { addressCache.value.removeAll() }
        addressCache.value[a] = made
        return made
    }

    func logEvents(_ server: MediaServer) {
        for event in server.takeEvents() {
            switch event {
            case .sessionConnected(let id, let role, let room, let profile):
                logger.info("media session connected", metadata: ["session": "\(id)", "role": "\(role.rawValue)", "room": "\(room)", "srtp": "\(profile.rawValue)"])
            case .sessionClosed(let id, let reason):
                logger.info("media session closed", metadata: ["session": "\(id)", "reason": "\(reason)"])
            case .layerSwitched(let room, let consumer, let from, let to):
                logger.info("simulcast layer switched", metadata: ["room": "\(room)", "consumer": "\(consumer)", "from": "\(from.map(String.init) ?? "-")", "to": "\(to)"])
            case .pipeConnected(let id, let room):
                logger.info("pipe connected", metadata: ["pipe": "\(id)", "room": "\(room)"])
            case .pipeClosed(let id, let room, let socket, let reason):
                logger.notice("pipe closed", metadata: ["pipe": "\(id)", "room": "\(room)", "reason": "\(reason)"])
                if socket != 0, let ch = pipeChannels.value.removeValue(forKey: socket) { ch.close(promise: nil) }
            case .pipeTracksChanged:
                break
            }
            if let sink = eventSink.withLockedValue({ $0 }) {
                switch event {
                case .pipeConnected, .pipeClosed, .pipeTracksChanged: sink(event)
                default: break
                }
            }
        }
    }
}

/// Reads datagrams into the server; writes what comes out, flushed once per read batch.
final class MediaChannelHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    // Set on the loop before the first tick; only touched on the loop.
    var server: MediaServer?
    var engine: MediaEngine?
    private var pending: [MediaServer.Datagram] = []
    private let logger: Logger
    /// 0 for the media port, else the pipe socket's number.
    private let socket: Int

    init(logger: Logger, socket: Int = 0) {
        self.logger = logger
        self.socket = socket
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let server, let engine, let source = RTC.SocketAddress(nio: envelope.remoteAddress) else { return }
        var bytes = Array(envelope.data.readableBytesView)
        server.receive(taking: &bytes, from: source, via: socket, now: engine.now, into: &pending)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let engine, !pending.isEmpty else { return }
        engine.write(pending, flush: true)
        pending.removeAll(keepingCapacity: true)
        if let server { engine.logEvents(server) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable from a gone client surfaces here as ECONNREFUSED: not fatal.
        logger.debug("media socket error", metadata: ["error": "\(error)"])
    }
}

/// Unix milliseconds at start plus monotonic elapsed time: never goes back, close to wall time
/// (RTCP sender reports carry it as NTP time).
struct MediaClock: Sendable {
    private let startUnixMs: UInt64
    private let startUptime: UInt64

    init() {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        startUnixMs = UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
        startUptime = NIODeadline.now().uptimeNanoseconds
    }

    func nowMs() -> UInt64 {
        startUnixMs + (NIODeadline.now().uptimeNanoseconds - startUptime) / 1_000_000
    }
}

extension RTC.SocketAddress {
    /// From a NIO address without going through text.
    init?(nio address: NIOCore.SocketAddress) {
        switch address {
        case .v4(let a):
            let ip = UInt32(bigEndian: a.address.sin_addr.s_addr)
            self.init(ip: .v4(ip), port: UInt16(bigEndian: a.address.sin_port))
        case .v6(let a):
            var storage = a.address.sin6_addr
            let bytes = withUnsafeBytes(of: &storage) { Array($0) }
            guard let ip = IPAddress(bytes: bytes) else { return nil }
            self.init(ip: ip, port: UInt16(bigEndian: a.address.sin6_port))
        default:
            return nil
        }
    }
}
