// The media socket's receive path: recvmmsg(2) on a thread of its own, each batch handed to the
// media event loop. The engine does not let NIO read this socket: SwiftNIO 2.101's
// DatagramChannel, on EPOLLERR with a fatal pending error (e.g. ECONNABORTED on a socket
// destroyed with `ss -K`), reads SO_ERROR, then drains the socket expecting data, and traps when
// there is none (BaseSocketChannel.readEOF0: `preconditionFailure("got .readEOF and read
// returned not reading any bytes, nor EOF.")`, an `assert` in readable0 before it in debug
// builds): the whole node dies. Reading the descriptor here, every error is this code's to
// classify.
import CUDP
import NIOConcurrencyHelpers
import RTC

#if canImport(Glibc)
import Glibc
#endif

/// A datagram read from the media socket.
struct ReceivedDatagram: Sendable {
    var bytes: [UInt8]
    var from: RTC.SocketAddress
}

/// Reads a non-blocking UDP descriptor with recvmmsg until stopped or until the socket fails.
/// The descriptor is the engine's: the reader never closes it.
final class DatagramReader: Sendable {
    enum Exit: Sendable {
        case stopped
        /// The socket cannot be read any more (destroyed, or an error this code does not know).
        case failed(MediaSocketError)
    }

    /// Datagrams per recvmmsg call.
    static let batchSize = 64
    /// Receive buffer per datagram: above any path MTU; a larger datagram is dropped, counted
    /// as truncated (ours are at most 1,200 bytes; DTLS fragments to fit).
    static let maxDatagram = 2048

    let fd: Int32
    private let stopped = NIOLockedValueBox(false)
    /// Batches handed to the loop and not yet processed. The reader waits beyond
    /// `maxInFlight`, so a loop that falls behind makes the kernel's receive buffer fill (and
    /// drop), not memory grow.
    private let inFlight = NIOLockedValueBox(0)
    static let maxInFlight = 8

    init(fd: Int32) { self.fd = fd }

    func stop() { stopped.withLockedValue { $0 = true } }

    private var isStopped: Bool { stopped.withLockedValue { $0 } }

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
        /// the engine closes it and binds a new one.
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

    /// Reads until stopped or failed (blocking: run it on a thread of its own). `deliver` gets
    /// each batch on this thread and must call `batchDone()` once the batch is processed;
    /// `onError` gets each transient errno, and `onTruncated` each datagram too large to read.
    func run(deliver: ([ReceivedDatagram]) -> Void, onError: (Int32) -> Void, onTruncated: () -> Void) -> Exit {
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
        }
        let base = buffers.baseAddress!
        while !isStopped {
            // A timeout, so a stop is noticed within 200 ms on an idle socket.
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let polled = poll(&ready, 1, 200)
            if polled == 0 { continue }
            if polled < 0 {
                let code = errno
                if code == EINTR { continue }
                return .failed(MediaSocketError(call: "poll", errno: code))
            }
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
                case .retry: continue
                case .transient: onError(code); continue
                case .fatal: return .failed(MediaSocketError(call: "recvmmsg", errno: code))
                }
            }
            var batch: [ReceivedDatagram] = []
            batch.reserveCapacity(Int(received))
            for i in 0..<Int(received) {
                if msgs[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 {
                    onTruncated()
                    continue
                }
                guard let from = MediaSocket.address(names[i]) else { continue }
                batch.append(ReceivedDatagram(bytes: Array(UnsafeRawBufferPointer(start: base + i * size, count: Int(msgs[i].msg_len))), from: from))
            }
            guard !batch.isEmpty else { continue }
            // Only when the loop is that far behind: wait for it, a millisecond at a time.
            while !inFlight.withLockedValue({ n -> Bool in
                guard n < Self.maxInFlight else { return false }
                n += 1
                return true
            }) {
                if isStopped { return .stopped }
                usleep(1000)
            }
            deliver(batch)
        }
        return .stopped
    }
}
