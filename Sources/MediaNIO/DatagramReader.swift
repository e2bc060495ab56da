// The media sockets' receive path: recvmmsg(2) on a thread of its own, each batch handed to the
// media event loop. One reader polls every socket of the engine: the media port and the sockets
// of the pipes this node dialled (Specs/media.md "Pipes"). The engine does not let NIO read
// them: SwiftNIO 2.101's DatagramChannel, on EPOLLERR with a fatal pending error (e.g.
// ECONNABORTED on a socket destroyed with `ss -K`), reads SO_ERROR, then drains the socket
// expecting data, and traps when there is none (BaseSocketChannel.readEOF0:
// `preconditionFailure("got .readEOF and read returned not reading any bytes, nor EOF.")`, an
// `assert` in readable0 before it in debug builds): the whole node dies. Reading the
// descriptors here, every error is this code's to classify, and a socket that fails is dropped
// from the set alone.
import CUDP
import NIOConcurrencyHelpers
import RTC

#if canImport(Glibc)
import Glibc
#endif

/// A datagram read from a media socket.
struct ReceivedDatagram: Sendable {
    var bytes: [UInt8]
    var from: RTC.SocketAddress
}

/// Reads a set of non-blocking UDP descriptors with recvmmsg until stopped. Each socket has a
/// number (the engine's: 0 is the media port). A socket whose read fails for good is dropped
/// from the set and reported; the others are read on.
///
/// Descriptors: one passed to `add` belongs to the reader until it comes back. A socket that
/// fails comes back through `onFailed` (its owner closes it); one passed to `remove` is closed
/// by the reader once it no longer polls it (its owner must not use it after `remove`). Either
/// way a descriptor is closed only when nothing can use it again, so its number cannot be
/// reused under a read or a write.
final class DatagramReader: Sendable {
    enum Exit: Sendable {
        case stopped
        /// poll(2) itself failed: every socket still in the set was reported to `onFailed`.
        case failed(MediaSocketError)
    }

    /// Datagrams per recvmmsg call.
    static let batchSize = 64
    /// Receive buffer per datagram: above any path MTU; a larger datagram is dropped, counted
    /// as truncated (ours are at most 1,200 bytes; DTLS fragments to fit).
    static let maxDatagram = 2048

    private struct Sockets {
        /// Socket number → descriptor: what the next poll reads.
        var active: [Int: Int32] = [:]
        /// Removed descriptors, closed by the reader at the start of its next round.
        var retired: [Int32] = []
        var stopped = false
    }

    private let sockets = NIOLockedValueBox(Sockets())
    /// Written to wake a poll when the set changes or on stop.
    private let wakeFD: Int32
    /// Batches handed to the loop and not yet processed. The reader waits beyond
    /// `maxInFlight`, so a loop that falls behind makes the kernel's receive buffer fill (and
    /// drop), not memory grow.
    private let inFlight = NIOLockedValueBox(0)
    static let maxInFlight = 8

    init() throws {
        let fd = drtc_eventfd()
        guard fd >= 0 else { throw MediaSocketError(call: "eventfd", errno: errno) }
        wakeFD = fd
    }

    deinit { Glibc.close(wakeFD) }

    /// Reads `fd` as socket `number` from the next round on.
    func add(_ number: Int, fd: Int32) {
        sockets.withLockedValue { $0.active[number] = fd }
        wake()
    }

    /// Stops reading socket `number` and closes its descriptor once no round uses it.
    func remove(_ number: Int) {
        sockets.withLockedValue { s in
            if let fd = s.active.removeValue(forKey: number) { s.retired.append(fd) }
        }
        wake()
    }

    func stop() {
        sockets.withLockedValue { $0.stopped = true }
        wake()
    }

