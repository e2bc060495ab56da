import HTTPTypes
import Hummingbird
import NIOCore
import Orchestrator
import Registry
import SFU

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// MARK: JSON shapes (Specs/openapi.yaml: Allocation, RoomPlacement, NodeStatus, Pipe…)

/// `POST /allocate` body.
public struct AllocateRequestJSON: Codable, Sendable {
    public var room: String
    public var role: ClientRole
    public var lat: Double?
    public var lon: Double?
    public var region: String?
    public var strategy: Strategy?

    public init(room: String, role: ClientRole, lat: Double? = nil, lon: Double? = nil, region: String? = nil, strategy: Strategy? = nil) {
        self.room = room
        self.role = role
        self.lat = lat
        self.lon = lon
        self.region = region
        self.strategy = strategy
    }
}

/// `POST /allocate` answer.
public struct AllocationJSON: Codable, Sendable {
    public var room: String
    public var role: ClientRole
    public var nodeId: String
    /// The WHIP or WHEP URL on the chosen node.
    public var url: String
    public var token: String
    public var expiresAtMs: UInt64
    public var strategy: Strategy

    public init(room: String, role: ClientRole, nodeId: String, url: String, token: String, expiresAtMs: UInt64, strategy: Strategy) {
        self.room = room
        self.role = role
        self.nodeId = nodeId
        self.url = url
        self.token = token
        self.expiresAtMs = expiresAtMs
        self.strategy = strategy
    }
}

/// `GET /rooms/{room}`.
public struct RoomViewJSON: Codable, Sendable {
    public struct Node: Codable, Sendable {
        public var nodeId: String
        public var role: RoomPlacement.NodeRole
        public var url: String
        public var publishers: Int
        public var viewers: Int
        /// False when the node did not answer the status call.
        public var reachable: Bool
        public init(nodeId: String, role: RoomPlacement.NodeRole, url: String, publishers: Int, viewers: Int, reachable: Bool) {
            self.nodeId = nodeId
            self.role = role
            self.url = url
            self.publishers = publishers
            self.viewers = viewers
            self.reachable = reachable
        }
    }
    public struct Pipe: Codable, Sendable {
        public var from: String
        public var to: String
        /// Tracks flowing from `from` to `to`, and RTP packets sent that way.
        public var tracks: Int
        public var packets: Int
        public init(from: String, to: String, tracks: Int, packets: Int) {
            self.from = from
            self.to = to
            self.tracks = tracks
            self.packets = packets
        }
    }
    public var room: String
    public var strategy: Strategy
    public var version: UInt64
    public var owner: String
    public var nodes: [Node]
    public var pipes: [Pipe]
    public init(room: String, strategy: Strategy, version: UInt64, owner: String, nodes: [Node], pipes: [Pipe]) {
        self.room = room
        self.strategy = strategy
        self.version = version
        self.owner = owner
        self.nodes = nodes
        self.pipes = pipes
    }
}

/// `GET /rpc/v1/status`.
public struct NodeStatusJSON: Codable, Sendable {
    public var nodeId: String
    public var version: String
    public var sessions: Int
    public var maxSessions: Int
    public var pipes: Int
    public var rooms: [RoomStatus]
    public init(nodeId: String, version: String, sessions: Int, maxSessions: Int, pipes: Int, rooms: [RoomStatus]) {
        self.nodeId = nodeId
        self.version = version
        self.sessions = sessions
        self.maxSessions = maxSessions
        self.pipes = pipes
        self.rooms = rooms
    }
}

public struct RoomRequestJSON: Codable, Sendable {
    public var room: String
    public init(room: String) { self.room = room }
}

/// `POST /rpc/v1/pipes`: dial a pipe for `room` to `peer`.
public struct PipeRequestJSON: Codable, Sendable {
    public var room: String
    public var pipeId: String
    public var peer: String
    public var peerUrl: String
    public init(room: String, pipeId: String, peer: String, peerUrl: String) {
        self.room = room
        self.pipeId = pipeId
        self.peer = peer
        self.peerUrl = peerUrl
    }
}

/// `POST /rpc/v1/pipes/accept` body and answer: one end's ICE/DTLS parameters and tracks.
public struct PipeOfferJSON: Codable, Sendable {
    public var room: String
    public var pipeId: String
    public var parameters: PipeParameters
    public var tracks: [PipeTrack]
    public var version: UInt64
    public init(room: String, pipeId: String, parameters: PipeParameters, tracks: [PipeTrack], version: UInt64) {
        self.room = room
        self.pipeId = pipeId
        self.parameters = parameters
        self.tracks = tracks
        self.version = version
    }
}

