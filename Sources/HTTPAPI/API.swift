import HTTPTypes
import Hummingbird
import Identity
import Logging
import NIOCore
import Registry

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The node's HTTP API (Specs/openapi.yaml).
public enum RegistryAPI {
    public static let version = "0.1.0"

    /// Every documented path with its methods. Any other method on these paths is a 405.
    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/health", [.get]),
        ("/metrics", [.get]),
        ("/getMediaNodes", [.get]),
        ("/nodeById", [.get]),
        ("/listMediaNodes", [.get]),
        ("/register", [.post]),
        ("/deregister", [.post]),
        ("/allocate", [.post]),
        ("/rewards", [.get]),
        ("/rewards.csv", [.get]),
        ("/rewards/receipts", [.get]),
    ] + DashboardAPI.paths.map { ($0, [.get]) } + QoSAPI.routes
    static let allowedMethods: [String: [HTTPRequest.Method]] = Dictionary(uniqueKeysWithValues: routes.map { ($0.path, $0.methods) })

    public static func router(backend: some RegistryBackend, metrics: DrtcMetrics) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
        // Browsers call WHIP/WHEP from pages on other origins (RFC 9725 §4.8); the API is
        // public, and media tokens are bearer tokens (not cookies), so any origin may read it.
        router.add(middleware: CORSMiddleware(
            allowOrigin: .all, allowHeaders: [.contentType, .ifMatch, .authorization],
            allowMethods: [.get, .head, .post, .delete, .patch, .options],
            exposedHeaders: ["Location", "ETag", "Retry-After", "Accept-Post"], maxAge: .seconds(600)))
        router.add(middleware: APIMiddleware(metrics: metrics))
        let cache = RecordJSONCache()

        router.get("/health") { _, _ in
            try json(backend.health())
        }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        router.get("/getMediaNodes") { request, _ in
            let query = try parseNodeQuery(request)
            return jsonBytes(cache.nodeList(backend.getMediaNodes(query), qos: { backend.qos(of: $0) }))
        }
        router.get("/nodeById") { request, _ in
            let params = try QueryParameters(request, allowed: ["id"])
            guard let id = params["id"] else { throw APIError.badParameter("id", "required: the node's PeerID") }
            guard let peer = try? PeerID(id) else {
                throw APIError.badParameter("id", "expected a base58btc libp2p PeerID (e.g. 12D3KooW…), got '\(id.prefix(80))'")
            }
            guard let record = backend.record(for: peer) else {
                throw APIError(.notFound, code: "not_found", "no node with id \(id) in the registry")
            }
            let now = backend.nowMs()
            guard record.isLive(nowMs: now) else {
                let why = record.record.status == .leaving ? "left the network" : "has not refreshed its record within its \(record.record.ttlSeconds) s TTL"
                throw APIError(.notFound, code: "not_live", "node \(id) \(why)")
            }
            return jsonBytes(cache.object(for: record, qos: backend.qos(of: peer)))
        }
        router.get("/listMediaNodes") { request, _ in
            let params = try QueryParameters(request, allowed: ["cursor", "limit"])
            let limit = try params.int("limit", in: 1...1000, default: 100)
            let cursor = params["cursor"]
            if let cursor, (try? PeerID(cursor)) == nil {
                throw APIError.badParameter("cursor", "expected the nextCursor of a previous page (a PeerID), got '\(cursor.prefix(80))'")
            }
            let (page, next) = backend.listMediaNodes(after: cursor, limit: limit)
            return try json(NodePageJSON(nodes: page.map { r in
                var j = MediaNodeJSON(r)
                j.qos = backend.qos(of: r.nodeID).map(QoSJSON.init)
                return j
            }, nextCursor: next))
        }
        router.post("/register") { request, _ in
            try await submit(request, backend: backend, metrics: metrics, requireStatus: nil)
        }
        router.post("/deregister") { request, _ in
            try await submit(request, backend: backend, metrics: metrics, requireStatus: .leaving)
        }

        return router
    }

    static func parseNodeQuery(_ request: Request) throws -> NodeQuery {
        let params = try QueryParameters(request, allowed: ["region", "lat", "lon", "limit", "minScore"])
        var query = NodeQuery()
        if let region = params["region"] {
            guard Region(rawValue: region) != nil else {
                throw APIError.badParameter("region", "expected one of \(Region.allCases.map(\.rawValue).joined(separator: ", ")), got '\(region.prefix(40))'")
            }
            query.region = region
        }
        let lat = try params.double("lat", in: -90...90)
        let lon = try params.double("lon", in: -180...180)
        switch (lat, lon) {
        case let (lat?, lon?): query.near = GeoPoint(latitude: lat, longitude: lon)
        case (nil, nil): break
        case (nil, .some): throw APIError.badParameter("lat", "required together with lon (-90..90)")
        case (.some, nil): throw APIError.badParameter("lon", "required together with lat (-180..180)")
        }
        query.limit = try params.int("limit", in: 1...NodeQuery.maxLimit, default: NodeQuery.defaultLimit)
        query.minScore = try params.double("minScore", in: 0...1)
        return query
    }

    static func submit(_ request: Request, backend: some RegistryBackend, metrics: DrtcMetrics, requireStatus: NodeStatus?) async throws -> Response {
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard contentType == "application/x-protobuf" || contentType == "application/octet-stream" else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type",
                           "send a SignedMediaNodeRecord protobuf (Specs/registry.proto) as application/x-protobuf")
        }
        let body = request.body
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: SignedRecord.maxEncodedSize)
        } catch {
            throw APIError(.contentTooLarge, code: "too_large", "a signed record is at most \(SignedRecord.maxEncodedSize) bytes")
        }
        let bytes = Array(buffer.readableBytesView)
        switch try await backend.submit(encodedRecord: bytes) {
        case .rejected(let why):
            throw APIError(.badRequest, code: why.reason, why.description)
        case .merged(let record, let outcome):
            if let requireStatus, record.record.status != requireStatus {
                // Already merged (it is a valid record); tell the caller it used the wrong endpoint.
                throw APIError(.badRequest, code: "not_a_tombstone", "/deregister takes a record with status LEAVING; it was merged as \(outcome.label) anyway")
            }
            return try json(SubmitJSON(nodeId: record.nodeID.description, outcome: outcome.label,
                                       hlc: .init(wallMs: record.hlc.wallMs, logical: record.hlc.logical)))
        }
    }

    static func json(_ value: some Encodable) throws -> Response {
        jsonBytes(try APIJSON.encode(value))
    }

    static func jsonBytes(_ bytes: some Sequence<UInt8>) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// Parsed query string with strict checks: unknown and repeated parameters are errors, so a