    private func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(wakeFD, $0.baseAddress, 8) }
    }

    /// The loop has processed a batch `deliver` was given.
    func batchDone() { inFlight.withLockedValue { $0 -= 1 } }

    /// What to do about a recvmmsg errno.
    enum ReadError: Equatable {
        /// Nothing to read, or interrupted: poll again.
        case retry
        /// An error the socket reports once and survives (an ICMP error queued for it, memory
        /// pressure): counted, and the socket is read on.
        case transient
        /// The socket is unusable (ECONNABORTED: destroyed with SOCK_DESTROY; EBADF, ENOTSOCK…):
        /// it leaves the set and its owner decides (the media port is bound again, a pipe closes).
        case fatal
    }

    static func classify(_ code: Int32) -> ReadError {
        switch code {
        case EAGAIN, EWOULDBLOCK, EINTR:
            .retry
        case ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN, ENOMEM, ENOBUFS, EPERM, EACCES, EMSGSIZE,
             EPROTO, ETIMEDOUT, ECONNRESET:
            .transient
        default:
            .fatal
        }
    }

    /// Reads until stopped (blocking: run it on a thread of its own). On this thread: `deliver`
    /// gets each batch with its socket's number and must call `batchDone()` once the batch is
    /// processed; `onError` gets each transient errno, `onTruncated` each datagram too large
    /// to read, and `onFailed` each socket that failed for good, with its descriptor (now the
    /// caller's to close). On return, the descriptors still in the set are closed.
    func run(deliver: (Int, [ReceivedDatagram]) -> Void, onError: (Int, Int32) -> Void, onTruncated: (Int) -> Void,
             onFailed: (Int, Int32, MediaSocketError) -> Void) -> Exit {
        let count = Self.batchSize, size = Self.maxDatagram
        let msgs = UnsafeMutablePointer<drtc_mmsghdr>.allocate(capacity: count)
        let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: count)
        let names = UnsafeMutablePointer<sockaddr_storage>.allocate(capacity: count)
        let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: count * size, alignment: 16)
        defer {
            msgs.deallocate()
            iovecs.deallocate()
            names.deallocate()
            buffers.deallocate()
            let left = sockets.withLockedValue { s -> [Int32] in
                defer { (s.active, s.retired) = ([:], []) }
                return Array(s.active.values) + s.retired
            }
            for fd in left { Glibc.close(fd) }
        }
        let base = buffers.baseAddress!
        var polled: [pollfd] = []
        var numbers: [Int] = []
        while true {
            let round = sockets.withLockedValue { s -> (active: [(Int, Int32)], retired: [Int32])? in
                guard !s.stopped else { return nil }
                defer { s.retired.removeAll() }
                return (s.active.sorted { $0.key < $1.key }, s.retired)
            }
            guard let round else { return .stopped }
            // Removed in the previous round: no poll or read uses them any more.
            for fd in round.retired { Glibc.close(fd) }
            polled.removeAll(keepingCapacity: true)
            numbers.removeAll(keepingCapacity: true)
            polled.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            for (number, fd) in round.active {
                polled.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                numbers.append(number)
            }
            // The timeout only bounds how long a lost wake-up could delay a stop.
            let ready = poll(&polled, nfds_t(polled.count), 1000)
            if ready == 0 { continue }
            if ready < 0 {
                let code = errno
                if code == EINTR || code == ENOMEM || code == EAGAIN { continue }
                let error = MediaSocketError(call: "poll", errno: code)
                let failed = sockets.withLockedValue { s -> [(Int, Int32)] in
                    defer { s.active.removeAll() }
                    return s.active.sorted { $0.key < $1.key }
                }
                for (number, fd) in failed { onFailed(number, fd, error) }
                return .failed(error)
            }
            if polled[0].revents != 0 {
                var drained: UInt64 = 0
                _ = withUnsafeMutableBytes(of: &drained) { Glibc.read(wakeFD, $0.baseAddress, 8) }
            }
            for i in 1..<polled.count where polled[i].revents != 0 {
                let number = numbers[i - 1], fd = polled[i].fd
                let failure: MediaSocketError?
                if polled[i].revents & Int16(POLLNVAL) != 0 {
                    failure = MediaSocketError(call: "poll", errno: EBADF)
                } else {
                    failure = readBatch(fd, number: number, msgs: msgs, iovecs: iovecs, names: names, base: base,
                                        deliver: deliver, onError: onError, onTruncated: onTruncated)
                }
                guard let failure else { continue }
                // Still ours (not removed meanwhile): out of the set, back to its owner.
                let handBack = sockets.withLockedValue { s -> Bool in
                    guard s.active[number] == fd else { return false }
                    s.active[number] = nil
                    return true
                }
                if handBack { onFailed(number, fd, failure) }
            }
        }
    }

    /// One recvmmsg on a readable socket; the error that makes it unusable, if any.
    private func readBatch(_ fd: Int32, number: Int, msgs: UnsafeMutablePointer<drtc_mmsghdr>, iovecs: UnsafeMutablePointer<iovec>,
                           names: UnsafeMutablePointer<sockaddr_storage>, base: UnsafeMutableRawPointer,
                           deliver: (Int, [ReceivedDatagram]) -> Void, onError: (Int, Int32) -> Void,
                           onTruncated: (Int) -> Void) -> MediaSocketError? {
        let count = Self.batchSize, size = Self.maxDatagram
        for i in 0..<count {
            iovecs[i] = iovec(iov_base: base + i * size, iov_len: size)
            msgs[i] = drtc_mmsghdr(
                msg_hdr: msghdr(msg_name: UnsafeMutableRawPointer(names + i), msg_namelen: socklen_t(MemoryLayout<sockaddr_storage>.size),
                                msg_iov: iovecs + i, msg_iovlen: 1, msg_control: nil, msg_controllen: 0, msg_flags: 0),
                msg_len: 0)
        }
        let received = drtc_recvmmsg(fd, msgs, UInt32(count))
        if received < 0 {
            let code = errno
            switch Self.classify(code) {
            case .retry: return nil
            case .transient: onError(number, code); return nil
            case .fatal: return MediaSocketError(call: "recvmmsg", errno: code)
            }
        }
        var batch: [ReceivedDatagram] = []
        batch.reserveCapacity(Int(received))
        for i in 0..<Int(received) {
            if msgs[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 {
                onTruncated(number)
                continue
            }
            guard let from = MediaSocket.address(names[i]) else { continue }
            batch.append(ReceivedDatagram(bytes: Array(UnsafeRawBufferPointer(start: base + i * size, count: Int(msgs[i].msg_len))), from: from))
        }
        guard !batch.isEmpty else { return nil }
        // Only when the loop is that far behind: wait for it, a millisecond at a time.
        while !inFlight.withLockedValue({ n -> Bool in
            guard n < Self.maxInFlight else { return false }
            n += 1
            return true
        }) {
            if sockets.withLockedValue({ $0.stopped }) { return nil }
            usleep(1000)
        }
        deliver(number, batch)
        return nil
    }
}
