import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTC
import SFU
import Testing

@testable import MediaNIO

#if canImport(Glibc)
import Glibc
#endif

/// The media socket's send loop on real loopback sockets: a datagram the kernel refuses is
/// dropped and reported, and the datagrams after it in the same sendmmsg batch still arrive.
@Suite struct DatagramSenderTests {
    /// A plain UDP socket on 127.0.0.1 that collects what arrives.
    final class Receiver {
        let fd: Int32
        let address: RTC.SocketAddress

        init() throws {
            fd = try MediaSocket.open(boundTo: try NIOCore.SocketAddress(ipAddress: "127.0.0.1", port: 0))
            address = try #require(MediaSocket.localAddress(of: fd))
        }

        deinit { close(fd) }

        /// The next datagram, waiting up to 10 s (loopback delivers during the send call).
        func next() -> [UInt8]? {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 10_000) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            return n >= 0 ? Array(buffer[..<n]) : nil
        }

        /// True when nothing more is queued.
        var isDrained: Bool {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            return poll(&p, 1, 0) == 0
        }
    }

    func sender() throws -> Int32 {
        try MediaSocket.open(boundTo: try NIOCore.SocketAddress(ipAddress: "127.0.0.1", port: 0))
    }

    /// 70,000 bytes exceed the largest UDP payload (65,507): EMSGSIZE, every time.
    static let oversize = [UInt8](repeating: 7, count: 70_000)

    @Test func aRefusedDatagramIsDroppedAndTheRestOfTheBatchIsSent() throws {
        let receiver = try Receiver()
        let fd = try sender()
        defer { close(fd) }
        let to = receiver.address
        let portZero = RTC.SocketAddress(ip: to.ip, port: 0)  // Linux udp_sendmsg: EINVAL
        let batch: [MediaServer.Datagram] = [
            .init(bytes: [0], to: to), .init(bytes: [1], to: to), .init(bytes: Self.oversize, to: to),
            .init(bytes: [3], to: to), .init(bytes: [4], to: portZero), .init(bytes: [5], to: to),
        ]
        var failures: [DatagramSendFailure] = []
        let sent = DatagramSender().send(batch, fd: fd, failures: &failures)
        #expect(sent == 4)
        #expect(failures == [DatagramSendFailure(errno: EMSGSIZE, to: to), DatagramSendFailure(errno: EINVAL, to: portZero)])
        for marker: UInt8 in [0, 1, 3, 5] {
            #expect(receiver.next() == [marker])
        }
        #expect(receiver.isDrained)
    }

    @Test func aFailureFirstInABatchAndAtBatchBoundaries() throws {
        let receiver = try Receiver()
        var size: Int32 = 8 << 20
        _ = setsockopt(receiver.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let fd = try sender()
        defer { close(fd) }
        // 150 datagrams: three sendmmsg batches (64, 64, 22); the refused ones open the first
        // batch, close it, open the second and end the last.
        let refused: Set<Int> = [0, 63, 64, 149]
        let batch = (0..<150).map { i in
            MediaServer.Datagram(bytes: refused.contains(i) ? Self.oversize : [UInt8(i)], to: receiver.address)
        }
        var failures: [DatagramSendFailure] = []
        let sent = DatagramSender().send(batch, fd: fd, failures: &failures)
        #expect(sent == 146)
        #expect(failures.count == 4 && failures.allSatisfy { $0.errno == EMSGSIZE })
        for i in 0..<150 where !refused.contains(i) {
            #expect(receiver.next() == [UInt8(i)])
        }
        #expect(receiver.isDrained)
    }

    @Test func ipv6DestinationsAreEncoded() throws {
        guard let fd6 = try? MediaSocket.open(boundTo: try NIOCore.SocketAddress(ipAddress: "::1", port: 0)) else { return }  // no IPv6 loopback here
        defer { close(fd6) }
        let receiverFD = try MediaSocket.open(boundTo: try NIOCore.SocketAddress(ipAddress: "::1", port: 0))
        defer { close(receiverFD) }
        let to = try #require(MediaSocket.localAddress(of: receiverFD))
        #expect(!to.ip.isIPv4)
        var failures: [DatagramSendFailure] = []
        #expect(DatagramSender().send([.init(bytes: [42], to: to)], fd: fd6, failures: &failures) == 1)
        #expect(failures.isEmpty)
        var p = pollfd(fd: receiverFD, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 10_000) == 1)
    }

    @Test func failuresAreLoggedAtABoundedRate() {
        var log = SendFailureLog(intervalMs: 10_000)
        let a = RTC.SocketAddress(ip: .v4(0x7F00_0001), port: 5000)
        let b = RTC.SocketAddress(ip: .v4(0x7F00_0001), port: 5001)
        // The first failure is logged at once.
        #expect(log.record([.init(errno: EPERM, to: a)], now: 1_000) == .init(counts: ["EPERM": 1], lastDestination: a))
        // Within the interval, failures are only summed…
        #expect(log.record([.init(errno: EPERM, to: a), .init(errno: ENOBUFS, to: b)], now: 2_000) == nil)
        #expect(log.record([.init(errno: EPERM, to: b)], now: 10_999) == nil)
        #expect(log.due(now: 10_999) == nil)
        // …and logged together once it has passed.
        #expect(log.due(now: 11_000) == .init(counts: ["EPERM": 2, "ENOBUFS": 1], lastDestination: b))
        #expect(log.due(now: 30_000) == nil)
        // After a quiet interval, the next failure is logged at once again.
        #expect(log.record([.init(errno: EACCES, to: a)], now: 30_000) == .init(counts: ["EACCES": 1], lastDestination: a))
    }

    @Test func errnoNamesForTheMetricLabel() {
        #expect(errnoName(EPERM) == "EPERM")
        #expect(errnoName(ENOBUFS) == "ENOBUFS")
        #expect(errnoName(EHOSTUNREACH) == "EHOSTUNREACH")
        #expect(errnoName(9999) == "errno_9999")
    }
}

