import Identity
import Testing
import Libp2p

@Suite struct YamuxSessionWireTests {
    @Test func openStreamSendsSynAtOnceAndClientUsesOddIDs() throws {
        var client = YamuxSession(role: .client)
        #expect(try client.openStream() == 1)
        #expect(try client.openStream() == 3)
        #expect(client.takeOutbound() == frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 0),
                                                   .windowUpdate(streamID: 3, flags: .syn, delta: 0)))
        var server = YamuxSession(role: .server)
        #expect(try server.openStream() == 2)
        #expect(server.takeOutbound() == [0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00])
    }

    @Test func largerReceiveWindowIsAdvertisedWithSynAndAck() throws {
        var config = YamuxConfiguration()
        config.receiveWindow = 1024 * 1024
        var client = YamuxSession(role: .client, configuration: config)
        _ = try client.openStream()
        #expect(client.takeOutbound() == frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 768 * 1024)))

        var server = YamuxSession(role: .server, configuration: config)
        #expect(try server.receive(frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 768 * 1024))) == [.streamOpened(1)])
        #expect(server.takeOutbound().isEmpty, "ACK is lazy")
        #expect(try server.write([9], on: 1) == 1)
        // The ACK goes out on a window update carrying the extra window, then the data.
        #expect(server.takeOutbound() == frameBytes(.windowUpdate(streamID: 1, flags: .ack, delta: 768 * 1024),
                                                   .data(streamID: 1, payload: [9])))
        #expect(server.info(on: 1)?.sendWindow == UInt32(1024 * 1024 - 1))
        #expect(server.info(on: 1)?.receiveWindow == UInt32(1024 * 1024))
    }

    @Test func ackRidesOnTheFirstDataFrame() throws {
        var server = YamuxSession(role: .server)
        #expect(try server.receive(frameBytes(.data(streamID: 1, flags: .syn, payload: [1, 2, 3]))) == [.streamOpened(1), .data(1, [1, 2, 3])])
        #expect(server.takeOutbound().isEmpty)
        #expect(try server.write([4, 5], on: 1) == 2)
        #expect(try server.write([6], on: 1) == 1)
        #expect(server.takeOutbound() == frameBytes(.data(streamID: 1, flags: .ack, payload: [4, 5]),
                                                   .data(streamID: 1, payload: [6])))
    }

    @Test func ackRidesOnFinWhenTheAcceptorOnlyCloses() throws {
        var server = YamuxSession(role: .server)
        _ = try server.receive(frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 0)))
        server.close(1)
        #expect(server.takeOutbound() == frameBytes(.windowUpdate(streamID: 1, flags: [.ack, .fin], delta: 0)))
    }

    @Test func pingIsAnsweredAndMatched() throws {
        var a = YamuxSession(role: .client)
        var b = YamuxSession(role: .server)
        let opaque = a.ping()
        let request = a.takeOutbound()
        #expect(request == frameBytes(.ping(flags: .syn, opaque: opaque)))
        #expect(try b.receive(request) == [])
        let response = b.takeOutbound()
        #expect(response == frameBytes(.ping(flags: .ack, opaque: opaque)))
        #expect(try a.receive(response) == [.pingResponse(opaque)])
        // An unsolicited or repeated response is ignored.
        #expect(try a.receive(response) == [])
    }

    @Test func onlyTheNewestPingsAreAwaited() throws {
        var config = YamuxConfiguration()
        config.maxOutstandingPings = 2
        var session = YamuxSession(role: .client, configuration: config)
        let first = session.ping()
        let second = session.ping()
        let third = session.ping()
        #expect(Set([first, second, third]).count == 3)
        let responses = frameBytes(.ping(flags: .ack, opaque: first), .ping(flags: .ack, opaque: second), .ping(flags: .ack, opaque: third))
        #expect(try session.receive(responses) == [.pingResponse(second), .pingResponse(third)])
    }

    @Test func resetSendsRstAndForgetsTheStream() throws {
        var client = YamuxSession(role: .client)
        let id = try client.openStream()
        _ = client.takeOutbound()
        #expect(try client.write(Array(repeating: 1, count: 300 * 1024), on: id) == 300 * 1024)
        #expect(client.queuedByteCount == 300 * 1024 - 256 * 1024)
        _ = client.takeOutbound()
        client.reset(id)
        #expect(client.takeOutbound() == frameBytes(.windowUpdate(streamID: id, flags: .rst, delta: 0)))
        #expect(client.streamCount == 0)
        #expect(client.queuedByteCount == 0)
        let error = #expect(throws: YamuxError.self) { try client.write([1], on: id) }
        #expect(error?.code == .streamNotOpen)
        #expect(error?.isProtocolViolation == false)
        // Reset and close of a forgotten stream are no-ops.
        client.reset(id)
        client.close(id)
        #expect(client.takeOutbound().isEmpty)
    }

    @Test func finWaitsBehindQueuedData() throws {
        var pair = YamuxTestPair()
        pair.server.autoConsume = false
        let id = try pair.client.session.openStream()
        let data = pattern(400 * 1024, seed: 3)
        #expect(try pair.client.session.write(data, on: id) == data.count)
        pair.client.session.close(id)
        #expect(pair.client.session.info(on: id)?.isWriteClosed == true)
        let error = #expect(throws: YamuxError.self) { try pair.client.session.write([1], on: id) }
        #expect(error?.code == .streamNotWritable)
        try pair.pump()
        #expect(pair.server.received[id]?.count == 256 * 1024)
        #expect(!pair.server.remoteClosed.contains(id), "FIN must not overtake queued data")
        pair.server.session.consumed(pair.server.unconsumed, on: id)
        try pair.pump()
        #expect(pair.server.received[id] == data)
        #expect(pair.server.remoteClosed.contains(id))
        #expect(pair.server.events.last == .remoteClosed(id))
    }
}

