/// Limits and flow-control settings of a `YamuxSession`.
public struct YamuxConfiguration: Sendable {
    /// The per-stream window both sides assume when a stream opens (spec "Flow Control": 256KB).
    public static let defaultWindow = 256 * 1024

    /// Receive window granted per stream. At least `defaultWindow`; anything above it is
    /// advertised with the SYN (streams we open) or with our ACK (streams the peer opens).
    /// Window Updates are sent once half of it has been consumed by the application.
    public var receiveWindow: Int = YamuxConfiguration.defaultWindow
    /// Largest payload per outgoing Data frame, so one stream cannot hog the connection.
    public var maxDataFrameSize: Int = 16 * 1024
    /// Open streams (both directions). Inbound SYNs beyond it are answered with RST;
    /// `openStream` throws `.tooManyStreams`.
    public var maxConcurrentStreams: Int = 512
    /// Streams we opened whose ACK has not arrived (libp2p yamux "ACK backlog": at most 256).
    public var maxUnacknowledgedOutboundStreams: Int = 256
    /// Bytes `write` queues on one stream beyond its send window.
    public var maxQueuedBytesPerStream: Int = 256 * 1024
    /// Bytes `write` queues across all streams beyond their send windows.
    public var maxQueuedBytesPerSession: Int = 8 * 1024 * 1024
    /// How many finished stream ids are remembered to classify late frames.
    public var finishedStreamMemory: Int = 4096
    /// Pings awaiting a response; older ones are forgotten.
    public var maxOutstandingPings: Int = 16

    public init() {}

    func validated() -> YamuxConfiguration {
        precondition(receiveWindow >= YamuxConfiguration.defaultWindow && receiveWindow <= Int(UInt32.max),
                     "yamux receiveWindow must be in 256 KiB...4 GiB-1 (a window cannot start below the spec's 256 KiB)")
        precondition(maxDataFrameSize > 0, "yamux maxDataFrameSize must be positive")
        precondition(maxConcurrentStreams > 0 && maxUnacknowledgedOutboundStreams > 0)
        precondition(maxQueuedBytesPerStream >= 0 && maxQueuedBytesPerSession >= 0)
        precondition(finishedStreamMemory > 0 && maxOutstandingPings > 0)
        return self
    }
}

/// Something the application must learn from bytes the peer sent.
public enum YamuxEvent: Hashable, Sendable {
    /// The peer opened a stream (SYN). It is usable at once; our ACK rides on the first frame
    /// we send on it.
    case streamOpened(UInt32)
    /// Stream payload. Report it with `consumed(_:on:)` once read, or the peer stalls.
    case data(UInt32, [UInt8])
    /// The peer half-closed the stream (FIN): no more data will come; we may still write.
    case remoteClosed(UInt32)
    /// The peer reset the stream (RST), or refused a stream we opened. It is gone.
    case reset(UInt32)
    /// The peer answered the ping that `ping()` returned this opaque value for.
    case pingResponse(UInt32)
    /// The peer sent Go Away: it opens no more streams and wants none opened.
    case goAway(YamuxGoAwayCode)
    /// A stream that had a short `write` can accept bytes again.
    case writable(UInt32)
}

/// A snapshot of one open stream, for diagnostics and tests.
public struct YamuxStreamInfo: Hashable, Sendable {
    /// Bytes we may still send before the peer grants more.
    public var sendWindow: UInt32
    /// Bytes the peer may still send us.
    public var receiveWindow: UInt32
    /// Bytes written but held back by the send window.
    public var queuedBytes: Int
    /// Bytes delivered as `.data` that the application has not reported `consumed`.
    public var unconsumedBytes: Int
    /// We sent (or queued) FIN.
    public var isWriteClosed: Bool
    /// The peer sent FIN.
    public var isReadClosed: Bool
}