/// The media sockets' reader on real loopback sockets.
@Suite struct DatagramReaderTests {
    final class Collected: @unchecked Sendable {
        let lock = NIOLockedValueBox<(datagrams: [Int: [ReceivedDatagram]], truncated: Int, failed: [(Int, Int32, MediaSocketError)])>(([:], 0, []))
    }

    /// Runs a reader of `sockets` on a thread of its own (as the engine does: a blocking reader
    /// must not hold one of the few threads Swift concurrency runs every test on) while `body`
    /// runs, collecting what it reports, then stops it; returns how it ended.
    static func withReader(_ sockets: [(Int, Int32)], into collected: Collected,
                           _ body: (DatagramReader) async throws -> Void) async throws -> DatagramReader.Exit {
        let reader = try DatagramReader()
        for (number, fd) in sockets { reader.add(number, fd: fd) }
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let exit = pool.runIfActive(eventLoop: MultiThreadedEventLoopGroup.singleton.next()) {
            reader.run(
                deliver: { socket, batch in
                    collected.lock.withLockedValue { $0.datagrams[socket, default: []] += batch }
                    reader.batchDone()
                },
                onError: { _, _ in },
                onTruncated: { _ in collected.lock.withLockedValue { $0.truncated += 1 } },
                onFailed: { socket, fd, error in collected.lock.withLockedValue { $0.failed.append((socket, fd, error)) } })
        }
        var failure: (any Error)?
        do { try await body(reader) } catch { failure = error }
        reader.stop()
        let result = try await exit.get()
        try await pool.shutdownGracefully()
        if let failure { throw failure }
        return result
    }