@Suite struct YamuxSessionTransferTests {
    @Test func hundredConcurrentStreamsEcho() throws {
        var pair = YamuxTestPair()
        pair.server.echo = true
        var sent: [UInt32: [UInt8]] = [:]
        for i in 0..<100 {
            let id = try pair.client.session.openStream()
            // Sizes straddle the 256 KiB window so some streams stall and resume.
            let data = pattern(1 + (i * 7919) % (600 * 1024), seed: UInt64(i))
            sent[id] = data
            try pair.client.send(data, on: id, thenClose: true)
        }
        try pair.pump()
        #expect(pair.server.opened.count == 100)
        for (id, data) in sent {
            #expect(pair.client.received[id] == data, "stream \(id)")
            #expect(pair.client.remoteClosed.contains(id))
        }
        #expect(pair.client.session.streamCount == 0)
        #expect(pair.server.session.streamCount == 0)
        #expect(pair.client.session.queuedByteCount == 0)
        #expect(pair.server.session.queuedByteCount == 0)
        #expect(pair.client.resets.isEmpty && pair.server.resets.isEmpty)
    }

    @Test func sixteenMebibytesOnOneStreamWithRandomConsumption() throws {
        let total = 16 * 1024 * 1024
        let source = pattern(total, seed: 16)
        let expected = SHA256.hash(source)

        var client = YamuxSession(role: .client)
        var server = YamuxSession(role: .server)
        let id = try client.openStream()
        var offset = 0
        var hasher = SHA256.Hasher()
        var receivedCount = 0
        var unread = 0
        var remoteClosed = false
        var rng = SplitMix64(seed: 99)
        var maxInFlight = 0

        func offer(_ client: inout YamuxSession) throws {
            while offset < total {
                let chunk = Array(source[offset..<min(offset + 64 * 1024, total)])
                let n = try client.write(chunk, on: id)
                offset += n
                if n < chunk.count { break } // Short write: wait for `.writable`.
            }
            if offset == total, client.info(on: id)?.isWriteClosed == false { client.close(id) }
        }

        try offer(&client)
        var rounds = 0
        while !remoteClosed {
            rounds += 1
            #expect(rounds < 100_000)
            if rounds >= 100_000 { break }
            let toServer = client.takeOutbound()
            for event in try server.receive(toServer) {
                switch event {
                case .streamOpened(let opened): #expect(opened == id)
                case .data(_, let bytes):
                    hasher.update(bytes)
                    receivedCount += bytes.count
                    unread += bytes.count
                case .remoteClosed: remoteClosed = true
                default: Issue.record("unexpected \(event)")
                }
            }
            maxInFlight = max(maxInFlight, server.info(on: id).map { Int($0.unconsumedBytes) } ?? 0)
            // The application reads a random amount of what is buffered.
            if unread > 0 {
                let chunk = Int.random(in: 1...min(unread, 100_000), using: &rng)
                server.consumed(chunk, on: id)
                unread -= chunk
            }
            for event in try client.receive(server.takeOutbound()) {
                if case .writable = event { try offer(&client) }
            }
        }
        #expect(receivedCount == total)
        #expect(hasher.finalize() == expected)
        #expect(maxInFlight <= 256 * 1024)
        server.close(id)
        _ = try client.receive(server.takeOutbound())
        #expect(client.streamCount == 0)
        #expect(server.streamCount == 0)
    }

