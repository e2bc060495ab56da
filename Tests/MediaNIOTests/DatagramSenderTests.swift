import NIOConcurrencyHelpers
import NIOCore
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

/// The media socket's reader on real loopback sockets.
@Suite struct DatagramReaderTests {
    final class Collected: @unchecked Sendable {
        let lock = NIOLockedValueBox<(datagrams: [ReceivedDatagram], truncated: Int)>(([], 0))
    }

    @Test func batchesArriveInOrderAndAnOversizeDatagramIsCounted() async throws {
        let fd = try MediaSocket.open(boundTo: try NIOCore.SocketAddress(ipAddress: "127.0.0.1", port: 0))
        defer { close(fd) }
        let to = try #require(MediaSocket.localAddress(of: fd))
        let senderFD = try MediaSocket.open(boundTo: try NIOCore.SocketAddress(ipAddress: "127.0.0.1", port: 0))
        defer { close(senderFD) }
        let from = try #require(MediaSocket.localAddress(of: senderFD))

        let reader = DatagramReader(fd: fd)
        let collected = Collected()
        let exit = Task.detached { () -> DatagramReader.Exit in
            reader.run(
                deliver: { batch in
                    collected.lock.withLockedValue { $0.datagrams += batch }
                    reader.batchDone()
                },
                onError: { _ in },
                onTruncated: { collected.lock.withLockedValue { $0.truncated += 1 } })
        }
        // 100 datagrams (two recvmmsg batches at least), one of them larger than a receive slot.
        let datagrams = (0..<100).map { i in
            MediaServer.Datagram(bytes: i == 50 ? [UInt8](repeating: 9, count: DatagramReader.maxDatagram + 1) : [UInt8(i), 1, 2], to: to)
        }
        var failures: [DatagramSendFailure] = []
        #expect(DatagramSender().send(datagrams, fd: senderFD, failures: &failures) == 100)
        let deadline = ContinuousClock.now + .seconds(30)
        while collected.lock.withLockedValue({ $0.datagrams.count + $0.truncated }) < 100, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        reader.stop()
        guard case .stopped = await exit.value else {
            Issue.record("the reader did not stop cleanly")
            return
        }
        let (got, truncated) = collected.lock.withLockedValue { ($0.datagrams, $0.truncated) }
        #expect(truncated == 1)
        #expect(got.map(\.bytes) == (0..<100).filter { $0 != 50 }.map { [UInt8($0), 1, 2] })
        #expect(got.allSatisfy { $0.from == from })
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
