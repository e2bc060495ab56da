import Testing
import Libp2p

/// Each protocol violation is thrown with its own code and a message naming it; the session is
/// then failed and has queued Go Away (protocol error).
@Suite struct YamuxViolationTests {
    /// Feeds `setup` (must be accepted), then `offending`; returns the error it throws.
    func violation(role: YamuxSession.Role = .server,
                   setup: [UInt8] = [],
                   _ offending: [UInt8],
                   sourceLocation: SourceLocation = #_sourceLocation) throws -> YamuxError? {
        var session = YamuxSession(role: role)
        _ = try session.receive(setup)
        _ = session.takeOutbound()
        let error = #expect(throws: YamuxError.self, sourceLocation: sourceLocation) { try session.receive(offending) }
        #expect(error?.isProtocolViolation == true, sourceLocation: sourceLocation)
        #expect(session.failure == error, sourceLocation: sourceLocation)
        #expect(session.takeOutbound() == frameBytes(.goAway(.protocolError)), sourceLocation: sourceLocation)
        return error
    }

    @Test func dataForAStreamThePeerNeverOpened() throws {
        let error = try violation(frameBytes(.data(streamID: 5, payload: [1])))
        #expect(error?.code == .unknownStream)
        #expect(error?.description == "yamux protocol violation (unknownStream): data frame (flags none) for stream 5, which was never opened: the peer never opened it with SYN (highest id it opened is 0)")
    }

    @Test func frameForOurOwnIDWeNeverOpened() throws {
        let error = try violation(frameBytes(.windowUpdate(streamID: 4, flags: .ack, delta: 10)))
        #expect(error?.code == .unknownStream)
        #expect(error?.message.contains("we have not opened it") == true)
    }

    @Test func dataBeyondTheReceiveWindow() throws {
        let error = try violation(setup: frameBytes(.data(streamID: 1, flags: .syn, payload: Array(repeating: 0, count: 200 * 1024))),
                                  frameBytes(.data(streamID: 1, payload: Array(repeating: 0, count: 57 * 1024))))
        #expect(error?.code == .receiveWindowExceeded)
        #expect(error?.message.contains("58368 data bytes on stream 1, but its receive window has only 57344 bytes left") == true)
    }

    @Test func exactlyTheWindowIsFineOneByteMoreIsNot() throws {
        let full = frameBytes(.data(streamID: 1, flags: .syn, payload: Array(repeating: 0, count: 256 * 1024)))
        let error = try violation(setup: full, frameBytes(.data(streamID: 1, payload: [0])))
        #expect(error?.code == .receiveWindowExceeded)
    }

    @Test func windowOverflowIsRejectedOnTheHeaderAlone() throws {
        // Only the header of the offending frame arrives; the payload is never awaited.
        let header = YamuxHeader(type: .data, streamID: 1, length: 100 * 1024).encoded
        let error = try violation(setup: frameBytes(.data(streamID: 1, flags: .syn, payload: Array(repeating: 0, count: 200 * 1024))), header)
        #expect(error?.code == .receiveWindowExceeded)
    }

    @Test func synDataBeyondTheInitialWindowEvenIfWeGrantMore() throws {
        // Our larger window is only advertised with our ACK; the opener must stay within 256 KiB.
        var config = YamuxConfiguration()
        config.receiveWindow = 1024 * 1024
        var server = YamuxSession(role: .server, configuration: config)
        let header = YamuxHeader(type: .data, flags: .syn, streamID: 1, length: 256 * 1024 + 1).encoded
        let error = #expect(throws: YamuxError.self) { try server.receive(header) }
        #expect(error?.code == .receiveWindowExceeded)
    }

    @Test func dataFrameLargerThanAnyWindow() throws {
        let error = try violation(YamuxHeader(type: .data, flags: .syn, streamID: 1, length: 0xFFFF_FFFF).encoded)
        #expect(error?.code == .frameTooLarge)
    }