/// The Yamux (`/yamux/1.0.0`) stream multiplexer as a sans-I/O state machine (STYLE §1).
///
/// The shell feeds transport bytes to `receive(_:)` and acts on the returned events, calls the
/// stream operations on behalf of the application, and after every call writes whatever
/// `takeOutbound()` returns to the transport. Nothing here does I/O or reads a clock: `ping()`
/// returns an opaque value and the shell times the matching `.pingResponse`.
///
/// Design decisions:
/// - **SYN is sent immediately** by `openStream()`, as a Window Update carrying the extra window
///   beyond 256 KiB (delta 0 by default), so the peer learns of the stream even if we only read.
/// - **ACK is lazy**: a stream the peer opened is acknowledged by the first frame we send on it
///   (data, window update or FIN), as libp2p's yamux spec recommends.
/// - **Window updates are driven by `consumed`**: credit returns to the peer only for bytes the
///   application reported as read, in one Window Update once at least half the receive window
///   is pending. A peer whose data is not read is held to exactly the receive window.
///   No auto-tuning: the window is fixed at `configuration.receiveWindow`.
/// - **Bounded buffering**: `write` frames what the send window allows and queues the rest up to
///   `maxQueuedBytesPerStream` / `maxQueuedBytesPerSession`; it returns how much it took, and a
///   `.writable` event follows a short write when room frees up. Received data is never
///   buffered here (it goes out in events); the decoder holds at most one partial frame.
///   Replies the session generates itself (ping ACKs, RSTs refusing streams) are proportional
///   to the bytes fed in, so a shell that stops calling `receive` while the transport is not
///   writable (as it must) keeps `takeOutbound()` bounded too.
/// - **Stream ids**: the peer's SYNs must have its parity and name no open or remembered-finished
///   stream, but need not arrive in increasing order (rust-yamux sends the SYN with a stream's
///   first frame, so ids can be overtaken). Ping and Go Away are accepted on any stream id.
/// - **Late frames**: frames for ids we reset are dropped quietly (they may be in flight), as are
///   frames for ids finished so long ago that they fell out of `finishedStreamMemory`. Frames for
///   ids never opened, data after the peer's FIN and any frame after the peer's RST throw.
/// - **Failure**: a protocol violation throws from `receive`, queues Go Away (protocol error)
///   and leaves the session failed: later `receive` calls rethrow, stream operations are inert.
public struct YamuxSession: Sendable {
    public enum Role: Sendable {
        /// Opens odd stream ids.
        case client
        /// Opens even stream ids.
        case server
    }

    private enum State: Sendable {
        case active
        case failed(YamuxError)
    }

    public let role: Role
    public let configuration: YamuxConfiguration

    private var state: State = .active
    private var decoder: YamuxFrameDecoder
    private var streams: [UInt32: YamuxStream] = [:]
    private var finished: RecentlyFinishedStreams
    /// UInt64 so that running past 2^32-1 is detectable.
    private var nextOutboundID: UInt64
    private var highestInboundID: UInt32 = 0
    private var unacknowledgedOutbound = 0
    private var queuedBytes = 0
    /// Streams whose last `write` was short; they get `.writable` once room frees up.
    private var blockedWriters: Set<UInt32> = []
    private var outstandingPings: [UInt32] = []
    private var nextPingOpaque: UInt32 = 1
    private var outbound: [UInt8] = []
    private var pendingEvents: [YamuxEvent] = []

    /// The Go Away code we sent, if any.
    public private(set) var sentGoAway: YamuxGoAwayCode?
    /// The Go Away code the peer sent, if any.
    public private(set) var receivedGoAway: YamuxGoAwayCode?

    public init(role: Role, configuration: YamuxConfiguration = YamuxConfiguration()) {
        let configuration = configuration.validated()
        self.role = role
        self.configuration = configuration
        self.decoder = YamuxFrameDecoder(maxPayloadLength: configuration.receiveWindow)
        self.finished = RecentlyFinishedStreams(capacity: configuration.finishedStreamMemory)
        self.nextOutboundID = role == .client ? 1 : 2
    }

    // MARK: - Observers

    /// Number of streams open in at least one direction.
    public var streamCount: Int { streams.count }

    /// Ids of the open streams, ascending.
    public var streamIDs: [UInt32] { streams.keys.sorted() }

