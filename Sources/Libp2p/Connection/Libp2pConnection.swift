import Identity

/// Why a connection was closed. `reason` is a stable label for metrics and logs.
public struct Libp2pConnectionError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var message: String
    public var description: String { message }

    public init(reason: String, _ message: String) {
        self.reason = reason
        self.message = message
    }
}

/// What the connection reports to its shell.
public enum Libp2pConnectionEvent: Sendable {
    /// Noise authenticated the remote and Yamux was negotiated: streams may be used.
    case established(remotePeer: PeerID, remoteKey: LibP2PPublicKey)
    case stream(YamuxEvent)
}

/// One libp2p connection over a byte stream, from the first byte to Yamux streams
/// (libp2p/specs connections/README.md "Upgrading connections"):
///
///     multistream-select /noise  →  Noise XX  →  multistream-select /yamux/1.0.0 (encrypted)  →  Yamux
///
/// Sans-I/O: the shell feeds received bytes to `receive`, writes whatever `takeOutbound`
/// returns, and drives streams through the Yamux methods once `.established` was reported.
public struct Libp2pConnection: Sendable {
    public enum Role: Sendable { case initiator, responder }

    public static let securityProtocol = "/noise"
    public static let muxerProtocol = "/yamux/1.0.0"

    enum State: Sendable {
        case idle
        case negotiatingSecurity(MultistreamSelect)
        case handshaking(NoiseHandshake)
        case negotiatingMuxer(MultistreamSelect)
        case established(YamuxSession)
        case failed
    }

    public let role: Role
    private var state: State = .idle
    private let identity: Ed25519KeyPair
    private let staticKey: X25519KeyPair
    private let expectedRemotePeer: PeerID?
    private let yamuxConfiguration: YamuxConfiguration
    private var frames = NoiseFrameDecoder()
    private var transport: NoiseTransport?
    /// Ciphertext (or cleartext before Noise) waiting to be written to the socket.
    private var outbound: [UInt8] = []
    public private(set) var remotePeer: PeerID?
    public private(set) var remoteKey: LibP2PPublicKey?

    public init(role: Role, identity: Ed25519KeyPair, staticKey: X25519KeyPair, expectedRemotePeer: PeerID? = nil,
                yamuxConfiguration: YamuxConfiguration = YamuxConfiguration()) {
        self.role = role
        self.identity = identity
        self.staticKey = staticKey
        self.expectedRemotePeer = expectedRemotePeer
        self.yamuxConfiguration = yamuxConfiguration
    }

    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// Begins negotiation. The initiator pipelines the multistream header with `/noise`.
    public mutating func start() throws(Libp2pConnectionError) {
        guard case .idle = state else { return }
        do {
            var mss = try MultistreamSelect(role: role == .initiator
                ? .initiator(proposals: [Self.securityProtocol]) : .responder(supported: [Self.securityProtocol]))
            outbound += mss.start()
            state = .negotiatingSecurity(mss)
        } catch {
            throw fail("multistream", "\(error)")
        }
    }

    /// Feeds bytes read from the socket.
    public mutating func receive(_ bytes: [UInt8]) throws(Libp2pConnectionError) -> [Libp2pConnectionEvent] {
        var events: [Libp2pConnectionEvent] = []
        switch state {
        case .idle, .failed:
            throw Libp2pConnectionError(reason: "closed", "connection is not active")
        case .negotiatingSecurity(var mss):
            let step: MultistreamStep
            do { step = try mss.receive(bytes) } catch { throw fail("multistream", "security negotiation: \(error)") }
            switch step {
            case .needMoreInput(let send):
                outbound += send
                state = .negotiatingSecurity(mss)
            case .selected(_, let send, let remainder):
                outbound += send
                var handshake = NoiseHandshake(role: role == .initiator ? .initiator : .responder, identity: identity,
                                               staticKey: staticKey, expectedRemotePeer: expectedRemotePeer)
                do {
                    if let first = try handshake.start() { try NoiseFrame.encode(first, into: &outbound) }
                } catch {
                    throw fail("noise", "\(error)")
                }
                state = .handshaking(handshake)
                if !remainder.isEmpty { events += try receive(remainder) }
            case .noneSupported(let tried):
                throw fail("multistream", "remote supports none of \(tried)")
            }
        case .handshaking, .negotiatingMuxer, .established:
            var input = bytes[...]
            while !input.isEmpty {
                let taken = frames.append(input)
                input = input.dropFirst(taken)
                while true {
                    let frame: [UInt8]?
                    do { frame = try frames.nextFrame() } catch { throw fail("noise_frame", "\(error)") }
                    guard let frame else { break }
                    events += try receiveFrame(frame)
                }
                if taken == 0 && !input.isEmpty { throw fail("noise_frame", "frame decoder made no progress") }
            }
        }
        return events
    }

