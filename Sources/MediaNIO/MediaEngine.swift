// The media node's UDP port (DESIGN.md "Media I/O"): a NIO event loop owns the sans-I/O
// `MediaServer`. Every datagram, timer tick and signalling call runs on that loop, so the server
// needs no lock on the packet path. The sockets are this module's, not NIO's (Specs/media.md
// "Send errors and socket loss"): the media port, and one socket per pipe this node dialled
// (Specs/media.md "Pipes"). A reader thread reads them all with recvmmsg and hands batches to
// the loop (DatagramReader); the loop writes them with sendmmsg (DatagramSender), dropping a
// datagram the kernel refuses instead of closing the socket. Writes produced by one read batch
// go out together. If the media port fails anyway, the engine says so and binds the same address
// again; if a pipe's socket fails, that pipe closes (its orchestrator dials it again).
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
    public var socket = MediaSocketStatus()
    public var pipeSockets = PipeSocketStatus()
    public init() {}
}

/// The state of the media socket, for /health and /metrics (Specs/media.md "Send errors and
/// socket loss").
public struct MediaSocketStatus: Sendable {
    /// False from an unexpected close until the socket is bound again.
    public var isUp = true
    /// Closes the node did not ask for.
    public var closes = 0
    public var rebinds = 0
    public var rebindFailures = 0
    /// Why the socket last closed, or why the last rebind failed.
    public var lastError: String?
    /// Datagrams the kernel refused, by errno name (`EPERM`, `ENOBUFS`, …).
    public var sendErrors: [String: Int] = [:]
    /// Datagrams produced while the socket was closed.
    public var droppedWhileClosed = 0
    /// Errors a read reported and the socket survived (queued ICMP errors…), by errno name.
    public var receiveErrors: [String: Int] = [:]
    /// Datagrams too large for the receive buffer, dropped.
    public var truncated = 0
    public init() {}
}

/// The sockets of the pipes this node dialled, together (Specs/media.md "Pipes"): the same
/// send and receive handling as the media port; a socket that fails closes its pipe.
public struct PipeSocketStatus: Sendable {
    /// Bound now.
    public var open = 0
    /// Sockets that failed (destroyed, or a read error no socket survives); each closed its pipe.
    public var failures = 0
    /// Datagrams the kernel refused, by errno name.
    public var sendErrors: [String: Int] = [:]
    /// Datagrams for a pipe whose socket was already closed.
    public var droppedWhileClosed = 0
    /// Errors a read reported and the socket survived, by errno name.
    public var receiveErrors: [String: Int] = [:]
    public var truncated = 0
    public init() {}
}

public final class MediaEngine: Sendable {
    /// The bound address (a requested port 0 resolved); a rebind reuses it, because every
    /// session's 5-tuple and every answer's candidate name it.
    public let localAddress: RTC.SocketAddress
    private let bindAddress: NIOCore.SocketAddress
    private let loop: any EventLoop
    /// One thread, for the sockets' reader.
    private let pool: NIOThreadPool
    private let server: NIOLoopBound<MediaServer>
    private let io: NIOLoopBound<MediaSocketIO>
    private let snapshotBox = Mutex(MediaSnapshot())
    private let socketStatus = Mutex(MediaSocketStatus())
    private let pipeStatus = Mutex(PipeSocketStatus())
    private let clock: MediaClock
    let logger: Logger
    private let ticker: NIOLockedValueBox<RepeatedTask?> = .init(nil)
    private let eventSink: NIOLockedValueBox<(@Sendable (MediaServer.Event) -> Void)?> = .init(nil)