/// `PUT /rpc/v1/pipes/{pipeId}/tracks`.
public struct PipeTracksJSON: Codable, Sendable {
    public var version: UInt64
    public var tracks: [PipeTrack]
    public init(version: UInt64, tracks: [PipeTrack]) {
        self.version = version
        self.tracks = tracks
    }
}

/// Where a client is, from the WHIP/WHEP query (`lat`, `lon`, `region`, `strategy`).
public struct PlacementHints: Sendable {
    public var lat: Double?
    public var lon: Double?
    public var region: String?
    public var strategy: Strategy?
    public var isEmpty: Bool { lat == nil && lon == nil && region == nil && strategy == nil }
}

// MARK: backend

/// What the orchestrator and RPC routes need from the node.
public protocol OrchestratorBackend: Sendable {
    func allocate(_ request: AllocateRequestJSON) async throws -> AllocationJSON
    func roomView(_ room: String) async throws -> RoomViewJSON

    /// Algorithm 1 and the bindings (Specs/rpc.md); counts the rejection.
    func authenticate(payload: String?, signature: String?, method: String, path: String, body: [UInt8]) throws(RPCAuthError) -> RPCCaller
    func status(caller: RPCCaller) async throws -> NodeStatusJSON
    func roomStatus(_ room: String, caller: RPCCaller) async throws -> RoomStatus
    func openRoom(_ room: String, caller: RPCCaller) async throws
    func closeRoom(_ room: String, caller: RPCCaller) async throws -> Int
    func dialPipe(_ request: PipeRequestJSON, caller: RPCCaller) async throws -> PipeStatus
    func acceptPipe(_ offer: PipeOfferJSON, caller: RPCCaller) async throws -> PipeOfferJSON
    func setPipeTracks(_ pipe: String, _ tracks: PipeTracksJSON, caller: RPCCaller) async throws
    func closePipe(_ pipe: String, caller: RPCCaller) async throws
    func allocateAsOwner(_ request: AllocateRequestJSON, caller: RPCCaller) async throws -> AllocationJSON
    func placement(_ room: String, caller: RPCCaller) async throws -> RoomPlacement
    func storePlacement(_ placement: RoomPlacement, caller: RPCCaller) async throws -> Bool
    /// `POST /rpc/v1/receipts`: a media node's signed session receipt, countersigned when this
    /// peer's records back it (Specs/rewards.md "Data supplied").
    func countersign(_ request: ReceiptRequestJSON, caller: RPCCaller) async throws -> ReceiptAnswerJSON
}

/// `POST /rpc/v1/receipts` body: a `SignedSessionReceipt` (Specs/rewards.proto) signed by the
/// calling media node, base64.
public struct ReceiptRequestJSON: Codable, Sendable {
    public var receipt: String
    public init(receipt: String) { self.receipt = receipt }
}

/// `POST /rpc/v1/receipts` answer: `countersigned` with the receipt (base64, both
/// signatures), or `clamped` with the `SessionReceipt` body (base64) this peer would
/// countersign instead and why; the node signs the proposal and calls again.
public struct ReceiptAnswerJSON: Codable, Sendable {
    public var status: String
    public var receipt: String?
    public var proposal: String?
    public var reason: String?
    public init(status: String, receipt: String? = nil, proposal: String? = nil, reason: String? = nil) {
        self.status = status
        self.receipt = receipt
        self.proposal = proposal
        self.reason = reason
    }
}

/// `POST /allocate`, `GET /rooms/{room}` and the signed node-to-node RPC under `/rpc/v1`.
public enum OrchestratorAPI {
    static let maxBodyBytes = 256 * 1024

