// The client side of node-to-node RPC (Specs/rpc.md): one HTTP/1.1 request per connection over
// SwiftNIO, signed with the node's key (Orchestrator.SignedRPC). Short calls between peers; a
// connection per call keeps the client simple and every failure local to one call.
import Identity
import NIOCore
import NIOHTTP1
import NIOPosix
import Orchestrator

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A call that did not produce an HTTP response.
struct RPCTransportError: Error, CustomStringConvertible {
    var description: String
}

/// An HTTP response of a peer.
struct RPCResponse: Sendable {
    var status: Int
    var body: [UInt8]
    var headers: [(String, String)]

    var ok: Bool { (200..<300).contains(status) }

    /// The `code` of a JSON error body.
    var errorCode: String? {
        (try? JSONDecoder().decode(ErrorBody.self, from: Data(body)))?.code
    }
    private struct ErrorBody: Decodable { var code: String }
}

final class RPCClient: Sendable {
    let identity: Ed25519KeyPair
    let group: any EventLoopGroup
    let clock: @Sendable () -> UInt64
    static let maxResponseBytes = 1 << 20

    init(identity: Ed25519KeyPair, group: any EventLoopGroup, clock: @escaping @Sendable () -> UInt64) {
        self.identity = identity
        self.group = group
        self.clock = clock
    }

    /// Signs and sends `method path` with a JSON `body` to `node` at `baseURL` (`http://host:port`).
    func call(_ node: PeerID, baseURL: String, method: HTTPMethod, path: String, body: [UInt8] = [],
              timeout: TimeAmount = .seconds(3)) async throws -> RPCResponse {
        let credentials = SignedRPC.sign(key: identity, audience: node, method: method.rawValue, path: path, body: body,
                                         nowMs: clock(), nonce: secureRandomBytes(16))
        return try await request(baseURL: baseURL, method: method, path: path, body: body, timeout: timeout,
                                 headers: [(RPCCredentials.payloadHeader, credentials.payload), (RPCCredentials.signatureHeader, credentials.signature)])
    }

    /// A plain HTTP request (tests and the benchmark also send unsigned ones).
    func request(baseURL: String, method: HTTPMethod, path: String, body: [UInt8], timeout: TimeAmount,
                 headers extra: [(String, String)]) async throws -> RPCResponse {
        guard let (host, port) = Self.parse(baseURL) else {
            throw RPCTransportError(description: "\(baseURL.prefix(100)) is not an http://HOST:PORT URL")
        }
        let promise = group.next().makePromise(of: RPCResponse.self)
        let handler = ResponseCollector(promise: promise)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.pipeline.addHTTPClientHandlers().flatMap { channel.pipeline.addHandler(handler) }
                }
                .connect(host: host, port: port).get()
        } catch {
            let failure = RPCTransportError(description: "cannot connect to \(host):\(port): \(error)")
            promise.fail(failure)  // never leak a promise
            throw failure
        }
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(RPCTransportError(description: "no answer from \(host):\(port) within \(timeout.nanoseconds / 1_000_000) ms"))
            channel.close(promise: nil)
        }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: "\(host):\(port)")
        head.headers.add(name: "Connection", value: "close")
        head.headers.add(name: "Content-Length", value: String(body.count))
        if !body.isEmpty { head.headers.add(name: "Content-Type", value: "application/json") }
        for (name, value) in extra { head.headers.add(name: name, value: value) }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if !body.isEmpty { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer {
            deadline.cancel()
            channel.close(promise: nil)
        }
        return try await promise.futureResult.get()
    }

    static func parse(_ url: String) -> (String, Int)? {
        guard url.hasPrefix("http://") else { return nil }
        var rest = url.dropFirst("http://".count)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            let host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":"), let port = Int(after.dropFirst()) else { return (host, 80) }
            return (host, port)
        }
        guard let colon = rest.lastIndex(of: ":") else { return (String(rest), 80) }
        guard let port = Int(rest[rest.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        return (String(rest[..<colon]), port)
    }
}

/// Collects one response; fails the promise if the connection ends first.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<RPCResponse>
    private var status = 0
    private var headers: [(String, String)] = []
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<RPCResponse>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            headers = head.headers.map { ($0.name, $0.value) }
        case .body(let buffer):
            guard body.count + buffer.readableBytes <= RPCClient.maxResponseBytes else {
                promise.fail(RPCTransportError(description: "response larger than \(RPCClient.maxResponseBytes) bytes"))
                context.close(promise: nil)
                return
            }
            body += buffer.readableBytesView
        case .end:
            promise.succeed(RPCResponse(status: status, body: body, headers: headers))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(RPCTransportError(description: "connection closed before a complete response"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(RPCTransportError(description: "\(error)"))
        context.close(promise: nil)
    }
}
