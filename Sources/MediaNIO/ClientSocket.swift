// A UDP socket for the client side of a media session (a QoS challenger pulling a prover's
// test stream, a prover publishing it into its own SFU). It uses the media port's own I/O
// (`MediaSocket`, `DatagramReader`, `DatagramSender`), not a NIO DatagramChannel, for the same
// reasons: a send refused by a firewall drops that datagram only, and a socket destroyed under
// it (`ss -K`) ends this socket's reads with a log-worthy error instead of trapping in NIO.
// Reads are handed to a callback on an event loop, where the caller keeps its sans-I/O state
// (`MediaClient`, a measurement).
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import RTC
import SFU
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public final class ClientSocket: Sendable {
    public let localAddress: RTC.SocketAddress
    public let eventLoop: any EventLoop
    private let fd: Int32
    private let reader: DatagramReader
    /// The sender's buffers, and whether the socket is still open (then `fd` is valid).
    private let sender: Mutex<(sender: DatagramSender, open: Bool)>
    /// Why reading stopped, when the socket failed (nil while it reads).
    private let failure = NIOLockedValueBox<MediaSocketError?>(nil)

    /// Binds `host:0`; `onDatagram` runs on `loop` for every datagram received.
    public static func open(host: String, on loop: any EventLoop,
                            onDatagram: @escaping @Sendable (_ bytes: [UInt8], _ from: RTC.SocketAddress) -> Void) async throws -> ClientSocket {
        let address: NIOCore.SocketAddress
        do {
            address = try NIOCore.SocketAddress(ipAddress: host, port: 0)
        } catch {
            throw ClientSocketError("\(host) is not an IP address")
        }
        let fd = try MediaSocket.open(boundTo: address)
        guard let local = MediaSocket.localAddress(of: fd) else {
            Glibc.close(fd)
            throw ClientSocketError("bound \(host):0 to an address that is not IPv4/IPv6")
        }
        let reader: DatagramReader
        do {
            reader = try DatagramReader()
        } catch {
            Glibc.close(fd)
            throw error
        }
        let socket = ClientSocket(fd: fd, local: local, loop: loop, reader: reader)
        reader.add(0, fd: fd)
        let thread = Thread {
            _ = reader.run(
                deliver: { _, batch in
                    loop.execute {
                        for d in batch { onDatagram(d.bytes, d.from) }
                        reader.batchDone()
                    }
                },
                onError: { _, _ in },  // ICMP errors from a gone peer: not fatal
                onTruncated: { _ in },
                onFailed: { _, failedFD, error in socket.failed(failedFD, error) })
        }
        thread.name = "drtc.media.client"
        thread.start()
        return socket
    }

    private init(fd: Int32, local: RTC.SocketAddress, loop: any EventLoop, reader: DatagramReader) {
        self.fd = fd
        self.localAddress = local
        self.eventLoop = loop
        self.reader = reader
        self.sender = Mutex((DatagramSender(), true))
    }

    /// Why the socket stopped reading, if it failed (destroyed, closed under it).
    public var error: String? { failure.withLockedValue { $0?.description } }

    /// Sends datagrams (from any thread); a datagram the kernel refuses is dropped alone.
    public func send(_ datagrams: [[UInt8]], to address: RTC.SocketAddress) {
        guard !datagrams.isEmpty else { return }
        sender.withLock { s in
            guard s.open else { return }
            var failures: [DatagramSendFailure] = []
            s.sender.send(datagrams.map { MediaServer.Datagram(bytes: $0, to: address) }, fd: fd, failures: &failures)
        }
    }

    /// The reader gave the descriptor back: no more sends on it, then it is closed.
    private func failed(_ failedFD: Int32, _ error: MediaSocketError) {
        failure.withLockedValue { $0 = error }
        sender.withLock { $0.open = false }
        Glibc.close(failedFD)
        reader.stop()
    }

    public func close() async {
        let wasOpen = sender.withLock { s -> Bool in
            defer { s.open = false }
            return s.open
        }
        // The reader closes the descriptor once no poll uses it (or `failed` already did).
        if wasOpen { reader.remove(0) }
        reader.stop()
    }
}

public struct ClientSocketError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
