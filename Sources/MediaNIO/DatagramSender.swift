// The media socket's send path: sendmmsg(2) on the socket's descriptor, one failed datagram at
// a time. NIO's DatagramChannel treats every send error but EMSGSIZE and EHOSTUNREACH as fatal
// and closes the channel (NIOPosix PendingDatagramWritesManager.handleError, then
// BaseSocketChannel.flushNow → close0): one datagram refused by a firewall rule (EPERM) or a
// full conntrack table would end every session on the node. For UDP a failed send concerns
// that one datagram only, so this loop drops it, reports it, and goes on with the next.
import CUDP
import RTC
import SFU

#if canImport(Glibc)
import Glibc
#endif

/// One datagram the kernel refused to send (it is dropped, never retried).
struct DatagramSendFailure: Equatable, Sendable {
    var errno: Int32
    var to: RTC.SocketAddress
}

/// Sends batches of datagrams on a non-blocking UDP descriptor with sendmmsg. Not thread-safe:
/// the media event loop owns it.
final class DatagramSender {
    /// Datagrams per sendmmsg call (a read batch of the media socket is 64 datagrams too).
    static let batchSize = 64

    private let msgs: UnsafeMutablePointer<drtc_mmsghdr>
    private let iovecs: UnsafeMutablePointer<iovec>
    private let names: UnsafeMutablePointer<sockaddr_storage>
    /// The batch's payloads, copied contiguously so every iovec stays valid during the call.
    private var scratch: UnsafeMutableRawBufferPointer
    /// Encoded destinations: building a sockaddr per packet would cost more than the packet.
    /// Bounded: a flood of spoofed sources only refills it.
    private var addresses: [RTC.SocketAddress: (storage: sockaddr_storage, length: socklen_t)] = [:]

    init() {
        msgs = .allocate(capacity: Self.batchSize)
        iovecs = .allocate(capacity: Self.batchSize)
        names = .allocate(capacity: Self.batchSize)
        scratch = .allocate(byteCount: Self.batchSize * 2048, alignment: 16)
    }

    deinit {
        msgs.deallocate()
        iovecs.deallocate()
        names.deallocate()
        scratch.deallocate()
    }

    /// Sends `datagrams` in order on `fd`; returns how many the kernel accepted. Each refused
    /// datagram is appended to `failures` once and dropped; the datagrams after it are still
    /// sent. On EAGAIN (send buffer full) the rest of the batch is dropped as well: it would
    /// only fail the same way, and late media is worth less than the retransmissions a NACK
    /// will ask for.
    @discardableResult
    func send(_ datagrams: [MediaServer.Datagram], fd: Int32, failures: inout [DatagramSendFailure]) -> Int {
        var sent = 0
        var start = datagrams.startIndex
        while start < datagrams.endIndex {
            let end = min(start + Self.batchSize, datagrams.endIndex)
            sent += sendBatch(datagrams[start..<end], fd: fd, failures: &failures)
            start = end
        }
        return sent
    }

    private func sendBatch(_ batch: ArraySlice<MediaServer.Datagram>, fd: Int32, failures: inout [DatagramSendFailure]) -> Int {
        let total = batch.reduce(0) { $0 + $1.bytes.count }
        if total > scratch.count {
            scratch.deallocate()
            scratch = .allocate(byteCount: total, alignment: 16)
        }
        let base = scratch.baseAddress!
        var offset = 0
        for (n, datagram) in batch.enumerated() {
            let name = encoded(datagram.to)
            names[n] = name.storage
            datagram.bytes.withUnsafeBytes { bytes in
                if let source = bytes.baseAddress { (base + offset).copyMemory(from: source, byteCount: bytes.count) }
            }
            iovecs[n] = iovec(iov_base: base + offset, iov_len: datagram.bytes.count)
            msgs[n] = drtc_mmsghdr(
                msg_hdr: msghdr(msg_name: UnsafeMutableRawPointer(names + n), msg_namelen: name.length,
                                msg_iov: iovecs + n, msg_iovlen: 1, msg_control: nil, msg_controllen: 0, msg_flags: 0),
                msg_len: 0)
            offset += datagram.bytes.count
        }
        let count = batch.count
        var next = 0
        var sent = 0
        while next < count {
            let result = drtc_sendmmsg(fd, msgs + next, UInt32(count - next))
            if result > 0 {
                // The kernel stops at the first datagram it refuses and returns the count before
                // it (its error is not reported): resume there, and the next call either sends
                // it or fails on it alone, with its errno.
                next += Int(result)
                sent += Int(result)
                continue
            }
            let code = result < 0 ? errno : EIO
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK {
                for i in next..<count { failures.append(DatagramSendFailure(errno: code, to: batch[batch.startIndex + i].to)) }
                break
            }
            failures.append(DatagramSendFailure(errno: code, to: batch[batch.startIndex + next].to))
            next += 1
        }
        return sent
    }