    /// Bytes queued behind send windows across all streams.
    public var queuedByteCount: Int { queuedBytes }

    /// Bytes waiting in `takeOutbound()`.
    public var outboundByteCount: Int { outbound.count }

    /// The protocol violation that failed the session, if any.
    public var failure: YamuxError? {
        if case .failed(let error) = state { return error }
        return nil
    }

    /// A Go Away was sent or received and no stream is left: the transport can be closed once
    /// `takeOutbound()` has been written.
    public var isDrained: Bool {
        (sentGoAway != nil || receivedGoAway != nil) && streams.isEmpty
    }

    /// Flow-control and half-close state of an open stream; nil once it is closed or reset.
    public func info(on id: UInt32) -> YamuxStreamInfo? {
        guard let s = streams[id] else { return nil }
        return YamuxStreamInfo(sendWindow: s.sendWindow, receiveWindow: s.receiveWindow,
                               queuedBytes: s.queue.count, unconsumedBytes: Int(s.unconsumed),
                               isWriteClosed: s.writeHalf != .open, isReadClosed: s.readHalf == .finReceived)
    }

    /// How many bytes `write(_:on:)` would accept right now (0 for unknown or write-closed streams).
    public func writableCapacity(on id: UInt32) -> Int {
        guard let s = streams[id], s.writeHalf == .open else { return 0 }
        return capacity(of: s)
    }

    // MARK: - Inbound

    /// Feeds bytes read from the transport; returns what the application must learn, in order
    /// (plus any events produced by earlier local calls, see `takeEvents()`).
    ///
    /// Throws on a protocol violation; the session is then failed (see type docs).
    public mutating func receive(_ bytes: [UInt8]) throws(YamuxError) -> [YamuxEvent] {
        if case .failed(let error) = state { throw error }
        decoder.append(bytes)
        do {
            while let header = try decoder.peekHeader() {
                // Vet the header before waiting for its payload: a frame over the receive
                // window is refused without buffering it.
                try admit(header)
                guard let frame = try decoder.nextFrame() else { break }
                handle(frame)
                // Per frame, so events come in the same order however the bytes were split.
                notifyWritable()
            }
        } catch {
            fail(error)
            throw error
        }
        return takeEvents()
    }

    /// Events produced outside `receive` (a local `reset` freeing queue room for a blocked
    /// writer). `receive` returns them too, so calling this is only needed between receives.
    public mutating func takeEvents() -> [YamuxEvent] {
        defer { pendingEvents = [] }
        return pendingEvents
    }

    // MARK: - Outbound

    /// Bytes to write to the transport, in order. Call after every other mutating call.
    public mutating func takeOutbound() -> [UInt8] {
        defer { outbound = [] }
        return outbound
    }

    /// Opens a stream and queues its SYN. Returns the new stream id.
    public mutating func openStream() throws(YamuxError) -> UInt32 {
        try requireActive("open a stream")
        if let code = sentGoAway ?? receivedGoAway {
            throw YamuxError(.goingAway, "cannot open a stream: the session is going away (\(sentGoAway != nil ? "we sent" : "peer sent") Go Away, \(code))")
        }
        guard streams.count < configuration.maxConcurrentStreams else {
            throw YamuxError(.tooManyStreams, "cannot open a stream: \(streams.count) streams are open, the limit (maxConcurrentStreams) is \(configuration.maxConcurrentStreams); close or reset some first")
        }
        guard unacknowledgedOutbound < configuration.maxUnacknowledgedOutboundStreams else {
            throw YamuxError(.ackBacklogFull, "cannot open a stream: \(unacknowledgedOutbound) streams we opened still await the peer's ACK (limit \(configuration.maxUnacknowledgedOutboundStreams)); wait for the peer to accept some")
        }
        guard nextOutboundID <= UInt64(UInt32.max) else {
            throw YamuxError(.streamIDsExhausted, "cannot open a stream: all \(role == .client ? "odd" : "even") stream ids have been used; open a new connection")
        }
        let id = UInt32(nextOutboundID)
        nextOutboundID += 2
        let initial = UInt32(YamuxConfiguration.defaultWindow)
        let extra = UInt32(configuration.receiveWindow) - initial
        // Spec "Flow Control": the SYN may carry a window update raising the 256 KiB default.
        emit(YamuxHeader(type: .windowUpdate, flags: .syn, streamID: id, length: extra))
        streams[id] = YamuxStream(handshake: .synSent, sendWindow: initial,
                                  receiveWindow: initial + extra, unannounced: 0)
        unacknowledgedOutbound += 1
        return id
    }

