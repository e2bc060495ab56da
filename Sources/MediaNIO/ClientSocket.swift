// A UDP socket for the client side of a media session (a QoS challenger pulling a prover's
// test stream, a prover publishing it into its own SFU): a NIO datagram channel whose reads are
// handed to a callback on its event loop, where the caller keeps its sans-I/O state
// (`MediaClient`, a measurement).
import NIOCore
import NIOPosix
import RTC

#if canImport(Glibc)
import Glibc
#endif

public final class ClientSocket: Sendable {
    public let localAddress: RTC.SocketAddress
    private let channel: any Channel

    public var eventLoop: any EventLoop { channel.eventLoop }

    /// Binds `host:0` on `loop`; `onDatagram` runs on the loop for every datagram received.
    public static func open(host: String, on loop: any EventLoop,
                            onDatagram: @escaping @Sendable (_ bytes: [UInt8], _ from: RTC.SocketAddress) -> Void) async throws -> ClientSocket {
        let handler = Reader(onDatagram: onDatagram)
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 16 * 2048))
            .channelOption(.datagramVectorReadMessageCount, value: 16)
            .channelInitializer { channel in channel.pipeline.addHandler(handler) }
            .bind(host: host, port: 0).get()
        guard let bound = channel.localAddress, let local = RTC.SocketAddress(nio: bound) else {
            try? await channel.close()
            throw ClientSocketError("bound \(host):0 to an address that is not IPv4/IPv6")
        }
        return ClientSocket(channel: channel, local: local)
    }

    private init(channel: any Channel, local: RTC.SocketAddress) {
        self.channel = channel
        self.localAddress = local
    }

    /// Sends datagrams (from any thread) and flushes once.
    public func send(_ datagrams: [[UInt8]], to address: RTC.SocketAddress) {
        guard !datagrams.isEmpty, let to = try? NIOCore.SocketAddress(ipAddress: address.ip.description, port: Int(address.port)) else { return }
        for d in datagrams {
            channel.write(AddressedEnvelope(remoteAddress: to, data: channel.allocator.buffer(bytes: d)), promise: nil)
        }
        channel.flush()
    }

    public func close() async {
        try? await channel.close()
    }
}

public struct ClientSocketError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

private final class Reader: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let onDatagram: @Sendable ([UInt8], RTC.SocketAddress) -> Void

    init(onDatagram: @escaping @Sendable ([UInt8], RTC.SocketAddress) -> Void) { self.onDatagram = onDatagram }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let source = RTC.SocketAddress(nio: envelope.remoteAddress) else { return }
        onDatagram(Array(envelope.data.readableBytesView), source)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable from a gone peer surfaces as ECONNREFUSED: not fatal.
    }
}

extension RTC.SocketAddress {
    /// An IPv4 or IPv6 NIO address as the RTC core's; nil for any other family.
    init?(nio address: NIOCore.SocketAddress) {
        var storage = sockaddr_storage()
        address.withSockAddr { pointer, length in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: min(length, $0.count))) }
        }
        guard let converted = MediaSocket.address(storage) else { return nil }
        self = converted
    }
}
