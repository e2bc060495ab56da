import CoreMetrics
import Identity
import Libp2p
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

public struct Libp2pError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A libp2p host over TCP: listens, dials, keeps one connection per peer, serves protocol
/// handlers on streams, and runs Identify and Ping.
public final class Libp2pHost: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var maxConnections = 256
        /// Inbound connections still in their handshake; more are refused at accept.
        public var maxPendingInbound = 64
        public var dialTimeout: TimeAmount = .seconds(10)
        public var handshakeTimeout: TimeAmount = .seconds(10)
        public var keepAliveInterval: TimeAmount = .seconds(15)
        public var keepAliveTimeout: TimeAmount = .seconds(45)
        public var yamux: YamuxConfiguration = {
            // One Yamux data frame per Noise frame: bulk transfers pay the per-frame costs
            // (header, AEAD tag, allocation) four times less often than with 16 KiB frames.
            var y = YamuxConfiguration()
            y.maxDataFrameSize = NoiseTransport.maxPlaintextLength - 12
            return y
        }()
        public var agentVersion = "drtc/0.1.0"
        public init() {}
    }

    public typealias StreamHandler = @Sendable (Libp2pStream) async -> Void

    /// An authenticated connection as the application sees it.
    public struct ConnectionInfo: Sendable {
        public var peer: PeerID
        /// True when this node dialled (gossipsub's outbound mesh quota counts these).
        public var outbound: Bool
        /// The remote IP address, for per-IP scoring.
        public var remoteIP: String?
    }

    /// Told about connections as they are adopted and closed (one at a time per peer).
    public struct ConnectionObserver: Sendable {
        public var connected: @Sendable (ConnectionInfo) -> Void
        public var disconnected: @Sendable (PeerID) -> Void
        public init(connected: @escaping @Sendable (ConnectionInfo) -> Void, disconnected: @escaping @Sendable (PeerID) -> Void) {
            self.connected = connected
            self.disconnected = disconnected
        }
    }

    public let identity: Ed25519KeyPair
    public var peerID: PeerID { identity.peerID }
    let staticKey: X25519KeyPair
    let configuration: Configuration
    let logger: Logger
    let group: any EventLoopGroup
    private let metricsFactory: (any MetricsFactory)?

    private struct State {
        var connections: [PeerID: ConnectionHandler] = [:]
        var pendingDials: [PeerID: EventLoopFuture<ConnectionHandler>] = [:]
        var handlers: [String: StreamHandler] = [:]
        var openChannels = 0
        var pendingInbound = 0
        var identified: [PeerID: IdentifyInfo] = [:]
        var listeners: [any Channel] = []
        var listenAddresses: [Multiaddr] = []
        var closed = false
        var observers: [ConnectionObserver] = []
        /// The connection gater: peers refused in both directions.
        var denied: Set<PeerID> = []
    }

    private let state = NIOLockedValueBox(State())

    public init(identity: Ed25519KeyPair, configuration: Configuration = Configuration(), logger: Logger,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, metricsFactory: (any MetricsFactory)? = nil) {
        self.identity = identity
        self.staticKey = X25519KeyPair.generate()
        self.configuration = configuration
        self.logger = logger
        self.group = group
        self.metricsFactory = metricsFactory
        setStreamHandler(Ping.protocolID) { stream in await Self.servePing(stream) }
        setStreamHandler(IdentifyInfo.protocolID) { [weak self] stream in await self?.serveIdentify(stream) }
        setStreamHandler(IdentifyInfo.pushProtocolID) { [weak self] stream in await self?.receiveIdentifyPush(stream) }
    }

    // MARK: configuration

    public func setStreamHandler(_ protocolID: String, _ handler: @escaping StreamHandler) {
        state.withLockedValue { $0.handlers[protocolID] = handler }
    }

    var supportedProtocols: [String] { state.withLockedValue { $0.handlers.keys.sorted() } }

    /// Bound listen addresses, each ending in `/p2p/<peerId>`.
    public var listenAddresses: [Multiaddr] {
        state.withLockedValue { $0.listenAddresses }.map { $0.appending(.p2p(peerID)) }
    }

    public var connectedPeers: [PeerID] { state.withLockedValue { Array($0.connections.keys) } }

    /// Connected peers with their direction and address.
    public var connections: [ConnectionInfo] {
        state.withLockedValue { s in s.connections.map { Self.info($0.key, $0.value) } }
    }

    static func info(_ peer: PeerID, _ handler: ConnectionHandler) -> ConnectionInfo {
        ConnectionInfo(peer: peer, outbound: handler.direction == .outbound, remoteIP: handler.remoteAddress?.ipAddress)
    }

    /// Each connected peer's round-trip time in ms (`RoundTripEstimate`), once measured.
    public func roundTripTimesMs() -> [PeerID: UInt64] {
        let handlers = state.withLockedValue { $0.connections }
        return handlers.compactMapValues { h in h.roundTrip.withLockedValue { $0.milliseconds } }
    }

    public func addConnectionObserver(_ observer: ConnectionObserver) {
        state.withLockedValue { $0.observers.append(observer) }
    }

    /// Refuses every connection with `peer` (closing the current one) until `allow`.
    public func deny(_ peer: PeerID) {
        let existing = state.withLockedValue { s -> ConnectionHandler? in
            s.denied.insert(peer)
            return s.connections[peer]
        }
        if let existing { existing.eventLoop.execute { existing.close() } }
    }

    public func allow(_ peer: PeerID) { state.withLockedValue { _ = $0.denied.remove(peer) } }

    public var deniedPeers: Set<PeerID> { state.withLockedValue { $0.denied } }

    public func identifyInfo(for peer: PeerID) -> IdentifyInfo? { state.withLockedValue { $0.identified[peer] } }

    // MARK: listening

    public func listen(_ addresses: [Multiaddr]) async throws {
        for address in addresses {
            guard let (host, port) = address.tcpEndpoint else {
                throw Libp2pError("listen: only /ip4|/ip6/…/tcp/PORT addresses are supported, got \(address)")
            }
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [weak self] channel in
                    guard let self else { return channel.close() }
                    return self.acceptInbound(channel)
                }
                .bind(host: host, port: Int(port)).get()
            let bound = try Self.multiaddr(channel.localAddress)
            state.withLockedValue {
                $0.listeners.append(channel)
                $0.listenAddresses.append(bound)
            }
            logger.info("libp2p listening", metadata: ["address": "\(bound.appending(.p2p(peerID)))"])
        }
    }

    static func multiaddr(_ address: SocketAddress?) throws -> Multiaddr {
        guard let address, let ip = address.ipAddress, let port = address.port else {
            throw Libp2pError("socket has no IP address")
        }
        let proto = address.protocol == .inet6 ? "ip6" : "ip4"
        return try Multiaddr("/\(proto)/\(ip)/tcp/\(port)")
    }

    private func acceptInbound(_ channel: any Channel) -> EventLoopFuture<Void> {
        let refusal: String? = state.withLockedValue { s in
            if s.closed { return "shutting down" }
            if s.openChannels >= configuration.maxConnections { return "connection limit \(configuration.maxConnections) reached" }
            if s.pendingInbound >= configuration.maxPendingInbound {
                return "\(configuration.maxPendingInbound) inbound handshakes already pending"
            }
            s.openChannels += 1
            s.pendingInbound += 1
            return nil
        }
        if let refusal {
            logger.notice("libp2p connection refused", metadata: ["reason": "\(refusal)", "remote": "\(channel.remoteAddress?.description ?? "?")"])
            countClose(reason: "refused_limit")
            return channel.close()
        }
        let handler = ConnectionHandler(direction: .inbound, host: self, eventLoop: channel.eventLoop, expectedPeer: nil)
        handler.established.futureResult.whenComplete { [weak self] result in
            guard let self else { return }
            self.state.withLockedValue { $0.pendingInbound -= 1 }
            if case .success(let h) = result { self.adopt(h) }
        }
        return channel.pipeline.addHandler(handler)
    }

    // MARK: dialing

    /// Connects to `address` (which should end in `/p2p/<peerId>`: the handshake then fails
    /// unless the remote proves that identity). Returns the authenticated remote PeerID. One
    /// connection per peer: an existing or in-progress connection is reused.
    @discardableResult
    public func dial(_ address: Multiaddr) async throws -> PeerID {
        guard let (host, port) = address.tcpEndpoint else {
            throw Libp2pError("dial \(address): only /ip4|/ip6|/dns/…/tcp/PORT addresses are supported")
        }
        let expected = address.peerID
        if expected == peerID { throw Libp2pError("dial \(address): that is this node's own PeerID") }
        enum Plan { case connected(PeerID), wait(EventLoopFuture<ConnectionHandler>), dial(EventLoopPromise<ConnectionHandler>?) }
        let plan: Plan = try state.withLockedValue { s in
            if s.closed { throw Libp2pError("host is shut down") }
            guard let expected else { return .dial(nil) }
            if s.denied.contains(expected) { throw Libp2pError("dial \(address): peer is denied by the connection gater") }
            if s.connections[expected] != nil { return .connected(expected) }
            if let pending = s.pendingDials[expected] { return .wait(pending) }
            let promise = group.next().makePromise(of: ConnectionHandler.self)
            s.pendingDials[expected] = promise.futureResult
            return .dial(promise)
        }
        switch plan {
        case .connected(let peer):
            return peer
        case .wait(let future):
            return try await future.get().remotePeer!
        case .dial(let promise):
            do {
                let handler = try await connect(host: host, port: Int(port), expected: expected)
                promise?.succeed(handler)
                if let expected { state.withLockedValue { _ = $0.pendingDials.removeValue(forKey: expected) } }
                return handler.remotePeer!
            } catch {
                promise?.fail(error)
                if let expected { state.withLockedValue { _ = $0.pendingDials.removeValue(forKey: expected) } }
                throw Libp2pError("dial \(address): \(error)")
            }
        }
    }

    private func connect(host: String, port: Int, expected: PeerID?) async throws -> ConnectionHandler {
        try state.withLockedValue { s in
            guard s.openChannels < configuration.maxConnections else {
                throw Libp2pError("connection limit \(configuration.maxConnections) reached")
            }
            s.openChannels += 1
        }
        let loop = group.next()
        let handler = ConnectionHandler(direction: .outbound, host: self, eventLoop: loop, expectedPeer: expected)
        do {
            _ = try await ClientBootstrap(group: loop)
                .connectTimeout(configuration.dialTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in channel.pipeline.addHandler(handler) }
                .connect(host: host, port: port).get()
        } catch {
            state.withLockedValue { $0.openChannels -= 1 }
            throw error
        }
        let established = try await handler.established.futureResult.get()
        return adopt(established)
    }

    /// Registers an authenticated connection; of two connections to one peer (simultaneous
    /// dials) both sides keep the one initiated by the smaller PeerID.
    @discardableResult
    private func adopt(_ handler: ConnectionHandler) -> ConnectionHandler {
        guard let peer = handler.remotePeer else { return handler }
        let refused = state.withLockedValue { $0.denied.contains(peer) }
        if refused {
            logger.info("libp2p connection refused by the gater", metadata: ["peer": "\(peer)"])
            countClose(reason: "denied")
            handler.eventLoop.execute { handler.close() }
            return handler
        }
        let (kept, dropped): (ConnectionHandler, ConnectionHandler?) = state.withLockedValue { s in
            // Closed between its handshake and now (e.g. the remote's gater): never register it,
            // or it would stay in the table with nobody left to remove it.
            if handler.isClosed.withLockedValue({ $0 }) { return (handler, handler) }
            guard let existing = s.connections[peer], existing !== handler else {
                s.connections[peer] = handler
                return (handler, nil)
            }
            func initiator(_ h: ConnectionHandler) -> PeerID { h.direction == .outbound ? peerID : peer }
            if initiator(handler) < initiator(existing) {
                s.connections[peer] = handler
                return (handler, existing)
            }
            return (existing, handler)
        }
        if let dropped { dropped.eventLoop.execute { dropped.close() } }
        if dropped !== handler {
            logger.debug("libp2p connection established", metadata: ["peer": "\(peer)", "direction": "\(handler.direction.rawValue)"])
            Task { try? await self.identify(peer) }
            let info = Self.info(peer, handler)
            for observer in state.withLockedValue({ $0.observers }) { observer.connected(info) }
        }
        return kept
    }

    func connectionClosed(_ handler: ConnectionHandler) {
        let lost: PeerID? = state.withLockedValue { s in
            s.openChannels -= 1
            if let peer = handler.remotePeer, s.connections[peer] === handler {
                s.connections[peer] = nil
                return peer
            }
            return nil
        }
        if let lost {
            for observer in state.withLockedValue({ $0.observers }) { observer.disconnected(lost) }
        }
    }

    func countClose(reason: String) {
        guard let metricsFactory else { return }
        Counter(label: "drtc_libp2p_connections_closed_total", dimensions: [("reason", reason)], factory: metricsFactory).increment()
    }

    // MARK: streams

    func dispatchInbound(_ stream: Libp2pStream) {
        guard let handler = state.withLockedValue({ $0.handlers[stream.protocolID] }) else {
            stream.reset()
            return
        }
        Task { await handler(stream) }
    }

    /// Opens a stream to a connected peer and negotiates the first of `protocols` it supports.
    public func newStream(to peer: PeerID, protocols: [String]) async throws -> Libp2pStream {
        guard let handler = state.withLockedValue({ $0.connections[peer] }) else {
            throw Libp2pError("not connected to \(peer)")
        }
        return try await handler.eventLoop.flatSubmit { handler.openStream(protocols: protocols) }.get()
    }

    /// Round-trip time of one `/ipfs/ping/1.0.0` exchange.
    public func ping(_ peer: PeerID) async throws -> Duration {
        let stream = try await newStream(to: peer, protocols: [Ping.protocolID])
        defer { stream.reset() }
        let payload = secureRandomBytes(Ping.payloadSize)
        let start = ContinuousClock.now
        try await stream.write(payload)
        let echo = try await stream.read(exactly: Ping.payloadSize)
        guard echo == payload else { throw Libp2pError("ping: \(peer) answered with different bytes") }
        return ContinuousClock.now - start
    }

    static func servePing(_ stream: Libp2pStream) async {
        do {
            while true {
                let payload = try await stream.read(exactly: Ping.payloadSize)
                if payload.count < Ping.payloadSize { break }
                try await stream.write(payload)
            }
            await stream.closeWrite()
        } catch {
            stream.reset()
        }
    }

    func localIdentify(observed: SocketAddress?) -> IdentifyInfo {
        IdentifyInfo(agentVersion: configuration.agentVersion, publicKey: identity.publicKey,
                     listenAddrs: state.withLockedValue { $0.listenAddresses },
                     observedAddr: try? Self.multiaddr(observed), protocols: supportedProtocols)
    }

    func serveIdentify(_ stream: Libp2pStream) async {
        let observed = try? await stream.eventLoop.submit { stream.connection.remoteAddress }.get()
        do {
            try await stream.write(localIdentify(observed: observed ?? nil).encoded())
            await stream.closeWrite()
        } catch {
            stream.reset()
        }
    }

    /// Asks `peer` who it is (`/ipfs/id/1.0.0`) and records the answer.
    @discardableResult
    public func identify(_ peer: PeerID) async throws -> IdentifyInfo {
        let stream = try await newStream(to: peer, protocols: [IdentifyInfo.protocolID])
        let info = try await Self.readIdentify(stream, from: peer)
        state.withLockedValue { $0.identified[peer] = info }
        return info
    }

    static func readIdentify(_ stream: Libp2pStream, from peer: PeerID) async throws -> IdentifyInfo {
        var decoder = LengthPrefixedDecoder(maxMessageSize: IdentifyInfo.maxMessageSize)
        decoder.append(try await stream.readToEnd(limit: IdentifyInfo.maxMessageSize + 10))
        guard let body = try decoder.next() else { throw Libp2pError("identify: \(peer) sent a truncated message") }
        let info = try IdentifyInfo(body: body)
        if let key = info.publicKey, !peer.matches(key) {
            throw Libp2pError("identify: \(peer) sent a public key that is not its own")
        }
        return info
    }

    func receiveIdentifyPush(_ stream: Libp2pStream) async {
        if let info = try? await Self.readIdentify(stream, from: stream.remotePeer) {
            state.withLockedValue { $0.identified[stream.remotePeer] = info }
        }
        await stream.closeWrite()
    }

    /// Sends our current Identify record to every connected peer (`/ipfs/id/push/1.0.0`),
    /// e.g. after a protocol handler was added.
    public func pushIdentify() async {
        for peer in connectedPeers {
            guard let stream = try? await newStream(to: peer, protocols: [IdentifyInfo.pushProtocolID]) else { continue }
            try? await stream.write(localIdentify(observed: nil).encoded())
            await stream.closeWrite()
        }
    }

    /// Closes the connection to `peer`, if any.
    public func disconnect(_ peer: PeerID) {
        guard let handler = state.withLockedValue({ $0.connections[peer] }) else { return }
        handler.eventLoop.execute { handler.close() }
    }

    /// Stops listening and closes every connection.
    public func shutdown() async {
        let (listeners, connections) = state.withLockedValue { s in
            s.closed = true
            return (s.listeners, Array(s.connections.values))
        }
        for l in listeners { try? await l.close() }
        for c in connections { c.eventLoop.execute { c.close() } }
    }
}