    public static func add(to router: Router<BasicRequestContext>, backend: some OrchestratorBackend) {
        router.post("/allocate") { request, context in
            let body = try await collect(request)
            let input = try decode(AllocateRequestJSON.self, body, what: "an allocation request {\"room\", \"role\": \"publish\"|\"view\", \"lat\"?, \"lon\"?, \"region\"?, \"strategy\"?}")
            try validate(input)
            return try RegistryAPI.json(try await backend.allocate(input))
        }
        router.get("/rooms/:room") { _, context in
            let room = try MediaAPI.roomName(context)
            return try RegistryAPI.json(try await backend.roomView(room))
        }

        // Signed RPC (Specs/rpc.md). Every handler authenticates first.
        rpc(router, .get, "/rpc/v1/status", backend) { caller, _, _ in try await backend.status(caller: caller) }
        rpc(router, .post, "/rpc/v1/rooms", backend) { caller, body, _ in
            let r = try decode(RoomRequestJSON.self, body, what: "{\"room\"}")
            try checkRoom(r.room)
            try await backend.openRoom(r.room, caller: caller)
            return r
        }
        rpc(router, .get, "/rpc/v1/rooms/:room", backend) { caller, _, context in
            try await backend.roomStatus(try MediaAPI.roomName(context), caller: caller)
        }
        rpc(router, .delete, "/rpc/v1/rooms/:room", backend) { caller, _, context in
            let room = try MediaAPI.roomName(context)
            return ["room": room, "closedSessions": String(try await backend.closeRoom(room, caller: caller))]
        }
        rpc(router, .post, "/rpc/v1/pipes", backend, status: .created) { caller, body, _ in
            let r = try decode(PipeRequestJSON.self, body, what: "{\"room\", \"pipeId\", \"peer\", \"peerUrl\"}")
            try checkRoom(r.room)
            try checkPipeID(r.pipeId)
            return try await backend.dialPipe(r, caller: caller)
        }
        rpc(router, .post, "/rpc/v1/pipes/accept", backend, status: .created) { caller, body, _ in
            let r = try decode(PipeOfferJSON.self, body, what: "{\"room\", \"pipeId\", \"parameters\", \"tracks\", \"version\"}")
            try checkRoom(r.room)
            try checkPipeID(r.pipeId)
            return try await backend.acceptPipe(r, caller: caller)
        }
        rpc(router, .put, "/rpc/v1/pipes/:pipe/tracks", backend) { caller, body, context in
            let pipe = context.parameters.get("pipe") ?? ""
            try checkPipeID(pipe)
            try await backend.setPipeTracks(pipe, try decode(PipeTracksJSON.self, body, what: "{\"version\", \"tracks\"}"), caller: caller)
            return ["pipeId": pipe]
        }
        rpc(router, .delete, "/rpc/v1/pipes/:pipe", backend) { caller, _, context in
            let pipe = context.parameters.get("pipe") ?? ""
            try checkPipeID(pipe)
            try await backend.closePipe(pipe, caller: caller)
            return ["pipeId": pipe]
        }
        rpc(router, .post, "/rpc/v1/allocate", backend) { caller, body, _ in
            let input = try decode(AllocateRequestJSON.self, body, what: "an allocation request")
            try validate(input)
            return try await backend.allocateAsOwner(input, caller: caller)
        }
        rpc(router, .get, "/rpc/v1/placements/:room", backend) { caller, _, context in
            try await backend.placement(try MediaAPI.roomName(context), caller: caller)
        }
        rpc(router, .put, "/rpc/v1/placements/:room", backend) { caller, body, context in
            let room = try MediaAPI.roomName(context)
            let p = try decode(RoomPlacement.self, body, what: "a RoomPlacement")
            guard p.room == room else { throw APIError(.badRequest, code: "bad_request", "the placement is for room '\(p.room.prefix(64))', not '\(room)'") }
            do { try p.validate() } catch {
                throw APIError(.badRequest, code: "invalid_placement", "the placement is not a loop-free tree: \(error)")
            }
            return ["room": room, "stored": String(try await backend.storePlacement(p, caller: caller))]
        }
        rpc(router, .post, "/rpc/v1/receipts", backend) { caller, body, _ in
            let r = try decode(ReceiptRequestJSON.self, body, what: "{\"receipt\": base64 of a SignedSessionReceipt}")
            return try await backend.countersign(r, caller: caller)
        }
        addMethodNotAllowed(to: router)
    }

    /// Paths and the methods they take; any other method is a 405 with `Allow`.
    static let methods: [(String, [HTTPRequest.Method])] = [
        ("/rooms/:room", [.get]), ("/rpc/v1/status", [.get]), ("/rpc/v1/rooms", [.post]), ("/rpc/v1/rooms/:room", [.get, .delete]),
        ("/rpc/v1/pipes", [.post]), ("/rpc/v1/pipes/accept", [.post]), ("/rpc/v1/pipes/:pipe/tracks", [.put]),
        ("/rpc/v1/pipes/:pipe", [.delete]), ("/rpc/v1/allocate", [.post]), ("/rpc/v1/placements/:room", [.get, .put]),
        ("/rpc/v1/receipts", [.post]),
    ]

