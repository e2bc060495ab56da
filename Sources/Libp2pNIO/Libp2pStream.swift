import Identity
import Libp2p
import NIOCore

public struct Libp2pStreamError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One negotiated Yamux stream. All state lives on the connection's event loop; these
/// methods hop there. Reads hand out data as it arrived and return the window to the sender
/// only as the application reads (backpressure); writes complete once Yamux has taken every
/// byte into its window or bounded queue.
public final class Libp2pStream: Sendable {
    public let protocolID: String
    public let remotePeer: PeerID
    let id: UInt32
    let connection: ConnectionHandler
    let eventLoop: any EventLoop

    init(protocolID: String, remotePeer: PeerID, id: UInt32, connection: ConnectionHandler) {
        self.protocolID = protocolID
        self.remotePeer = remotePeer
        self.id = id
        self.connection = connection
        self.eventLoop = connection.eventLoop
    }

    /// The next chunk of data, or nil once the remote closed its side.
    public func read() async throws -> [UInt8]? {
        try await eventLoop.flatSubmit { self.connection.read(self.id) }.get()
    }

    /// Reads exactly `count` bytes (or fewer if the stream ends first).
    public func read(exactly count: Int) async throws -> [UInt8] {
        var out: [UInt8] = []
        while out.count < count {
            guard let chunk = try await readUpTo(count - out.count) else { break }
            out += chunk
        }
        return out
    }

    func readUpTo(_ max: Int) async throws -> [UInt8]? {
        try await eventLoop.flatSubmit { self.connection.read(self.id, upTo: max) }.get()
    }

    /// Reads until the remote closes, refusing more than `limit` bytes.
    public func readToEnd(limit: Int) async throws -> [UInt8] {
        var out: [UInt8] = []
        while let chunk = try await read() {
            out += chunk
            if out.count > limit { throw Libp2pStreamError("stream sent more than \(limit) bytes") }
        }
        return out
    }

    public func write(_ bytes: [UInt8]) async throws {
        guard !bytes.isEmpty else { return }
        try await eventLoop.flatSubmit { self.connection.write(bytes, on: self.id) }.get()
    }

    /// Half-closes: no more writes from us; reading continues.
    public func closeWrite() async {
        try? await eventLoop.submit { self.connection.closeWrite(self.id) }.get()
    }

    public func reset() {
        eventLoop.execute { self.connection.reset(self.id) }
    }
}