    /// Sends `bytes` on stream `id`: frames as much as the peer's window allows, queues what
    /// fits the queue limits, and returns how many bytes were taken (from the front). A short
    /// count means "back off": `.writable(id)` will be reported when room frees up.
    ///
    /// Throws if the stream is not open for writing or the session failed.
    public mutating func write(_ bytes: [UInt8], on id: UInt32) throws(YamuxError) -> Int {
        try requireActive("write on stream \(id)")
        guard let current = streams[id] else {
            throw YamuxError(.streamNotOpen, "cannot write on stream \(id): it is not open (never opened here, closed both ways, or reset)")
        }
        guard current.writeHalf == .open else {
            throw YamuxError(.streamNotWritable, "cannot write on stream \(id): close() already half-closed it for writing")
        }
        guard !bytes.isEmpty else { return 0 }
        var s = streams.removeValue(forKey: id)!
        var accepted = 0
        if s.queue.isEmpty {
            accepted = min(bytes.count, Int(s.sendWindow))
            sendData(bytes[0..<accepted], on: id, &s)
        }
        let room = max(0, min(configuration.maxQueuedBytesPerStream - s.queue.count,
                              configuration.maxQueuedBytesPerSession - queuedBytes))
        let toQueue = min(room, bytes.count - accepted)
        if toQueue > 0 {
            s.queue.append(contentsOf: bytes[accepted..<accepted + toQueue])
            queuedBytes += toQueue
            accepted += toQueue
        }
        if accepted < bytes.count {
            blockedWriters.insert(id)
        }
        streams[id] = s
        return accepted
    }

    /// Reports that the application has read `n` bytes of stream `id`'s data. Credit goes back
    /// to the peer (one Window Update) once half the receive window is pending. `n` is clamped
    /// to the bytes delivered and not yet reported; unknown streams are ignored.
    public mutating func consumed(_ n: Int, on id: UInt32) {
        guard case .active = state, n > 0, var s = streams.removeValue(forKey: id) else { return }
        let n = UInt32(min(n, Int(s.unconsumed)))
        s.unconsumed -= n
        if s.readHalf == .open {
            s.unannounced += n
            if s.unannounced >= UInt32(configuration.receiveWindow / 2) {
                grantCredit(on: id, &s)
            }
        }
        streams[id] = s
    }

    /// Half-closes stream `id` for writing: FIN goes out after any queued data. Reading goes on
    /// until the peer's FIN. Idempotent; unknown streams are ignored.
    public mutating func close(_ id: UInt32) {
        guard case .active = state, var s = streams.removeValue(forKey: id) else { return }
        blockedWriters.remove(id)
        if s.writeHalf == .open {
            s.writeHalf = .finQueued
            flush(id, &s)
        }
        store(id, s)
    }

    /// Resets stream `id` (RST) and forgets it, discarding queued data. Data the peer already
    /// sent may still arrive and is dropped. Unknown streams are ignored.
    public mutating func reset(_ id: UInt32) {
        guard case .active = state, let s = streams.removeValue(forKey: id) else { return }
        emit(YamuxHeader(type: .windowUpdate, flags: .rst, streamID: id, length: 0))
        forget(id, s, .resetLocally)
        notifyWritable()
    }