    private mutating func receiveFrame(_ frame: [UInt8]) throws(Libp2pConnectionError) -> [Libp2pConnectionEvent] {
        switch state {
        case .handshaking(var handshake):
            let step: NoiseHandshakeStep
            do { step = try handshake.receive(frame) } catch { throw fail("noise", "\(error)") }
            do {
                if let message = step.messageToSend { try NoiseFrame.encode(message, into: &outbound) }
            } catch {
                throw fail("noise", "\(error)")
            }
            guard let result = step.result else {
                state = .handshaking(handshake)
                return []
            }
            transport = result.transport
            remotePeer = result.remotePeer
            remoteKey = result.remoteIdentityKey
            do {
                var mss = try MultistreamSelect(role: role == .initiator
                    ? .initiator(proposals: [Self.muxerProtocol]) : .responder(supported: [Self.muxerProtocol]))
                try sealed(mss.start())
                state = .negotiatingMuxer(mss)
            } catch let error as Libp2pConnectionError {
                throw error
            } catch {
                throw fail("multistream", "\(error)")
            }
            return []
        case .negotiatingMuxer(var mss):
            let plain = try open(frame)
            let step: MultistreamStep
            do { step = try mss.receive(plain) } catch { throw fail("multistream", "muxer negotiation: \(error)") }
            switch step {
            case .needMoreInput(let send):
                try sealed(send)
                state = .negotiatingMuxer(mss)
                return []
            case .selected(_, let send, let remainder):
                try sealed(send)
                var session = YamuxSession(role: role == .initiator ? .client : .server, configuration: yamuxConfiguration)
                var events: [Libp2pConnectionEvent] = [.established(remotePeer: remotePeer!, remoteKey: remoteKey!)]
                if !remainder.isEmpty {
                    do { events += try session.receive(remainder).map { .stream($0) } } catch { throw fail("yamux", "\(error)") }
                }
                state = .established(session)
                return events
            case .noneSupported(let tried):
                throw fail("multistream", "remote supports none of \(tried)")
            }
        case .established(var session):
            let plain = try open(frame)
            state = .failed  // while the session is out of `state`, a throw leaves it failed
            do {
                let events = try session.receive(plain)
                state = .established(session)
                return events.map { .stream($0) }
            } catch {
                throw fail("yamux", "\(error)")
            }
        default:
            throw fail("state", "unexpected frame")
        }
    }

    private mutating func open(_ frame: [UInt8]) throws(Libp2pConnectionError) -> [UInt8] {
        do { return try transport!.open(frame) } catch { throw fail("noise_decrypt", "\(error)") }
    }

    private mutating func sealed(_ plaintext: [UInt8]) throws(Libp2pConnectionError) {
        guard !plaintext.isEmpty else { return }
        do { outbound += try transport!.sealFrames(plaintext) } catch { throw fail("noise", "\(error)") }
    }

    private mutating func fail(_ reason: String, _ message: String) -> Libp2pConnectionError {
        state = .failed
        return Libp2pConnectionError(reason: reason, message)
    }

    /// Bytes to write to the socket: handshake messages, and Yamux frames sealed by Noise.
    public mutating func takeOutbound() throws(Libp2pConnectionError) -> [UInt8] {
        if case .established(var session) = state {
            let plain = session.takeOutbound()
            state = .established(session)
            try sealed(plain)
        }
        defer { outbound.removeAll(keepingCapacity: outbound.count <= 4096) }
        return outbound
    }

    // MARK: Yamux, once established

    private mutating func withSession<T>(_ body: (inout YamuxSession) throws(YamuxError) -> T) throws(Libp2pConnectionError) -> T {
        guard case .established(var session) = state else {
            throw Libp2pConnectionError(reason: "not_established", "streams need an established connection")
        }
        state = .failed
        do {
            let result = try body(&session)
            state = .established(session)
            return result
        } catch {
            state = .established(session)
            throw Libp2pConnectionError(reason: "yamux", "\(error)")
        }
    }

    public mutating func openStream() throws(Libp2pConnectionError) -> UInt32 {
        try withSession { (s) throws(YamuxError) in try s.openStream() }
    }

    /// Takes as many bytes as the stream's window and queue allow; returns how many.
    public mutating func write(_ bytes: [UInt8], on id: UInt32) throws(Libp2pConnectionError) -> Int {
        try withSession { (s) throws(YamuxError) in try s.write(bytes, on: id) }
    }

    public mutating func consumed(_ n: Int, on id: UInt32) {
        _ = try? withSession { (s) throws(YamuxError) in s.consumed(n, on: id) }
    }

    public mutating func close(_ id: UInt32) {
        _ = try? withSession { (s) throws(YamuxError) in s.close(id) }
    }

    public mutating func reset(_ id: UInt32) {
        _ = try? withSession { (s) throws(YamuxError) in s.reset(id) }
    }

    public mutating func ping() -> UInt32? {
        try? withSession { (s) throws(YamuxError) in s.ping() }
    }

    public mutating func goAway() {
        _ = try? withSession { (s) throws(YamuxError) in s.goAway(.normal) }
    }

    public var streamCount: Int {
        if case .established(let s) = state { return s.streamCount }
        return 0
    }
}