    @Test func receiverThatNeverConsumesHoldsTheSenderToOneWindow() throws {
        var pair = YamuxTestPair()
        pair.server.autoConsume = false
        let id = try pair.client.session.openStream()
        var accepted = 0
        // Keep writing until the session refuses more.
        for round in 0..<20 {
            let n = try pair.client.session.write(pattern(100 * 1024, seed: UInt64(round)), on: id)
            accepted += n
            try pair.pump()
            if n == 0 { break }
        }
        // Exactly one window in flight, and at most one queue's worth held back.
        #expect(pair.server.received[id]?.count == 256 * 1024)
        #expect(pair.server.session.info(on: id)?.receiveWindow == 0)
        #expect(pair.server.session.info(on: id)?.unconsumedBytes == 256 * 1024)
        #expect(pair.client.session.info(on: id)?.sendWindow == 0)
        #expect(pair.client.session.info(on: id)?.queuedBytes == 256 * 1024)
        #expect(pair.client.session.queuedByteCount == 256 * 1024)
        #expect(accepted == 512 * 1024)
        #expect(pair.client.session.writableCapacity(on: id) == 0)
        #expect(try pair.client.session.write([1, 2, 3], on: id) == 0)
        #expect(pair.client.session.outboundByteCount == 0)

        // Reading less than half a window returns no credit yet.
        pair.server.session.consumed(100 * 1024, on: id)
        #expect(pair.server.session.takeOutbound().isEmpty)
        // Crossing half the window sends one update for everything read.
        pair.server.session.consumed(28 * 1024, on: id)
        #expect(pair.server.session.takeOutbound() == frameBytes(.windowUpdate(streamID: id, flags: .ack, delta: 128 * 1024)))
        let events = try pair.client.session.receive(frameBytes(.windowUpdate(streamID: id, flags: .ack, delta: 128 * 1024)))
        #expect(events == [.writable(id)])
        #expect(pair.client.session.info(on: id)?.queuedBytes == 128 * 1024)
        #expect(pair.client.session.writableCapacity(on: id) == 128 * 1024)
    }

    @Test func writableFollowsAShortWrite() throws {
        var pair = YamuxTestPair()
        pair.server.autoConsume = false
        let id = try pair.client.session.openStream()
        #expect(try pair.client.session.write(pattern(600 * 1024, seed: 1), on: id) == 512 * 1024)
        try pair.pump()
        #expect(!pair.client.events.contains(.writable(id)))
        pair.server.session.consumed(256 * 1024, on: id)
        try pair.pump()
        #expect(pair.client.events.filter { $0 == .writable(id) }.count == 1)
    }

    @Test func sessionQueueLimitBoundsAllStreams() throws {
        var config = YamuxConfiguration()
        config.maxQueuedBytesPerSession = 300 * 1024
        var pair = YamuxTestPair(client: config)
        pair.server.autoConsume = false
        let a = try pair.client.session.openStream()
        let b = try pair.client.session.openStream()
        #expect(try pair.client.session.write(pattern(512 * 1024, seed: 1), on: a) == 512 * 1024)
        #expect(try pair.client.session.write(pattern(512 * 1024, seed: 2), on: b) == 256 * 1024 + 44 * 1024)
        #expect(pair.client.session.queuedByteCount == 300 * 1024)
        // Resetting `a` frees session room: `b` hears about it without any inbound bytes.
        pair.client.session.reset(a)
        #expect(pair.client.session.takeEvents() == [.writable(b)])
    }

