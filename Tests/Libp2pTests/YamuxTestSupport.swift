import Identity
import Testing
import Libp2p

/// A minimal application on top of a `YamuxSession`, the way a shell would drive it: it keeps
/// what the session did not take from a write, retries on `.writable`, and reports reads.
struct YamuxTestEndpoint {
    var session: YamuxSession
    var events: [YamuxEvent] = []
    var opened: [UInt32] = []
    var received: [UInt32: [UInt8]] = [:]
    var remoteClosed: Set<UInt32> = []
    var resets: Set<UInt32> = []
    var pingResponses: [UInt32] = []
    var goAways: [YamuxGoAwayCode] = []
    /// Bytes the application wants written that the session has not taken yet.
    var pending: [UInt32: [UInt8]] = [:]
    var closeWhenFlushed: Set<UInt32> = []
    /// Echo every byte back and close after the peer closes.
    var echo = false
    /// Report bytes as consumed as soon as they arrive.
    var autoConsume = true
    /// Keep received bytes in `received` (off for big transfers hashed elsewhere).
    var keepData = true
    var unconsumed = 0
    var onData: ((UInt32, [UInt8]) -> Void)?

    init(_ role: YamuxSession.Role, configuration: YamuxConfiguration = YamuxConfiguration()) {
        session = YamuxSession(role: role, configuration: configuration)
    }

    mutating func send(_ bytes: [UInt8], on id: UInt32, thenClose: Bool = false) throws {
        pending[id, default: []] += bytes
        if thenClose { closeWhenFlushed.insert(id) }
        try flush(id)
    }

    mutating func flush(_ id: UInt32) throws {
        if let bytes = pending[id], !bytes.isEmpty {
            // Offer at most 64 KiB per call, as a shell reading from a socket buffer would.
            let chunk = Array(bytes.prefix(64 * 1024))
            let n = try session.write(chunk, on: id)
            pending[id]!.removeFirst(n)
            if n == chunk.count && !pending[id]!.isEmpty { try flush(id); return }
        }
        if pending[id, default: []].isEmpty {
            pending[id] = nil
            if closeWhenFlushed.remove(id) != nil { session.close(id) }
        }
    }

    mutating func handle(_ newEvents: [YamuxEvent]) throws {
        events += newEvents
        for event in newEvents {
            switch event {
            case .streamOpened(let id):
                opened.append(id)
            case .data(let id, let bytes):
                if keepData { received[id, default: []] += bytes }
                onData?(id, bytes)
                if autoConsume { session.consumed(bytes.count, on: id) } else { unconsumed += bytes.count }
                if echo { try send(bytes, on: id) }
            case .remoteClosed(let id):
                remoteClosed.insert(id)
                if echo {
                    closeWhenFlushed.insert(id)
                    try flush(id)
                }
            case .reset(let id):
                resets.insert(id)
                pending[id] = nil
            case .pingResponse(let opaque):
                pingResponses.append(opaque)
            case .goAway(let code):
                goAways.append(code)
            case .writable(let id):
                try flush(id)
            }
        }
    }
}

/// Two endpoints wired back to back in memory.
struct YamuxTestPair {
    var client: YamuxTestEndpoint
    var server: YamuxTestEndpoint
    /// Called between rounds, e.g. to consume in random chunks.
    var betweenRounds: ((inout YamuxTestPair) -> Void)?
    /// Before every real `receive`, check that feeding the same bytes one at a time to a copy
    /// of the session gives the same events, error, outbound bytes and stream table.
    var verifyDripFeed = false
    var dripChecks = 0

    init(client: YamuxConfiguration = YamuxConfiguration(), server: YamuxConfiguration = YamuxConfiguration()) {
        self.client = YamuxTestEndpoint(.client, configuration: client)
        self.server = YamuxTestEndpoint(.server, configuration: server)
    }

    /// Shuttles bytes until both directions are quiet.
    mutating func pump(maxRounds: Int = 1_000_000) throws {
        for _ in 0..<maxRounds {
            try client.handle(client.session.takeEvents())
            try server.handle(server.session.takeEvents())
            let toServer = client.session.takeOutbound()
            let toClient = server.session.takeOutbound()
            if toServer.isEmpty && toClient.isEmpty {
                if let hook = betweenRounds {
                    hook(&self)
                    if client.session.outboundByteCount == 0 && server.session.outboundByteCount == 0 { return }
                    continue
                }
                return
            }
            if !toServer.isEmpty {
                checkDripFeed(server.session, toServer)
                try server.handle(server.session.receive(toServer))
            }
            if !toClient.isEmpty {
                checkDripFeed(client.session, toClient)
                try client.handle(client.session.receive(toClient))
            }
            betweenRounds?(&self)
        }
        Issue.record("pump did not settle")
    }

    private mutating func checkDripFeed(_ session: YamuxSession, _ bytes: [UInt8]) {
        guard verifyDripFeed else { return }
        dripChecks += 1
        let whole = feed(session, bytes) { $0 }
        let dripped = feed(session, bytes) { _ in 1 }
        #expect(whole == dripped)
    }
}

func frameBytes(_ frames: YamuxFrame...) -> [UInt8] {
    frames.flatMap(\.encoded)
}

func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    var out = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        var word = rng.next()
        for _ in 0..<8 where i < count {
            out[i] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            i += 1
        }
    }
    return out
}