/// typo (`lng=`) is reported instead of silently ignored.
struct QueryParameters {
    private var values: [String: String] = [:]

    init(_ request: Request, allowed: Set<String>) throws {
        for (key, value) in request.uri.queryParameters {
            let k = String(key)
            guard allowed.contains(k) else {
                throw APIError.badParameter(k, "unknown parameter; accepted: \(allowed.sorted().joined(separator: ", "))")
            }
            guard values[k] == nil else { throw APIError.badParameter(k, "given more than once") }
            values[k] = String(value)
        }
    }

    subscript(name: String) -> String? { values[name] }

    func int(_ name: String, in range: ClosedRange<Int>, default def: Int) throws -> Int {
        guard let raw = values[name] else { return def }
        guard let v = Int(raw), range.contains(v) else {
            throw APIError.badParameter(name, "expected an integer \(range.lowerBound)..\(range.upperBound), got '\(raw.prefix(40))'")
        }
        return v
    }

    func double(_ name: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let raw = values[name] else { return nil }
        guard let v = Double(raw), v.isFinite, range.contains(v) else {
            throw APIError.badParameter(name, "expected a number \(format(range.lowerBound))..\(format(range.upperBound)), got '\(raw.prefix(40))'")
        }
        return v
    }

    private func format(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }
}

/// Times every request, and turns every error into the JSON error shape.
struct APIMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let metrics: DrtcMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await route(request, context: context, next: next)
        } catch {
            response = Self.errorResponse(error, request: request, logger: context.logger)
        }
        if request.method == .head {
            // RFC 9110 §9.3.2: HEAD is GET without the content.
            response.body = .init()
        }
        let route = context.endpointPath ?? "unmatched"
        metrics.requestDuration(method: request.method.rawValue, route: route, status: response.status.code)
            .recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        return response
    }

    /// Answers 405 (with Allow) for any method a documented path does not take. (HEAD on GET
    /// paths is generated by the router.)
    private func route(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let allowed = RegistryAPI.allowedMethods[request.uri.path] else { return try await next(request, context) }
        if allowed.contains(request.method) || (request.method == .head && allowed.contains(.get)) {
            return try await next(request, context)
        }
        var methods = allowed.map(\.rawValue)
        if allowed.contains(.get) { methods.append("HEAD") }
        let allow = methods.joined(separator: ", ")
        var error = APIError(.methodNotAllowed, code: "method_not_allowed", "\(request.method.rawValue) is not supported on \(request.uri.path); use \(allow)")
        error.headers[.allow] = allow
        throw error
    }

    static func errorResponse(_ error: any Error, request: Request, logger: Logger) -> Response {
        let api: APIError
        switch error {
        case let e as APIError:
            api = e
        case let e as HTTPError where e.status == .notFound:
            api = APIError(.notFound, code: "not_found", "no such endpoint: \(request.uri.path); see Specs/openapi.yaml")
        case let e as HTTPError:
            api = APIError(e.status, code: "http_\(e.status.code)", e.body ?? e.status.reasonPhrase)
        default:
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            api = APIError(.internalServerError, code: "internal", "internal error; see the node's log")
        }
        var headers = api.headers
        headers[.contentType] = "application/json"
        let body = (try? APIJSON.encode(ErrorJSON(error: api.message, code: api.code, parameter: api.parameter))) ?? []
        return Response(status: api.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