    @Test func hundredThousandStreamsOpenedAndClosedLeaveNothingBehind() throws {
        var pair = YamuxTestPair()
        pair.server.echo = true
        var opened = 0
        while opened < 100_000 {
            for _ in 0..<200 {
                let id = try pair.client.session.openStream()
                try pair.client.send([UInt8(truncatingIfNeeded: id)], on: id, thenClose: true)
                opened += 1
            }
            try pair.pump()
            #expect(pair.client.session.streamCount == 0)
            #expect(pair.server.session.streamCount == 0)
            pair.client.received.removeAll()
            pair.client.events.removeAll(keepingCapacity: true)
            pair.server.events.removeAll(keepingCapacity: true)
        }
        #expect(pair.server.opened.count == 100_000)
        #expect(pair.client.session.streamCount == 0 && pair.server.session.streamCount == 0)
        #expect(pair.client.session.streamIDs.isEmpty)
        #expect(pair.client.session.queuedByteCount == 0 && pair.server.session.queuedByteCount == 0)
        #expect(pair.client.resets.isEmpty && pair.server.resets.isEmpty)
    }
}

@Suite struct YamuxSessionLimitTests {
    @Test func excessInboundStreamsAreReset() throws {
        var config = YamuxConfiguration()
        config.maxConcurrentStreams = 3
        var pair = YamuxTestPair(server: config)
        var ids: [UInt32] = []
        for _ in 0..<5 {
            let id = try pair.client.session.openStream()
            ids.append(id)
            _ = try pair.client.session.write([1, 2, 3], on: id)
        }
        try pair.pump()
        #expect(pair.server.opened == Array(ids.prefix(3)))
        #expect(pair.client.resets == Set(ids.suffix(2)))
        #expect(pair.client.session.streamCount == 3)
        #expect(pair.server.session.streamCount == 3)
    }

    @Test func openStreamRespectsConcurrencyAndAckBacklog() throws {
        var config = YamuxConfiguration()
        config.maxConcurrentStreams = 4
        config.maxUnacknowledgedOutboundStreams = 2
        var pair = YamuxTestPair(client: config)
        let a = try pair.client.session.openStream()
        let b = try pair.client.session.openStream()
        let backlog = #expect(throws: YamuxError.self) { try pair.client.session.openStream() }
        #expect(backlog?.code == .ackBacklogFull)
        try pair.pump()
        // The server has not written: no ACK yet. Once it writes, the backlog drains.
        _ = try pair.server.session.write([0], on: a)
        _ = try pair.server.session.write([0], on: b)
        try pair.pump()
        _ = try pair.client.session.openStream()
        _ = try pair.client.session.openStream()
        let tooMany = #expect(throws: YamuxError.self) { try pair.client.session.openStream() }
        #expect(tooMany?.code == .tooManyStreams)
        #expect(tooMany?.description.contains("4") == true)
    }

    @Test func goAwayStopsNewStreamsAndDrains() throws {
        var pair = YamuxTestPair()
        let id = try pair.client.session.openStream()
        try pair.pump()
        pair.server.session.goAway()
        #expect(pair.server.session.takeOutbound() == frameBytes(.goAway(.normal)))
        _ = try pair.client.handle(pair.client.session.receive(frameBytes(.goAway(.normal))))
        #expect(pair.client.goAways == [.normal])
        let error = #expect(throws: YamuxError.self) { try pair.client.session.openStream() }
        #expect(error?.code == .goingAway)
        // Existing streams keep working.
        try pair.client.send([1, 2, 3], on: id, thenClose: true)
        try pair.pump()
        #expect(pair.server.received[id] == [1, 2, 3])
        #expect(!pair.server.session.isDrained)
        pair.server.session.close(id)
        try pair.pump()
        #expect(pair.server.session.isDrained)
        #expect(pair.client.session.isDrained)
    }

    @Test func inboundSynAfterOurGoAwayIsReset() throws {
        var server = YamuxSession(role: .server)
        server.goAway(.normal)
        _ = server.takeOutbound()
        #expect(try server.receive(frameBytes(.data(streamID: 1, flags: .syn, payload: [1]))) == [])
        #expect(server.takeOutbound() == frameBytes(.windowUpdate(streamID: 1, flags: .rst, delta: 0)))
        // Its in-flight data is dropped quietly.
        #expect(try server.receive(frameBytes(.data(streamID: 1, payload: [2]))) == [])
        #expect(server.streamCount == 0)
    }
}