    /// Binds `host:port` (port 0: any) and starts the server's timers. `announce` replaces the
    /// bound address in answers' candidates (e.g. a public address in front of a NAT).
    public static func start(host: String, port: Int, group: any EventLoopGroup, certificate: DTLSCertificate,
                             announce: [RTC.SocketAddress]? = nil, configure: (inout MediaServer.Configuration) -> Void = { _ in },
                             logger: Logger) async throws -> MediaEngine {
        let loop = group.next()
        let requested = try NIOCore.SocketAddress.makeAddressResolvingHost(host, port: port)
        let fd = try MediaSocket.open(boundTo: requested)
        guard let local = MediaSocket.localAddress(of: fd) else {
            Glibc.close(fd)
            throw MediaServerError(.overloaded, "--media \(host):\(port): bound to an address that is not IPv4/IPv6")
        }
        var bound = requested
        bound.port = Int(local.port)
        var config = MediaServer.Configuration(candidates: announce ?? [local], certificate: certificate)
        configure(&config)
        let serverConfig = config, bindAddress = bound
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let engine = try await loop.submit {
            let engine = MediaEngine(server: NIOLoopBound(MediaServer(configuration: serverConfig), eventLoop: loop),
                                     io: NIOLoopBound(MediaSocketIO(), eventLoop: loop), loop: loop, pool: pool,
                                     local: local, bindAddress: bindAddress, logger: logger)
            do {
                try engine.attach(fd)
            } catch {
                Glibc.close(fd)
                throw error
            }
            return engine
        }.get()
        engine.startTicking(every: config.tickIntervalMs)
        logger.notice("media listening", metadata: ["udp": "\(local)", "srtpProfiles": "\(config.srtpProfiles.map(\.rawValue))",
                                                     "libsrtp": "\(SRTPLibrary.version)"])
        return engine
    }

