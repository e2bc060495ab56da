import Identity
import Libp2p
import Logging
import NIOCore
import NIOConcurrencyHelpers

/// The NIO shell around one `Libp2pConnection`: moves bytes between the socket and the pure
/// state machine, runs multistream-select on each Yamux stream, and serves `Libp2pStream`s.
/// Everything here runs on the channel's event loop.
final class ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Direction: String, Sendable { case inbound, outbound }

    final class StreamState {
        var negotiation: MultistreamSelect?
        var protocolID: String?
        var negotiated: EventLoopPromise<Libp2pStream>?
        var inbound: [[UInt8]] = []
        var readWaiter: (promise: EventLoopPromise<[UInt8]?>, max: Int)?
        var remoteClosed = false
        var localClosed = false
        var resetError: String?
        var pendingWrite: (bytes: ArraySlice<UInt8>, promise: EventLoopPromise<Void>)?
        init(negotiation: MultistreamSelect) { self.negotiation = negotiation }
    }

    let direction: Direction
    let eventLoop: any EventLoop
    let host: Libp2pHost
    var connection: Libp2pConnection
    var context: ChannelHandlerContext?
    var streams: [UInt32: StreamState] = [:]
    let established: EventLoopPromise<ConnectionHandler>
    var remotePeer: PeerID?
    var remoteAddress: SocketAddress?
    var closeReason: String?
    private var isEstablished = false
    private var handshakeTimeout: Scheduled<Void>?
    private var keepAlive: RepeatedTask?
    private var lastPong: NIODeadline = .now()
    private var pings: [UInt32: (sent: NIODeadline, promise: EventLoopPromise<TimeAmount>?)] = [:]
    /// Read from other threads (`Libp2pHost.roundTripTimesMs`).
    let roundTrip = NIOLockedValueBox(RoundTripEstimate())
    let logger: Logger

    init(direction: Direction, host: Libp2pHost, eventLoop: any EventLoop, expectedPeer: PeerID?) {
        self.direction = direction
        self.host = host
        self.eventLoop = eventLoop
        self.logger = host.logger
        connection = Libp2pConnection(
            role: direction == .outbound ? .initiator : .responder, identity: host.identity, staticKey: host.staticKey,
            expectedRemotePeer: expectedPeer, yamuxConfiguration: host.configuration.yamux)
        established = eventLoop.makePromise()
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        remoteAddress = context.channel.remoteAddress
        handshakeTimeout = context.eventLoop.scheduleTask(in: host.configuration.handshakeTimeout) { [weak self] in
            self?.fail(Libp2pConnectionError(reason: "handshake_timeout", "libp2p handshake did not complete in time"))
        }
        do {
            try connection.start()
            flush()
        } catch {
            fail(error)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard closeReason == nil, let bytes = buffer.readBytes(length: buffer.readableBytes) else { return }
        do {
            let events = try connection.receive(bytes)
            for event in events { try handle(event) }
            flush()
        } catch {
            fail(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown(reason: closeReason ?? "remote_closed")
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(Libp2pConnectionError(reason: "io", "\(error)"))
    }

    // MARK: protocol events

    private func handle(_ event: Libp2pConnectionEvent) throws {
        switch event {
        case .established(let peer, _):
            handshakeTimeout?.cancel()
            remotePeer = peer
            lastPong = .now()
            let interval = host.configuration.keepAliveInterval
            keepAlive = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
                self?.keepAliveTick()
            }
            // Pings at once and 1, 2 and 3 s later: the round-trip time (`RoundTripEstimate`, the
            // least of the last 4) is known from the start, and not only from pings that waited
            // behind the burst of work a new connection brings.
            measureRoundTrip()
            for second in 1...3 {
                eventLoop.scheduleTask(in: .seconds(Int64(second))) { [weak self] in
                    self?.measureRoundTrip()
                    self?.flush()
                }
            }
            isEstablished = true
            established.succeed(self)
        case .stream(let e):
            try handleStream(e)
        }
    }

    private func handleStream(_ event: YamuxEvent) throws {
        switch event {
        case .streamOpened(let id):
            var mss = try MultistreamSelect(role: .responder(supported: host.supportedProtocols))
            let header = mss.start()
            streams[id] = StreamState(negotiation: mss)
            _ = try connection.write(header, on: id)
        case .data(let id, let bytes):
            guard let s = streams[id] else {
                connection.consumed(bytes.count, on: id)
                return
            }
            if var mss = s.negotiation {
                connection.consumed(bytes.count, on: id)
                let step: MultistreamStep
                do { step = try mss.receive(bytes) } catch {
                    logger.debug("stream negotiation failed", metadata: ["peer": "\(remotePeer?.description ?? "?")", "error": "\(error)"])
                    dropStream(id, reason: "negotiation failed: \(error)")
                    return
                }
                switch step {
                case .needMoreInput(let send):
                    s.negotiation = mss
                    if !send.isEmpty { _ = try connection.write(send, on: id) }
                case .selected(let proto, let send, let remainder):
                    s.negotiation = nil
                    s.protocolID = proto
                    if !send.isEmpty { _ = try connection.write(send, on: id) }
                    if !remainder.isEmpty {
                        // Those bytes were counted as consumed above; hand them over as data.
                        s.inbound.append(remainder)
                    }
                    let stream = Libp2pStream(protocolID: proto, remotePeer: remotePeer!, id: id, connection: self)
                    if let promise = s.negotiated {
                        s.negotiated = nil
                        promise.succeed(stream)
                    } else {
                        host.dispatchInbound(stream)
                    }
                case .noneSupported(let tried):
                    dropStream(id, reason: "remote supports none of \(tried)")
                }
                return
            }
            if let waiter = s.readWaiter {
                s.readWaiter = nil
                deliver(bytes, to: waiter, stream: s, id: id)
            } else {
                s.inbound.append(bytes)
            }
        case .remoteClosed(let id):
            guard let s = streams[id] else { return }
            s.remoteClosed = true
            if let p = s.negotiated {
                s.negotiated = nil
                p.fail(Libp2pStreamError("remote closed the stream during protocol negotiation"))
            }
            if s.inbound.isEmpty, let waiter = s.readWaiter {
                s.readWaiter = nil
                waiter.promise.succeed(nil)
            }
            forgetIfDone(id)
        case .reset(let id):
            guard let s = streams.removeValue(forKey: id) else { return }
            s.resetError = "stream reset by the remote"
            failWaiters(s, Libp2pStreamError("stream reset by the remote"))
        case .writable(let id):
            if let s = streams[id], let pending = s.pendingWrite {
                s.pendingWrite = nil
                continueWrite(pending.bytes, promise: pending.promise, stream: s, id: id)
            }
        case .pingResponse(let opaque):
            lastPong = .now()
            if let entry = pings.removeValue(forKey: opaque) {
                let rtt = NIODeadline.now() - entry.sent
                roundTrip.withLockedValue { $0.add(microseconds: UInt64(max(0, rtt.nanoseconds / 1000))) }
                entry.promise?.succeed(rtt)
            }
        case .goAway(let code) where code == .normal:
            // The remote is leaving politely: close without alarm.
            logger.debug("libp2p connection closed by the remote (GoAway)", metadata: ["peer": "\(remotePeer?.description ?? "?")"])
            close()
        case .goAway(let code):
            fail(Libp2pConnectionError(reason: "go_away", "remote sent GoAway(\(code))"))
        }
    }

    private func deliver(_ bytes: [UInt8], to waiter: (promise: EventLoopPromise<[UInt8]?>, max: Int), stream s: StreamState, id: UInt32) {
        if bytes.count <= waiter.max {
            connection.consumed(bytes.count, on: id)
            waiter.promise.succeed(bytes)
        } else {
            connection.consumed(waiter.max, on: id)
            s.inbound.insert(Array(bytes[waiter.max...]), at: 0)
            waiter.promise.succeed(Array(bytes[..<waiter.max]))
        }
        flush()
    }

    private func failWaiters(_ s: StreamState, _ error: any Error) {
        s.negotiated?.fail(error)
        s.negotiated = nil
        s.readWaiter?.promise.fail(error)
        s.readWaiter = nil
        s.pendingWrite?.promise.fail(error)
        s.pendingWrite = nil
    }

    private func dropStream(_ id: UInt32, reason: String) {
        connection.reset(id)
        if let s = streams.removeValue(forKey: id) { failWaiters(s, Libp2pStreamError(reason)) }
    }

    /// A stream closed both ways with nothing left to read is forgotten.
    private func forgetIfDone(_ id: UInt32) {
        guard let s = streams[id], s.remoteClosed, s.localClosed, s.inbound.isEmpty, s.readWaiter == nil, s.pendingWrite == nil
        else { return }
        streams[id] = nil
    }

    // MARK: stream operations (event loop)

    func openStream(protocols: [String]) -> EventLoopFuture<Libp2pStream> {
        let promise = eventLoop.makePromise(of: Libp2pStream.self)
        do {
            guard closeReason == nil else { throw Libp2pStreamError("connection closed: \(closeReason!)") }
            let id = try connection.openStream()
            var mss = try MultistreamSelect(role: .initiator(proposals: protocols))
            let first = mss.start()
            let s = StreamState(negotiation: mss)
            s.negotiated = promise
            streams[id] = s
            _ = try connection.write(first, on: id)
            flush()
        } catch {
            promise.fail(error)
        }
        return promise.futureResult
    }

    func read(_ id: UInt32, upTo max: Int = .max) -> EventLoopFuture<[UInt8]?> {
        guard let s = streams[id] else { return eventLoop.makeSucceededFuture(nil) }
        if let error = s.resetError { return eventLoop.makeFailedFuture(Libp2pStreamError(error)) }
        if !s.inbound.isEmpty {
            var chunk = s.inbound.removeFirst()
            if chunk.count > max {
                s.inbound.insert(Array(chunk[max...]), at: 0)
                chunk = Array(chunk[..<max])
            }
            connection.consumed(chunk.count, on: id)
            flush()
            return eventLoop.makeSucceededFuture(chunk)
        }
        if s.remoteClosed {
            forgetIfDone(id)
            return eventLoop.makeSucceededFuture(nil)
        }
        guard s.readWaiter == nil else { return eventLoop.makeFailedFuture(Libp2pStreamError("concurrent reads on one stream")) }
        let promise = eventLoop.makePromise(of: [UInt8]?.self)
        s.readWaiter = (promise, max)
        return promise.futureResult
    }

    func write(_ bytes: [UInt8], on id: UInt32) -> EventLoopFuture<Void> {
        guard let s = streams[id] else { return eventLoop.makeFailedFuture(Libp2pStreamError("stream is closed")) }
        guard s.pendingWrite == nil else { return eventLoop.makeFailedFuture(Libp2pStreamError("concurrent writes on one stream")) }
        let promise = eventLoop.makePromise(of: Void.self)
        continueWrite(bytes[...], promise: promise, stream: s, id: id)
        return promise.futureResult
    }

    private func continueWrite(_ bytes: ArraySlice<UInt8>, promise: EventLoopPromise<Void>, stream s: StreamState, id: UInt32) {
        do {
            let taken = try connection.write(Array(bytes), on: id)
            flush()
            if taken == bytes.count {
                promise.succeed(())
            } else {
                // Window and queue are full: resume on `.writable`.
                s.pendingWrite = (bytes.dropFirst(taken), promise)
            }
        } catch {
            promise.fail(error)
        }
    }

    func closeWrite(_ id: UInt32) {
        streams[id]?.localClosed = true
        connection.close(id)
        flush()
        forgetIfDone(id)
    }

    func reset(_ id: UInt32) {
        dropStream(id, reason: "stream reset locally")
        flush()
    }

    func ping() -> EventLoopFuture<TimeAmount> {
        let promise = eventLoop.makePromise(of: TimeAmount.self)
        guard let opaque = connection.ping() else {
            promise.fail(Libp2pStreamError("connection is not established"))
            return promise.futureResult
        }
        pings[opaque] = (.now(), promise)
        flush()
        return promise.futureResult
    }

    /// A ping whose answer feeds `roundTrip` (and, as every answer, the keep-alive).
    private func measureRoundTrip() {
        guard closeReason == nil, let opaque = connection.ping() else { return }
        if pings.count > 16 { pings.removeAll() }
        pings[opaque] = (.now(), nil)
    }

    private func keepAliveTick() {
        if NIODeadline.now() - lastPong > host.configuration.keepAliveTimeout {
            fail(Libp2pConnectionError(reason: "keepalive_timeout", "no answer to keep-alive pings for \(host.configuration.keepAliveTimeout.nanoseconds / 1_000_000_000) s"))
            return
        }
        measureRoundTrip()
        flush()
    }

    // MARK: output and teardown

    func flush() {
        guard closeReason == nil else { return }
        do {
            try writeOutbound()
        } catch {
            fail(error)
        }
    }

    /// Writes whatever the connection has queued for the socket.
    private func writeOutbound() throws {
        guard let context else { return }
        let bytes = try connection.takeOutbound()
        guard !bytes.isEmpty else { return }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    /// Closes the connection for a protocol or I/O failure, with one log line naming why.
    func fail(_ error: Libp2pConnectionError) {
        guard closeReason == nil else { return }
        closeReason = error.reason
        // Send whatever is queued (a Yamux GoAway explains a violation to the peer).
        try? writeOutbound()
        logger.notice("libp2p connection closed", metadata: [
            "reason": "\(error.reason)", "detail": "\(error.message)", "direction": "\(direction.rawValue)",
            "peer": "\(remotePeer?.description ?? "unauthenticated")", "remote": "\(remoteAddress?.description ?? "?")",
        ])
        host.countClose(reason: error.reason)
        if !isEstablished {
            isEstablished = true  // completes the promise exactly once
            established.fail(error)
        }
        context?.close(promise: nil)
    }

    /// Graceful close requested by the host.
    func close() {
        guard closeReason == nil else { return }
        closeReason = "local_close"
        connection.goAway()
        try? writeOutbound()
        context?.close(promise: nil)
    }

    /// Set (before the host is told) once the connection is gone; read by the host under its
    /// lock, so a connection that closed while being adopted is never registered.
    let isClosed = NIOLockedValueBox(false)

    private func teardown(reason: String) {
        isClosed.withLockedValue { $0 = true }
        handshakeTimeout?.cancel()
        keepAlive?.cancel()
        let error = Libp2pStreamError("connection closed: \(reason)")
        for s in streams.values { failWaiters(s, error) }
        streams.removeAll()
        for p in pings.values { p.promise?.fail(error) }
        pings.removeAll()
        if !isEstablished {
            isEstablished = true
            established.fail(Libp2pConnectionError(reason: reason, "connection closed before it was established (\(reason))"))
        }
        host.connectionClosed(self)
        context = nil
    }
}

extension ConnectionHandler {
    /// Any error as a connection failure; errors that are not the core's are `internal`.
    fileprivate func fail(_ error: any Error) {
        if let e = error as? Libp2pConnectionError { fail(e) } else { fail(Libp2pConnectionError(reason: "internal", "\(error)")) }
    }
}