    /// Queues a Ping; returns the opaque value the matching `.pingResponse` will carry.
    public mutating func ping() -> UInt32 {
        let opaque = nextPingOpaque
        nextPingOpaque &+= 1
        guard case .active = state else { return opaque }
        if outstandingPings.count >= configuration.maxOutstandingPings {
            outstandingPings.removeFirst()
        }
        outstandingPings.append(opaque)
        emit(YamuxHeader(type: .ping, flags: .syn, streamID: 0, length: opaque))
        return opaque
    }

    /// Queues Go Away: no more streams will be opened or accepted (inbound SYNs get RST);
    /// open streams carry on. Sent at most once.
    public mutating func goAway(_ code: YamuxGoAwayCode = .normal) {
        guard sentGoAway == nil else { return }
        sentGoAway = code
        emit(YamuxHeader(type: .goAway, streamID: 0, length: code.rawValue))
    }

    // MARK: - Admission (all protocol checks; nothing is mutated)

    private func admit(_ header: YamuxHeader) throws(YamuxError) {
        guard header.type == .data || header.type == .windowUpdate else { return }
        let id = header.streamID
        let kind = header.type == .data ? "data frame" : "window update"
        guard id != 0 else {
            throw YamuxError(.invalidStreamID, "\(kind) addresses stream 0, which is reserved for the session (spec 'StreamID Field')")
        }
        let dataLength = header.payloadLength

        if header.flags.contains(.syn) {
            guard !isOurs(id) else {
                let mine = role == .client ? "odd" : "even"
                throw YamuxError(.wrongStreamIDParity, "peer opened stream \(id) (SYN), but \(mine) ids are ours to open as the \(role); both ends may think they are the \(role)")
            }
            guard streams[id] == nil else {
                throw YamuxError(.duplicateStream, "peer sent SYN for stream \(id), which is already open")
            }
            // Ids need not arrive in order: rust-yamux assigns an id at open but sends the SYN
            // with the stream's first frame. A reused id is caught while it is remembered.
            if let ending = finished[id] {
                throw YamuxError(.streamIDReused, "peer sent SYN for stream \(id), which already existed and was \(ending.description); stream ids are never reused")
            }
            if dataLength > YamuxConfiguration.defaultWindow {
                throw YamuxError(.receiveWindowExceeded, "peer opened stream \(id) with \(dataLength) data bytes, more than the initial 256 KiB window")
            }
            if header.type == .windowUpdate, header.length > UInt32.max - UInt32(YamuxConfiguration.defaultWindow) {
                throw YamuxError(.sendWindowOverflow, "peer opened stream \(id) granting \(header.length) bytes on top of the initial 256 KiB window; the window would exceed 2^32-1")
            }
            return
        }

        if let s = streams[id] {
            if dataLength > 0 {
                guard s.readHalf == .open else {
                    throw YamuxError(.dataAfterFIN, "peer sent \(dataLength) data bytes on stream \(id) after half-closing it with FIN")
                }
                guard dataLength <= Int(s.receiveWindow) else {
                    throw YamuxError(.receiveWindowExceeded, "peer sent \(dataLength) data bytes on stream \(id), but its receive window has only \(s.receiveWindow) bytes left (window \(configuration.receiveWindow), \(s.unconsumed) unread, \(s.unannounced) not yet re-granted)")
                }
            }
            if header.type == .windowUpdate, header.length > UInt32.max - s.sendWindow {
                throw YamuxError(.sendWindowOverflow, "peer granted \(header.length) more bytes on stream \(id) whose send window is already \(s.sendWindow); the window would exceed 2^32-1")
            }
            return
        }

        switch finished[id] {
        case .resetLocally:
            return // In flight when we reset: dropped in `handle`.
        case .resetByPeer:
            throw YamuxError(.frameAfterReset, "peer sent a \(kind) (flags \(flagNames(header.flags))) on stream \(id) after resetting it with RST")
        case .closed:
            if dataLength > 0 {
                throw YamuxError(.dataAfterFIN, "peer sent \(dataLength) data bytes on stream \(id) after half-closing it with FIN (the stream is closed both ways)")
            }
            return // A late window update (the peer read our data after its FIN) is fine.
        case nil:
            if wasOpened(id) { return } // Finished long ago, forgotten: cannot judge; dropped.
            let who = isOurs(id) ? "we have not opened it (next id we open is \(nextOutboundID))"
                                 : "the peer never opened it with SYN (highest id it opened is \(highestInboundID))"
            throw YamuxError(.unknownStream, "\(kind) (flags \(flagNames(header.flags))) for stream \(id), which was never opened: \(who)")
        }
    }

