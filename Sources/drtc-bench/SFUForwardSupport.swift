import CUDP
import Foundation
import RTC
import SFU

#if canImport(Glibc)
import Glibc
#endif

/// Where `sfu-forward`'s threads run: by thread id, from /proc/self/task.
enum Placement {
    static let ticksPerSecond = Int(sysconf(Int32(_SC_CLK_TCK)))

    static func threads() -> [(tid: Int32, name: String)] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return ids.compactMap { id in
            guard let tid = Int32(id) else { return nil }
            let name = SRTPBench.procFile("/proc/self/task/\(id)/comm").trimmingCharacters(in: .whitespacesAndNewlines)
            return (tid, name)
        }
    }

    @discardableResult
    static func pin(_ tid: Int32, to cpu: Int) -> Bool { drtc_pin_thread(tid, Int32(cpu)) == 0 }

    /// Every thread of the process; threads started later inherit their creator's placement.
    static func pinAll(to cpu: Int) {
        for t in threads() { pin(t.tid, to: cpu) }
    }

    /// utime + stime of a thread, in clock ticks.
    static func cpuTicks(_ tid: Int32) -> Int {
        let stat = SRTPBench.procFile("/proc/self/task/\(tid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
        return user + system
    }

    /// Runs `body` on a new thread pinned to `cpu` (nil: anywhere) and returns its result.
    static func onCore<T>(_ cpu: Int?, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let result = Synchronization_Box<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            if let cpu { drtc_pin_thread(0, Int32(cpu)) }
            let r = Result { try body() }
            result.mutate { $0 = r }
            done.signal()
        }
        thread.start()
        done.wait()
        return try result.value!.get()
    }
}

/// `sfu-forward --read`: one thread reads every viewer socket with recvmmsg, counts what
/// arrives and checks it: every RTP packet has the forwarded size and its viewer's one SSRC,
/// sequence numbers run on without gaps, and one packet in 64 per viewer is decrypted with
/// the viewer's SRTP keys and its payload compared with what the publisher sent.
final class ViewerReceiver: @unchecked Sendable {
    struct Checks {
        var received = 0
        var rtcp = 0
        var wrongSize = 0
        var wrongSSRC = 0
        /// Packets of another payload type than the viewer's first (RTX), not checked further.
        var otherPayloadType = 0
        /// Missing sequence numbers: the publisher's packets the engine's socket dropped show
        /// here too (the forwarded numbering follows the publisher's), see inputLossPercent.
        var sequenceGaps = 0
        var reordered = 0
        var decrypted = 0
        var decryptFailed = 0
        var payloadMismatch = 0

        var json: [String: Any] {
            ["rtcp": rtcp, "otherPayloadType": otherPayloadType, "wrongSize": wrongSize, "wrongSSRC": wrongSSRC, "sequenceGaps": sequenceGaps, "reordered": reordered,
             "decryptedSamples": decrypted, "decryptFailed": decryptFailed, "payloadMismatch": payloadMismatch]
        }
    }

    private let sockets: [MediaBench.UDPSocket]
    private let clients: [MediaClient]
    private let stopped = Synchronization_Box(false)
    private let finished = DispatchSemaphore(value: 0)
    private var checks = Checks()
    private var ssrc: [UInt32?]
    private var payloadType: [UInt8?]
    private var lastSequence: [UInt16?]
    private var counts: [Int]

    init(sockets: [MediaBench.UDPSocket], clients: [MediaClient]) {
        self.sockets = sockets
        self.clients = clients
        ssrc = Array(repeating: nil, count: sockets.count)
        payloadType = Array(repeating: nil, count: sockets.count)
        lastSequence = Array(repeating: nil, count: sockets.count)
        counts = Array(repeating: 0, count: sockets.count)
    }

    /// Reads what the warm-up left queued, then forgets it.
    func drainAndReset() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        for (i, s) in sockets.enumerated() {
            while buffer.withUnsafeMutableBytes({ recv(s.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }) > 0 {}
            lastSequence[i] = nil
        }
        checks = Checks()
    }

    func run() {
        let batch = 64, size = 2048
        let msgs = UnsafeMutablePointer<drtc_mmsghdr>.allocate(capacity: batch)
        let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: batch)
        let buffers = UnsafeMutableRawBufferPointer.allocate(byteCount: batch * size, alignment: 16)
        defer {
            msgs.deallocate()
            iovecs.deallocate()
            buffers.deallocate()
            finished.signal()
        }
        var polled = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        while !stopped.value {
            guard poll(&polled, nfds_t(polled.count), 20) > 0 else { continue }
            for v in polled.indices where polled[v].revents != 0 {
                while true {
                    for i in 0..<batch {
                        iovecs[i] = iovec(iov_base: buffers.baseAddress! + i * size, iov_len: size)
                        msgs[i] = drtc_mmsghdr(msg_hdr: msghdr(msg_name: nil, msg_namelen: 0, msg_iov: iovecs + i, msg_iovlen: 1,
                                                               msg_control: nil, msg_controllen: 0, msg_flags: 0), msg_len: 0)
                    }
                    let n = drtc_recvmmsg(polled[v].fd, msgs, UInt32(batch))
                    guard n > 0 else { break }
                    for i in 0..<Int(n) {
                        check(UnsafeRawBufferPointer(start: buffers.baseAddress! + i * size, count: Int(msgs[i].msg_len)), viewer: v)
                    }
                    if n < batch { break }
                }
            }
        }
    }

    private func check(_ p: UnsafeRawBufferPointer, viewer v: Int) {
        guard p.count >= 12, p[0] >> 6 == 2 else { checks.wrongSize += 1; return }
        let pt = p[1] & 0x7F
        if (64...95).contains(pt) { checks.rtcp += 1; return }  // RFC 5761 §4: RTCP types 192-223 (SR, SDES…)
        checks.received += 1
        counts[v] += 1
        if let known = payloadType[v], known != pt { checks.otherPayloadType += 1; return }
        payloadType[v] = pt
        if p.count != 1200 { checks.wrongSize += 1 }
        let s = UInt32(p[8]) << 24 | UInt32(p[9]) << 16 | UInt32(p[10]) << 8 | UInt32(p[11])
        if let known = ssrc[v], known != s { checks.wrongSSRC += 1; return }
        ssrc[v] = s
        let sequence = UInt16(p[2]) << 8 | UInt16(p[3])
        if let last = lastSequence[v] {
            let step = Int16(bitPattern: sequence &- last)
            if step > 1 { checks.sequenceGaps += Int(step) - 1 }
            if step <= 0 { checks.reordered += 1 }
            if step > 0 { lastSequence[v] = sequence }
        } else {
            lastSequence[v] = sequence
        }
        guard counts[v] % 64 == 1, let srtp = clients[v].srtpIn else { return }
        do {
            let rtp = try srtp.unprotect(srtp: Array(p))
            checks.decrypted += 1
            // The publisher's payload after the 8-byte header extension: VP8 descriptor, then 0x5A.
            let payload = rtp[20...]
            if payload.first != 0x10 || payload.dropFirst(2).contains(where: { $0 != 0x5A }) { checks.payloadMismatch += 1 }
        } catch {
            checks.decryptFailed += 1
        }
    }

    /// Stops reading and returns what was counted.
    func stop() -> Checks {
        stopped.mutate { $0 = true }
        finished.wait()
        return checks
    }
}