    private func encoded(_ address: RTC.SocketAddress) -> (storage: sockaddr_storage, length: socklen_t) {
        if let hit = addresses[address] { return hit }
        let made = Self.sockaddr(address)
        if addresses.count >= 4096 { addresses.removeAll(keepingCapacity: true) }
        addresses[address] = made
        return made
    }

    static func sockaddr(_ address: RTC.SocketAddress) -> (storage: sockaddr_storage, length: socklen_t) {
        var storage = sockaddr_storage()
        switch address.ip {
        case .v4(let ip):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = address.port.bigEndian
            sin.sin_addr.s_addr = ip.bigEndian
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
            return (storage, socklen_t(MemoryLayout<sockaddr_in>.size))
        case .v6(let high, let low):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = address.port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
                raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
            return (storage, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
    }
}

/// The symbolic name of a socket errno, for metric labels and log lines (`errno_N` for others).
func errnoName(_ code: Int32) -> String {
    switch code {
    case EPERM: "EPERM"
    case EACCES: "EACCES"
    case EAGAIN: "EAGAIN"
    case ENOBUFS: "ENOBUFS"
    case ENOMEM: "ENOMEM"
    case ENETUNREACH: "ENETUNREACH"
    case EHOSTUNREACH: "EHOSTUNREACH"
    case ENETDOWN: "ENETDOWN"
    case EHOSTDOWN: "EHOSTDOWN"
    case EMSGSIZE: "EMSGSIZE"
    case EINVAL: "EINVAL"
    case EAFNOSUPPORT: "EAFNOSUPPORT"
    case EADDRNOTAVAIL: "EADDRNOTAVAIL"
    case ECONNREFUSED: "ECONNREFUSED"
    case EPIPE: "EPIPE"
    case EIO: "EIO"
    case EBADF: "EBADF"
    case EOPNOTSUPP: "EOPNOTSUPP"
    case ECONNABORTED: "ECONNABORTED"
    case ECONNRESET: "ECONNRESET"
    case ETIMEDOUT: "ETIMEDOUT"
    case EPROTO: "EPROTO"
    case ENOTSOCK: "ENOTSOCK"
    default: "errno_\(code)"
    }
}

/// Bounds the log lines about failed sends (DESIGN: never a line per packet). The first failure
/// after a quiet interval is logged at once; later ones are summed and logged at most once per
/// `intervalMs`. Time is an input.
struct SendFailureLog {
    struct Line: Equatable {
        /// Failed datagrams since the previous line, by errno name.
        var counts: [String: Int]
        var lastDestination: RTC.SocketAddress
    }

    let intervalMs: UInt64
    private var lastLineMs: UInt64?
    private var pending: [String: Int] = [:]
    private var lastDestination: RTC.SocketAddress?

    init(intervalMs: UInt64) { self.intervalMs = intervalMs }

    /// Records failures; returns a line to log if one is due.
    mutating func record(_ failures: [DatagramSendFailure], now: UInt64) -> Line? {
        guard let last = failures.last else { return nil }
        for f in failures { pending[errnoName(f.errno), default: 0] += 1 }
        lastDestination = last.to
        return due(now: now)
    }

    /// A line summing what was recorded since the previous one, if the interval has passed.
    mutating func due(now: UInt64) -> Line? {
        guard !pending.isEmpty, let destination = lastDestination else { return nil }
        if let lastLineMs, now < lastLineMs + intervalMs { return nil }
        defer {
            pending.removeAll()
            lastLineMs = now
        }
        return Line(counts: pending, lastDestination: destination)
    }
}