    // MARK: - Handling (admitted frames only; cannot fail)

    private mutating func handle(_ frame: YamuxFrame) {
        let header = frame.header
        switch header.type {
        case .ping:
            if header.flags.contains(.syn) {
                emit(YamuxHeader(type: .ping, flags: .ack, streamID: 0, length: header.length))
            } else if header.flags.contains(.ack), let index = outstandingPings.firstIndex(of: header.length) {
                outstandingPings.remove(at: index)
                pendingEvents.append(.pingResponse(header.length))
            }
        case .goAway:
            if receivedGoAway == nil {
                receivedGoAway = YamuxGoAwayCode(rawValue: header.length)
                pendingEvents.append(.goAway(YamuxGoAwayCode(rawValue: header.length)))
            }
        case .data, .windowUpdate:
            handleStreamFrame(frame)
        }
    }

    private mutating func handleStreamFrame(_ frame: YamuxFrame) {
        let header = frame.header
        let id = header.streamID
        let flags = header.flags

        if flags.contains(.syn) {
            highestInboundID = max(highestInboundID, id)
            guard sentGoAway == nil, streams.count < configuration.maxConcurrentStreams else {
                // Refuse (spec "Opening a stream": reply with RST). Its in-flight data is dropped.
                emit(YamuxHeader(type: .windowUpdate, flags: .rst, streamID: id, length: 0))
                finished.record(id, .resetLocally)
                return
            }
            let initial = UInt32(YamuxConfiguration.defaultWindow)
            streams[id] = YamuxStream(handshake: .synReceived, sendWindow: initial, receiveWindow: initial,
                                      unannounced: UInt32(configuration.receiveWindow) - initial)
            pendingEvents.append(.streamOpened(id))
        }

        guard var s = streams.removeValue(forKey: id) else {
            return // Reset by us, closed, or long forgotten: `admit` allowed dropping it.
        }

        if flags.contains(.ack), s.handshake == .synSent {
            s.handshake = .established
            unacknowledgedOutbound -= 1
        }

        switch header.type {
        case .windowUpdate:
            s.sendWindow += header.length
            flush(id, &s)
        case .data:
            if !frame.payload.isEmpty {
                s.receiveWindow -= header.length
                s.unconsumed += header.length
                pendingEvents.append(.data(id, frame.payload))
            }
        case .ping, .goAway:
            preconditionFailure("session frames are not routed to streams")
        }

        if flags.contains(.fin), s.readHalf == .open {
            s.readHalf = .finReceived
            pendingEvents.append(.remoteClosed(id))
        }
        if flags.contains(.rst) {
            pendingEvents.append(.reset(id))
            forget(id, s, .resetByPeer)
            return
        }
        store(id, s)
    }

    // MARK: - Stream plumbing