    private init(server: NIOLoopBound<MediaServer>, io: NIOLoopBound<MediaSocketIO>, loop: any EventLoop, pool: NIOThreadPool,
                 local: RTC.SocketAddress, bindAddress: NIOCore.SocketAddress, logger: Logger) {
        self.server = server
        self.io = io
        self.loop = loop
        self.pool = pool
        self.localAddress = local
        self.bindAddress = bindAddress
        self.logger = logger
        self.clock = MediaClock()
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

    public var snapshot: MediaSnapshot {
        var s = snapshotBox.withLock { $0 }
        s.socket = socketStatus.withLock { $0 }
        s.pipeSockets = pipeStatus.withLock { $0 }
        return s
    }

    /// The socket's state now (not as of the last tick): /health and WHIP/WHEP read it.
    public var socket: MediaSocketStatus { socketStatus.withLock { $0 } }

    // MARK: pipes and rooms (Specs/media.md "Pipes")

    /// Binds a socket for a pipe this node dials (same address as the media port, any port)
    /// and returns its number and the parameters to send to the accepting node. The socket is
    /// read and written like the media port.
    public func preparePipe() async throws -> (socket: Int, parameters: PipeParameters) {
        var address = bindAddress
        address.port = 0
        let fd = try MediaSocket.open(boundTo: address)
        guard let local = MediaSocket.localAddress(of: fd) else {
            Glibc.close(fd)
            throw MediaServerError(.overloaded, "a pipe socket bound to an address that is not IPv4/IPv6")
        }
        return try await loop.submit {
            let io = self.io.value
            let reader: DatagramReader
            do {
                guard !io.shuttingDown else { throw MediaServerError(.overloaded, "the media engine is shutting down") }
                reader = try self.ensureReader()
            } catch {
                Glibc.close(fd)
                throw error
            }
            let number = io.nextPipeSocket
            io.nextPipeSocket += 1
            io.pipeFDs[number] = fd
            reader.add(number, fd: fd)
            self.pipeStatus.withLock { $0.open += 1 }
            return (number, self.server.value.newPipeParameters(candidate: local))
        }.get()
    }

    /// Opens a pipe end (see `MediaServer.openPipe`). A dialling end that fails gives its socket back.
    public func openPipe(room: String, id: String, peer: String, remote: PipeParameters, local: PipeParameters? = nil,
                         socket: Int? = nil, tracks: [PipeTrack]) async throws -> PipeParameters {
        do {
            return try await onLoop { server, now, _ in
                if let socket, self.io.value.pipeFDs[socket] == nil {
                    throw MediaServerError(.overloaded, "the pipe's socket failed before the pipe opened")
                }
                return try server.openPipe(room: room, id: id, peer: peer, remote: remote, local: local, socket: socket, tracks: tracks, now: now)
            }
        } catch {
            if let socket { await releasePipeSocket(socket) }
            throw error
        }
    }

    /// Gives back a socket from `preparePipe` that no pipe uses.
    public func releasePipeSocket(_ socket: Int) async {
        _ = try? await loop.submit { self.releaseSocket(socket) }.get()
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

    /// Stops the reader, which closes the sockets, and stops the reader's thread.
    public func shutdown() async {
        ticker.withLockedValue { $0?.cancel() }
        let exit = try? await loop.submit { () -> EventLoopFuture<Void>? in
            let io = self.io.value
            io.shuttingDown = true
            // No write uses a descriptor from here on; the reader closes them as it stops.
            io.fd = -1
            io.pipeFDs.removeAll()
            io.reader?.stop()
            return io.readerExit
        }.get()
        try? await exit?.get()
        try? await pool.shutdownGracefully()
    }

    // MARK: loop

    /// Runs `body` on the loop, sends what it produced and logs its events.
    private func onLoop<T: Sendable>(_ body: @escaping @Sendable (MediaServer, UInt64, inout [MediaServer.Datagram]) throws -> T) async throws -> T {
        try await loop.submit {
            let server = self.server.value
            var out: [MediaServer.Datagram] = []
            let result = try body(server, self.now, &out)
            self.write(out)
            self.logEvents(server)
            return result
        }.get()
    }

    private func startTicking(every ms: UInt64) {
        let task = loop.scheduleRepeatedTask(initialDelay: .milliseconds(Int64(ms)), delay: .milliseconds(Int64(ms))) { _ in
            let server = self.server.value
            var out: [MediaServer.Datagram] = []
            let now = self.now
            server.tick(now: now, into: &out)
            self.write(out)
            self.logEvents(server)
            if let line = self.io.value.failureLog.due(now: now) { self.log(line) }
            if let line = self.io.value.pipeFailureLog.due(now: now) { self.log(line, pipes: true) }
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

    // MARK: the sockets

    /// The reader thread, started if it is not running. On the loop.
    private func ensureReader() throws -> DatagramReader {
        let io = self.io.value
        if let reader = io.reader { return reader }
        let reader = try DatagramReader()
        io.reader = reader
        io.readerExit = pool.runIfActive(eventLoop: loop) {
            reader.run(
                deliver: { socket, batch in
                    self.loop.execute {
                        self.receive(batch, on: socket)
                        reader.batchDone()
                    }
                },
                onError: { socket, code in
                    if socket == 0 {
                        self.socketStatus.withLock { $0.receiveErrors[errnoName(code), default: 0] += 1 }
                    } else {
                        self.pipeStatus.withLock { $0.receiveErrors[errnoName(code), default: 0] += 1 }
                    }
                },
                onTruncated: { socket in
                    if socket == 0 { self.socketStatus.withLock { $0.truncated += 1 } } else { self.pipeStatus.withLock { $0.truncated += 1 } }
                },
                onFailed: { socket, fd, error in self.loop.execute { self.socketFailed(socket, fd: fd, error: "\(error)") } })
        }.always { result in self.readerExited(reader, result) }.map { _ in () }.recover { _ in () }
        return reader
    }

    /// The reader stopped: on shutdown, or because poll itself failed (it reported every
    /// socket as failed first). The next socket bound starts a new one.
    private func readerExited(_ reader: DatagramReader, _ result: Result<DatagramReader.Exit, any Error>) {
        let io = self.io.value
        guard io.reader === reader else { return }
        io.reader = nil
        guard !io.shuttingDown else { return }
        let reason = switch result {
        case .success(.failed(let error)): "\(error)"
        case .success(.stopped): "stopped"
        case .failure(let error): "\(error)"
        }
        logger.error("media socket reader stopped; a new one starts with the next bound socket", metadata: ["error": "\(reason)"])
    }

    /// Starts reading a bound descriptor as the media port; writes go through
    /// `DatagramSender` on the loop. On the loop.
    private func attach(_ fd: Int32, attempt: Int = 0) throws {
        let reader = try ensureReader()
        let io = self.io.value
        io.fd = fd
        io.boundAtMs = now
        io.bindAttempt = attempt
        reader.add(0, fd: fd)
    }

    /// A socket the reader gave up on (on the loop). Its descriptor is closed (no write can use
    /// it afterwards: writes run on this loop and look the descriptor up). The media port is
    /// then bound again; a pipe's socket takes its pipe with it.
    private func socketFailed(_ socket: Int, fd: Int32, error reason: String) {
        let io = self.io.value
        guard socket != 0 else {
            guard io.fd == fd else { Glibc.close(fd); return }
            Glibc.close(fd)
            io.fd = -1
            guard !io.shuttingDown else { return }
            socketStatus.withLock {
                $0.isUp = false
                $0.closes += 1
                $0.lastError = reason
            }
            logger.error("media socket closed: sessions get no media and WHIP/WHEP answer 503 until it is bound again; rebinding",
                         metadata: ["udp": "\(localAddress)", "error": "\(reason)"])
            // A socket that fails within a second of being bound continues the backoff, so a fault
            // that recurs at once cannot turn into a hot loop of binds and log lines.
            scheduleRebind(attempt: now < io.boundAtMs + 1_000 ? io.bindAttempt + 1 : 0)
            return
        }
        Glibc.close(fd)
        guard io.pipeFDs[socket] == fd else { return }
        io.pipeFDs[socket] = nil
        guard !io.shuttingDown else { return }
        pipeStatus.withLock {
            $0.open -= 1
            $0.failures += 1
        }
        let server = self.server.value
        var out: [MediaServer.Datagram] = []
        let pipe = server.closeDialledPipe(socket: socket, reason: "its socket failed: \(reason)", now: now, into: &out)
        logger.error("pipe socket failed: the pipe closed", metadata: [
            "pipe": "\(pipe ?? "-")", "error": "\(reason)"])
        write(out)
        logEvents(server)
    }

    /// A pipe socket no pipe uses any more: the reader closes it. On the loop.
    private func releaseSocket(_ socket: Int) {
        let io = self.io.value
        guard let fd = io.pipeFDs.removeValue(forKey: socket) else { return }
        pipeStatus.withLock { $0.open -= 1 }
        if let reader = io.reader { reader.remove(socket) } else { Glibc.close(fd) }
    }

    /// Rebinds the same address: the first attempt at once, then with exponential backoff up to
    /// 5 s. Existing sessions keep their state; a client still sending its consent checks (RFC
    /// 7675: every few seconds, 30 s before we expire it) is found again by its source address.
    private func scheduleRebind(attempt: Int) {
        let delayMs = attempt == 0 ? 0 : min(5_000, 100 << min(attempt - 1, 6))
        loop.scheduleTask(in: .milliseconds(Int64(delayMs))) { self.rebind(attempt: attempt) }
    }

    private func rebind(attempt: Int) {
        let io = self.io.value
        guard !io.shuttingDown, io.fd < 0 else { return }
        do {
            let fd = try MediaSocket.open(boundTo: bindAddress)
            do {
                try attach(fd, attempt: attempt)
            } catch {
                Glibc.close(fd)
                throw error
            }
            let closes = socketStatus.withLock { s -> Int in
                s.isUp = true
                s.rebinds += 1
                return s.closes
            }
            logger.notice("media socket bound again", metadata: ["udp": "\(localAddress)", "attempts": "\(attempt + 1)", "closes": "\(closes)"])
        } catch {
            socketStatus.withLock {
                $0.rebindFailures += 1
                $0.lastError = "\(error)"
            }
            // At most one line per backoff step: every 5 s once the backoff is at its cap.
            logger.warning("media socket rebind failed; retrying", metadata: ["udp": "\(localAddress)", "attempt": "\(attempt + 1)", "error": "\(error)"])
            scheduleRebind(attempt: attempt + 1)
        }
    }

    /// A batch read by the reader from `socket` (on the loop): every datagram into the server,
    /// then what it produced out, together.
    private func receive(_ batch: [ReceivedDatagram], on socket: Int) {
        let server = self.server.value, io = self.io.value
        for datagram in batch {
            var bytes = datagram.bytes
            server.receive(taking: &bytes, from: datagram.from, via: socket, now: now, into: &io.pending)
        }
        guard !io.pending.isEmpty else { return }
        write(io.pending)
        // The sender copied them: their buffers go back to the server for the next copies.
        server.recycle(&io.pending)
        logEvents(server)
    }

    /// Sends datagrams with sendmmsg, each from its socket (`via`: the media port, or the
    /// socket of a pipe this node dialled). A datagram the kernel refuses (a firewall's EPERM,
    /// a full buffer's ENOBUFS, an unreachable network…) is dropped and counted by errno; the
    /// socket and every other datagram go on. While a socket is closed, its datagrams are
    /// counted and dropped.
    func write(_ datagrams: [MediaServer.Datagram]) {
        guard !datagrams.isEmpty else { return }
        guard datagrams.contains(where: { $0.via != 0 }) else { return send(datagrams, via: 0) }
        // Some go out through dialled pipes' sockets: per socket, in order.
        var bySocket: [Int: [MediaServer.Datagram]] = [:]
        for d in datagrams { bySocket[d.via, default: []].append(d) }
        for (via, batch) in bySocket.sorted(by: { $0.key < $1.key }) { send(batch, via: via) }
    }

    private func send(_ datagrams: [MediaServer.Datagram], via socket: Int) {
        let io = self.io.value
        let fd = socket == 0 ? io.fd : io.pipeFDs[socket] ?? -1
        guard fd >= 0 else {
            if socket == 0 {
                socketStatus.withLock { $0.droppedWhileClosed += datagrams.count }
            } else {
                pipeStatus.withLock { $0.droppedWhileClosed += datagrams.count }
            }
            return
        }
        io.failures.removeAll(keepingCapacity: true)
        io.sender.send(datagrams, fd: fd, failures: &io.failures)
        guard !io.failures.isEmpty else { return }
        if socket == 0 {
            socketStatus.withLock { s in
                for f in io.failures { s.sendErrors[errnoName(f.errno), default: 0] += 1 }
            }
            if let line = io.failureLog.record(io.failures, now: now) { log(line) }
        } else {
            pipeStatus.withLock { s in
                for f in io.failures { s.sendErrors[errnoName(f.errno), default: 0] += 1 }
            }
            if let line = io.pipeFailureLog.record(io.failures, now: now) { log(line, pipes: true) }
        }
    }

    private func log(_ line: SendFailureLog.Line, pipes: Bool = false) {
        let counts = line.counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        logger.warning(pipes ? "pipe send failed: datagrams dropped, socket kept open" : "media send failed: datagrams dropped, socket kept open", metadata: [
            "udp": pipes ? "pipe sockets" : "\(localAddress)", "errors": "\(counts)", "lastDestination": "\(line.lastDestination)",
            "logInterval": "\(io.value.failureLog.intervalMs / 1000) s",
        ])
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
                if socket != 0 { releaseSocket(socket) }
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

/// The engine's socket state, owned by the loop.
final class MediaSocketIO {
    /// The media port's descriptor; -1 while the socket is closed.
    var fd: Int32 = -1
    /// Sockets of the pipes this node dialled, by the number the server knows them by (`via`).
    var pipeFDs: [Int: Int32] = [:]
    var nextPipeSocket = 1
    /// Reads every socket; nil until the first is bound (and after it stopped).
    var reader: DatagramReader?
    /// When the current socket was bound, and at which rebind attempt (0: at once).
    var boundAtMs: UInt64 = 0
    var bindAttempt = 0
    /// Completes once the reader has stopped and closed the descriptors it read.
    var readerExit: EventLoopFuture<Void>?
    let sender = DatagramSender()
    var failures: [DatagramSendFailure] = []
    var failureLog = SendFailureLog(intervalMs: 10_000)
    var pipeFailureLog = SendFailureLog(intervalMs: 10_000)
    /// Datagrams produced by the current read batch, sent together at its end.
    var pending: [MediaServer.Datagram] = []
    var shuttingDown = false
}

/// Opens a media or pipe socket: non-blocking, 4 MiB buffers each way, bound.
enum MediaSocket {
    static func open(boundTo address: NIOCore.SocketAddress) throws -> Int32 {
        let fd = socket(address.protocol.rawValue, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw MediaSocketError(call: "socket", errno: errno) }
        // No SO_REUSEADDR: two processes on one UDP port would silently split its datagrams.
        var size: Int32 = 4 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let rc = address.withSockAddr { pointer, length in Glibc.bind(fd, pointer, socklen_t(length)) }
        guard rc == 0 else {
            let code = errno
            Glibc.close(fd)
            throw MediaSocketError(call: "bind", errno: code)
        }
        return fd
    }

    static func localAddress(of fd: Int32) -> RTC.SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return rc == 0 ? address(storage) : nil
    }

    /// An IPv4 or IPv6 socket address; nil for any other family.
    static func address(_ storage: sockaddr_storage) -> RTC.SocketAddress? {
        switch Int32(storage.ss_family) {
        case AF_INET:
            let sin = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }
            return RTC.SocketAddress(ip: .v4(UInt32(bigEndian: sin.sin_addr.s_addr)), port: UInt16(bigEndian: sin.sin_port))
        case AF_INET6:
            let sin6 = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }
            guard let ip = withUnsafeBytes(of: sin6.sin6_addr, { IPAddress(bytes: $0) }) else { return nil }
            return RTC.SocketAddress(ip: ip, port: UInt16(bigEndian: sin6.sin6_port))
        default:
            return nil
        }
    }
}

/// A failed socket call, with the system's message and the errno's name.
public struct MediaSocketError: Error, CustomStringConvertible {
    public var call: String
    public var errno: Int32
    public var description: String { "\(call): \(String(cString: strerror(errno))) (\(errnoName(errno)))" }
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