    @Test func dataAfterThePeersRst() throws {
        let error = try violation(setup: frameBytes(.data(streamID: 1, flags: .syn, payload: [1]),
                                                    .windowUpdate(streamID: 1, flags: .rst, delta: 0)),
                                  frameBytes(.data(streamID: 1, payload: [2])))
        #expect(error?.code == .frameAfterReset)
        #expect(error?.message.contains("after resetting it with RST") == true)
    }

    @Test func windowUpdateAfterThePeersRst() throws {
        let error = try violation(setup: frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 0),
                                                    .data(streamID: 1, flags: .rst, payload: [])),
                                  frameBytes(.windowUpdate(streamID: 1, delta: 5)))
        #expect(error?.code == .frameAfterReset)
    }

    @Test func synReusingALiveID() throws {
        let error = try violation(setup: frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 0)),
                                  frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 0)))
        #expect(error?.code == .duplicateStream)
        #expect(error?.message == "peer sent SYN for stream 1, which is already open")
    }

    @Test func synReusingAFinishedOrLowerID() throws {
        var server = YamuxSession(role: .server)
        _ = try server.receive(frameBytes(.windowUpdate(streamID: 1, flags: [.syn, .fin], delta: 0)))
        server.close(1)
        #expect(server.streamCount == 0)
        let reused = #expect(throws: YamuxError.self) { try server.receive(frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 0))) }
        #expect(reused?.code == .streamIDReused)
        #expect(reused?.message == "peer sent SYN for stream 1, which already existed and was closed both ways; stream ids are never reused")
    }

    @Test func synsMayArriveOutOfOrder() throws {
        // rust-yamux picks the id at open time but sends the SYN with the first frame.
        var server = YamuxSession(role: .server)
        #expect(try server.receive(frameBytes(.data(streamID: 7, flags: .syn, payload: [7]),
                                              .data(streamID: 5, flags: .syn, payload: [5]))) ==
                [.streamOpened(7), .data(7, [7]), .streamOpened(5), .data(5, [5])])
        // Without SYN, an id above every one opened was certainly never opened.
        let error = #expect(throws: YamuxError.self) { try server.receive(frameBytes(.data(streamID: 9, payload: [9]))) }
        #expect(error?.code == .unknownStream)
    }

    @Test func synWithTheWrongParity() throws {
        let server = try violation(role: .server, frameBytes(.windowUpdate(streamID: 2, flags: .syn, delta: 0)))
        #expect(server?.code == .wrongStreamIDParity)
        #expect(server?.message.contains("even ids are ours to open as the server") == true)
        let client = try violation(role: .client, frameBytes(.data(streamID: 1, flags: .syn, payload: [1])))
        #expect(client?.code == .wrongStreamIDParity)
    }

    @Test func streamFrameOnTheSessionID() throws {
        let error = try violation(frameBytes(.data(streamID: 0, payload: [1])))
        #expect(error?.code == .invalidStreamID)
    }

    @Test func dataAfterThePeersFin() throws {
        let live = try violation(setup: frameBytes(.data(streamID: 1, flags: [.syn, .fin], payload: [1])),
                                 frameBytes(.data(streamID: 1, payload: [2])))
        #expect(live?.code == .dataAfterFIN)
        // Closed both ways and forgotten: a late window update is fine, data is not.
        var server = YamuxSession(role: .server)
        _ = try server.receive(frameBytes(.data(streamID: 1, flags: [.syn, .fin], payload: [1])))
        server.close(1)
        #expect(server.streamCount == 0)
        #expect(try server.receive(frameBytes(.windowUpdate(streamID: 1, delta: 100))) == [])
        let error = #expect(throws: YamuxError.self) { try server.receive(frameBytes(.data(streamID: 1, payload: [2]))) }
        #expect(error?.code == .dataAfterFIN)
    }

    @Test func sendWindowOverflow() throws {
        let error = try violation(frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 0xFFFF_FFFF)))
        #expect(error?.code == .sendWindowOverflow)
    }

    @Test func badVersionAndTypeReachTheSession() throws {
        #expect(try violation([0x02] + Array(repeating: 0, count: 11))?.code == .unsupportedVersion)
        #expect(try violation([0x00, 0x09] + Array(repeating: 0, count: 10))?.code == .unknownFrameType)
    }

    @Test func failedSessionStaysFailed() throws {
        var server = YamuxSession(role: .server)
        _ = try server.receive(frameBytes(.windowUpdate(streamID: 1, flags: .syn, delta: 0)))
        let first = #expect(throws: YamuxError.self) { try server.receive(frameBytes(.data(streamID: 9, payload: [1]))) }
        let again = #expect(throws: YamuxError.self) { try server.receive(frameBytes(.ping(flags: .syn, opaque: 1))) }
        #expect(first == again)
        let write = #expect(throws: YamuxError.self) { try server.write([1], on: 1) }
        #expect(write?.code == .sessionFailed)
        #expect(write?.message.contains("stream 9") == true)
        #expect(throws: YamuxError.self) { try server.openStream() }
        server.close(1)
        server.reset(1)
        server.consumed(1, on: 1)
        #expect(server.takeOutbound() == frameBytes(.goAway(.protocolError)))
        #expect(server.takeOutbound().isEmpty)
    }

    // MARK: - Not violations

    @Test func dataInFlightForAStreamWeResetIsDroppedQuietly() throws {
        var server = YamuxSession(role: .server)
        #expect(try server.receive(frameBytes(.data(streamID: 1, flags: .syn, payload: [1]))) == [.streamOpened(1), .data(1, [1])])
        server.reset(1)
        #expect(server.takeOutbound() == frameBytes(.windowUpdate(streamID: 1, flags: .rst, delta: 0)))
        // The peer had already sent the rest of its window, then FIN, then its own reaction.
        let late = frameBytes(.data(streamID: 1, payload: Array(repeating: 2, count: 200 * 1024)),
                              .data(streamID: 1, payload: Array(repeating: 3, count: 56 * 1024)),
                              .windowUpdate(streamID: 1, flags: .fin, delta: 0),
                              .windowUpdate(streamID: 1, flags: .rst, delta: 0))
        #expect(try server.receive(late) == [])
        #expect(server.failure == nil)
        #expect(server.takeOutbound().isEmpty)
        // Other streams are unaffected.
        #expect(try server.receive(frameBytes(.data(streamID: 3, flags: .syn, payload: [4]))) == [.streamOpened(3), .data(3, [4])])
    }

    @Test func framesForStreamsForgottenLongAgoAreDroppedQuietly() throws {
        var config = YamuxConfiguration()
        config.finishedStreamMemory = 2
        var server = YamuxSession(role: .server, configuration: config)
        _ = try server.receive(frameBytes(.windowUpdate(streamID: 1, flags: [.syn, .rst], delta: 0),
                                          .windowUpdate(streamID: 3, flags: [.syn, .rst], delta: 0),
                                          .windowUpdate(streamID: 5, flags: [.syn, .rst], delta: 0)))
        // Stream 1 fell out of the memory: a late frame for it cannot be judged, so it is dropped.
        #expect(try server.receive(frameBytes(.data(streamID: 1, payload: [1]))) == [])
        // Stream 3 is still remembered as reset by the peer.
        #expect(throws: YamuxError.self) { try server.receive(frameBytes(.data(streamID: 3, payload: [1]))) }
    }

    @Test func refusedStreamReportsResetToTheOpener() throws {
        var client = YamuxSession(role: .client)
        let id = try client.openStream()
        _ = try client.write([1, 2, 3], on: id)
        #expect(try client.receive(frameBytes(.windowUpdate(streamID: id, flags: .rst, delta: 0))) == [.reset(id)])
        #expect(client.streamCount == 0)
        // A reset stream no longer counts towards the ACK backlog.
        var config = YamuxConfiguration()
        config.maxUnacknowledgedOutboundStreams = 1
        var limited = YamuxSession(role: .client, configuration: config)
        let a = try limited.openStream()
        _ = try limited.receive(frameBytes(.windowUpdate(streamID: a, flags: .rst, delta: 0)))
        #expect(try limited.openStream() == 3)
    }
}