    /// Frames `bytes` (already within the send window) as Data frames of at most
    /// `maxDataFrameSize`.
    private mutating func sendData(_ bytes: ArraySlice<UInt8>, on id: UInt32, _ s: inout YamuxStream) {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let end = min(start + configuration.maxDataFrameSize, bytes.endIndex)
            let flags = takeHandshakeFlags(id, &s)
            emit(YamuxHeader(type: .data, flags: flags, streamID: id, length: UInt32(end - start)))
            outbound.append(contentsOf: bytes[start..<end])
            s.sendWindow -= UInt32(end - start)
            start = end
        }
    }

    /// Moves queued bytes out as far as the send window allows, then sends a pending FIN.
    private mutating func flush(_ id: UInt32, _ s: inout YamuxStream) {
        while !s.queue.isEmpty && s.sendWindow > 0 {
            let n = min(s.queue.count, Int(s.sendWindow), configuration.maxDataFrameSize)
            sendData(s.queue.front(n), on: id, &s)
            s.queue.removeFront(n)
            queuedBytes -= n
        }
        if s.queue.isEmpty && s.writeHalf == .finQueued {
            let flags = takeHandshakeFlags(id, &s)
            emit(YamuxHeader(type: .windowUpdate, flags: flags.union(.fin), streamID: id, length: 0))
            s.writeHalf = .finSent
        }
    }

    /// Flags for the next frame we send on the stream: ACK on the first one for a stream the
    /// peer opened. If a larger-than-default window is still unadvertised, the ACK goes out on a
    /// Window Update carrying it instead.
    private mutating func takeHandshakeFlags(_ id: UInt32, _ s: inout YamuxStream) -> YamuxFlags {
        guard s.handshake == .synReceived else { return [] }
        s.handshake = .established
        if s.readHalf == .open && s.unannounced > 0 {
            emit(YamuxHeader(type: .windowUpdate, flags: .ack, streamID: id, length: s.unannounced))
            s.receiveWindow += s.unannounced
            s.unannounced = 0
            return []
        }
        return .ack
    }

    /// Returns all pending credit to the peer in one Window Update.
    private mutating func grantCredit(on id: UInt32, _ s: inout YamuxStream) {
        var flags: YamuxFlags = []
        if s.handshake == .synReceived {
            s.handshake = .established
            flags = .ack
        }
        emit(YamuxHeader(type: .windowUpdate, flags: flags, streamID: id, length: s.unannounced))
        s.receiveWindow += s.unannounced
        s.unannounced = 0
    }

    /// Puts a stream back, or forgets it once closed both ways.
    private mutating func store(_ id: UInt32, _ s: YamuxStream) {
        if s.isClosedBothWays {
            forget(id, s, .closed)
        } else {
            streams[id] = s
        }
    }

    /// Releases everything a removed stream held.
    private mutating func forget(_ id: UInt32, _ s: YamuxStream, _ ending: RecentlyFinishedStreams.Ending) {
        queuedBytes -= s.queue.count
        if s.handshake == .synSent { unacknowledgedOutbound -= 1 }
        blockedWriters.remove(id)
        finished.record(id, ending)
    }

    private func capacity(of s: YamuxStream) -> Int {
        let room = max(0, min(configuration.maxQueuedBytesPerStream - s.queue.count,
                              configuration.maxQueuedBytesPerSession - queuedBytes))
        return (s.queue.isEmpty ? Int(s.sendWindow) : 0) + room
    }

    private mutating func notifyWritable() {
        guard !blockedWriters.isEmpty else { return }
        for id in blockedWriters.sorted() {
            guard let s = streams[id], s.writeHalf == .open else {
                blockedWriters.remove(id)
                continue
            }
            if capacity(of: s) > 0 {
                blockedWriters.remove(id)
                pendingEvents.append(.writable(id))
            }
        }
    }

    // MARK: - Helpers

    private mutating func emit(_ header: YamuxHeader) {
        header.encode(into: &outbound)
    }

    private mutating func fail(_ error: YamuxError) {
        state = .failed(error)
        goAway(.protocolError)
    }

    private func requireActive(_ action: String) throws(YamuxError) {
        if case .failed(let error) = state {
            throw YamuxError(.sessionFailed, "cannot \(action): the session failed earlier (\(error))")
        }
    }

    private func isOurs(_ id: UInt32) -> Bool {
        (id % 2 == 1) == (role == .client)
    }

    private func wasOpened(_ id: UInt32) -> Bool {
        isOurs(id) ? UInt64(id) < nextOutboundID : id <= highestInboundID
    }

    private func flagNames(_ flags: YamuxFlags) -> String {
        var names: [String] = []
        if flags.contains(.syn) { names.append("SYN") }
        if flags.contains(.ack) { names.append("ACK") }
        if flags.contains(.fin) { names.append("FIN") }
        if flags.contains(.rst) { names.append("RST") }
        return names.isEmpty ? "none" : names.joined(separator: "|")
    }
}