    static func waitFor(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition(), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    static func socket() throws -> (fd: Int32, address: RTC.SocketAddress) {
        let fd = try MediaSocket.open(boundTo: try NIOCore.SocketAddress(ipAddress: "127.0.0.1", port: 0))
        return (fd, try #require(MediaSocket.localAddress(of: fd)))
    }

    @Test func batchesArriveInOrderAndAnOversizeDatagramIsCounted() async throws {
        let (fd, to) = try Self.socket()  // the reader's: it closes it when it stops
        let (senderFD, from) = try Self.socket()
        defer { close(senderFD) }

        let collected = Collected()
        let exit = try await Self.withReader([(0, fd)], into: collected) { _ in
            // 100 datagrams (two recvmmsg batches at least), one of them larger than a receive slot.
            let datagrams = (0..<100).map { i in
                MediaServer.Datagram(bytes: i == 50 ? [UInt8](repeating: 9, count: DatagramReader.maxDatagram + 1) : [UInt8(i), 1, 2], to: to)
            }
            var failures: [DatagramSendFailure] = []
            #expect(DatagramSender().send(datagrams, fd: senderFD, failures: &failures) == 100)
            try await Self.waitFor { collected.lock.withLockedValue { ($0.datagrams[0]?.count ?? 0) + $0.truncated } >= 100 }
        }
        guard case .stopped = exit else {
            Issue.record("the reader did not stop cleanly")
            return
        }
        let (got, truncated) = collected.lock.withLockedValue { ($0.datagrams[0] ?? [], $0.truncated) }
        #expect(truncated == 1)
        #expect(got.map(\.bytes) == (0..<100).filter { $0 != 50 }.map { [UInt8($0), 1, 2] })
        #expect(got.allSatisfy { $0.from == from })
        // (Its number may name another test's descriptor by now, never this socket.)
        #expect(MediaSocket.localAddress(of: fd) != to, "the reader closed its socket as it stopped")
    }

    /// Three sockets on one reader (the media port and two pipes' sockets): one that fails is
    /// handed back alone, one removed is closed by the reader, and the last is read on.
    @Test func aFailedSocketLeavesTheSetAloneAndARemovedOneIsClosed() async throws {
        let media = try Self.socket(), pipe = try Self.socket(), failing = try Self.socket()
        let (senderFD, _) = try Self.socket()
        defer { close(senderFD) }
        let collected = Collected()
        let exit = try await Self.withReader([(0, media.fd), (1, pipe.fd), (2, failing.fd)], into: collected) { reader in
            let sender = DatagramSender()
            var failures: [DatagramSendFailure] = []
            sender.send([.init(bytes: [0], to: media.address), .init(bytes: [1], to: pipe.address)], fd: senderFD, failures: &failures)
            try await Self.waitFor { collected.lock.withLockedValue { $0.datagrams.count } == 2 }
            #expect(collected.lock.withLockedValue { $0.datagrams.mapValues { $0.map(\.bytes) } } == [0: [[0]], 1: [[1]]])

            // Socket 2 stops being a socket (its number now names a pipe with data in it):
            // recvmmsg fails with ENOTSOCK, which no socket survives.
            var ends: [Int32] = [0, 0]
            #expect(Glibc.pipe(&ends) == 0)
            #expect(dup2(ends[0], failing.fd) == failing.fd)
            close(ends[0])
            defer { close(ends[1]) }
            #expect(Glibc.write(ends[1], "x", 1) == 1)
            try await Self.waitFor { collected.lock.withLockedValue { !$0.failed.isEmpty } }
            let failed = collected.lock.withLockedValue { $0.failed }
            #expect(failed.count == 1 && failed.first?.0 == 2 && failed.first?.1 == failing.fd && failed.first?.2.errno == ENOTSOCK)
            close(failing.fd)  // handed back: ours to close

            // Socket 1 is removed: the reader closes it once no poll uses it. (Its number may
            // name another test's descriptor by then, never this socket.)
            reader.remove(1)
            try await Self.waitFor { MediaSocket.localAddress(of: pipe.fd) != pipe.address }
            #expect(MediaSocket.localAddress(of: pipe.fd) != pipe.address, "the reader closed the removed socket")

            // The media port is read on.
            sender.send([.init(bytes: [2], to: media.address)], fd: senderFD, failures: &failures)
            try await Self.waitFor { collected.lock.withLockedValue { $0.datagrams[0]?.count ?? 0 } == 2 }
            #expect(collected.lock.withLockedValue { $0.datagrams[0]?.map(\.bytes) } == [[0], [2]])
            #expect(failures.isEmpty)
            #expect(collected.lock.withLockedValue { $0.failed.count } == 1)
        }
        guard case .stopped = exit else {
            Issue.record("the reader did not stop cleanly")
            return
        }
    }

    @Test func readErrorsAreClassified() {
        #expect(DatagramReader.classify(EAGAIN) == .retry)
        #expect(DatagramReader.classify(EINTR) == .retry)
        // A queued ICMP error or memory pressure: the socket is read on.
        #expect(DatagramReader.classify(ECONNREFUSED) == .transient)
        #expect(DatagramReader.classify(ENOBUFS) == .transient)
        // Destroyed (SOCK_DESTROY, `ss -K`) or not a socket: closed and bound again.
        #expect(DatagramReader.classify(ECONNABORTED) == .fatal)
        #expect(DatagramReader.classify(EBADF) == .fatal)
    }
}