    static func addMethodNotAllowed(to router: Router<BasicRequestContext>) {
        for (path, allowed) in methods {
            let allow = (allowed.map(\.rawValue) + (allowed.contains(.get) ? ["HEAD"] : [])).joined(separator: ", ")
            for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] where !allowed.contains(method) {
                if path == "/rpc/v1/pipes/accept", method == .delete { continue }  // /rpc/v1/pipes/:pipe
                router.on(RouterPath(path), method: method) { (request: Request, _: BasicRequestContext) -> Response in
                    var error = APIError(.methodNotAllowed, code: "method_not_allowed", "\(request.method.rawValue) is not supported on \(request.uri.path); use \(allow)")
                    error.headers[.allow] = allow
                    throw error
                }
            }
        }
    }

    /// One signed route: collects the body, authenticates (401 with the code otherwise), runs `body`.
    static func rpc<Out: Encodable & Sendable>(
        _ router: Router<BasicRequestContext>, _ method: HTTPRequest.Method, _ path: RouterPath, _ backend: some OrchestratorBackend,
        status: HTTPResponse.Status = .ok,
        _ handle: @escaping @Sendable (RPCCaller, [UInt8], BasicRequestContext) async throws -> Out
    ) {
        router.on(path, method: method) { (request: Request, context: BasicRequestContext) -> Response in
            let body = try await collect(request)
            guard request.uri.query == nil || request.uri.query == "" else {
                throw APIError(.badRequest, code: "invalid_parameter", "RPC methods take no query parameters (the signed payload binds the path only)")
            }
            let caller: RPCCaller
            do {
                caller = try backend.authenticate(payload: request.headers[HTTPField.Name(RPCCredentials.payloadHeader)!],
                                                  signature: request.headers[HTTPField.Name(RPCCredentials.signatureHeader)!],
                                                  method: request.method.rawValue, path: request.uri.path, body: body)
            } catch let error as RPCAuthError {
                var api = APIError(.unauthorized, code: error.code.rawValue, error.message)
                api.headers[.wwwAuthenticate] = "DRTC-Signature realm=\"rpc\""
                throw api
            }
            var response = try RegistryAPI.json(try await handle(caller, body, context))
            response.status = status
            return response
        }
    }

    static func collect(_ request: Request) async throws -> [UInt8] {
        do {
            return Array(try await request.body.collect(upTo: maxBodyBytes).readableBytesView)
        } catch {
            throw APIError(.contentTooLarge, code: "too_large", "the body may be at most \(maxBodyBytes / 1024) KiB")
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch let DecodingError.dataCorrupted(context) {
            throw APIError(.badRequest, code: "bad_request", "expected \(what): \(context.debugDescription)")
        } catch let DecodingError.keyNotFound(key, _) {
            throw APIError(.badRequest, code: "bad_request", "expected \(what): '\(key.stringValue)' is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw APIError(.badRequest, code: "bad_request", "expected \(what): '\(field)' has the wrong type")
        } catch let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw APIError(.badRequest, code: "bad_request", "expected \(what): '\(field)' is null")
        } catch {
            throw APIError(.badRequest, code: "bad_request", "expected \(what)")
        }
    }

    static func validate(_ r: AllocateRequestJSON) throws {
        try checkRoom(r.room)
        switch (r.lat, r.lon) {
        case let (lat?, lon?):
            guard lat.isFinite, (-90...90).contains(lat) else { throw APIError(.badRequest, code: "invalid_parameter", "lat: expected -90..90, got \(lat)", parameter: "lat") }
            guard lon.isFinite, (-180...180).contains(lon) else { throw APIError(.badRequest, code: "invalid_parameter", "lon: expected -180..180, got \(lon)", parameter: "lon") }
        case (nil, nil): break
        default: throw APIError(.badRequest, code: "invalid_parameter", "lat and lon go together", parameter: r.lat == nil ? "lat" : "lon")
        }
        if let region = r.region, Registry.Region(rawValue: region) == nil {
            throw APIError(.badRequest, code: "invalid_parameter",
                           "region: expected one of \(Registry.Region.allCases.map(\.rawValue).joined(separator: ", ")), got '\(region.prefix(40))'", parameter: "region")
        }
    }

    static func checkRoom(_ room: String) throws {
        guard (1...64).contains(room.count), room.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) else {
            throw APIError(.badRequest, code: "invalid_room", "room: expected 1–64 characters of [A-Za-z0-9._-], got '\(room.prefix(64))'", parameter: "room")
        }
    }

    static func checkPipeID(_ id: String) throws {
        guard (1...64).contains(id.count), id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw APIError(.badRequest, code: "invalid_pipe", "pipeId: expected 1–64 alphanumerics, got '\(id.prefix(64))'")
        }
    }
}

extension HTTPField.Name {
    static let wwwAuthenticate = HTTPField.Name("WWW-Authenticate")!
}
