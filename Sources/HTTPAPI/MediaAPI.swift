import HTTPTypes
import Hummingbird
import NIOCore

/// A WHIP publisher or a WHEP viewer.
public enum MediaRole: String, Sendable {
    case publisher = "whip"
    case viewer = "whep"
}

/// The answer to an accepted offer.
public struct MediaAnswer: Sendable {
    public var sessionID: String
    public var sdp: String
    public init(sessionID: String, sdp: String) {
        self.sessionID = sessionID
        self.sdp = sdp
    }
}

/// What the WHIP/WHEP routes need from the media engine. Errors are `APIError`s (the
/// conformer decides statuses: 400 bad offer, 409 nothing published, 503 full).
public protocol MediaSignaling: Sendable {
    func offer(_ sdp: String, room: String, role: MediaRole, rid: String?) async throws -> MediaAnswer
    /// Ends a session of that room and role; false if there is none.
    func end(session: String, room: String, role: MediaRole) async -> Bool
}

/// WHIP (RFC 9725) and WHEP signalling: `POST /whip/{room}`, `POST /whep/{room}[?rid=]`,
/// `DELETE` the Location. Trickle ICE and ICE restarts are not supported (PATCH → 405): this
/// server is ICE-lite and learns the client's address from its connectivity checks.
public enum MediaAPI {
    /// Offers are a few kB; Chrome's simulcast offer is under 8 kB.
    static let maxOfferBytes = 64 * 1024

    public static func add(to router: Router<BasicRequestContext>, media: some MediaSignaling) {
        for role in [MediaRole.publisher, .viewer] {
            let base = "/\(role.rawValue)"
            router.post("\(base)/:room") { request, context in
                try await offer(request, context, role: role, media: media)
            }
            router.delete("\(base)/:room/:session") { _, context in
                let room = try roomName(context)
                let session = context.parameters.get("session") ?? ""
                guard await media.end(session: session, room: room, role: role) else {
                    throw APIError(.notFound, code: "unknown_session", "no \(role.rawValue.uppercased()) session \(session.prefix(64)) in room \(room)")
                }
                return Response(status: .ok)
            }
            router.patch("\(base)/:room/:session") { _, context -> Response in
                _ = try roomName(context)
                // RFC 9725 §4.3.1: a resource that supports neither trickle ICE nor ICE restarts
                // answers PATCH with 405.
                var error = APIError(.methodNotAllowed, code: "method_not_allowed",
                                     "trickle ICE and ICE restarts are not supported (ICE-lite server); send all candidates in the offer or none")
                error.headers[.allow] = "DELETE"
                throw error
            }
            for method in [HTTPRequest.Method.get, .put] {
                router.on("\(base)/:room", method: method) { request, _ -> Response in
                    var error = APIError(.methodNotAllowed, code: "method_not_allowed", "\(request.method.rawValue) is not supported on \(request.uri.path); POST an SDP offer")
                    error.headers[.allow] = "POST"
                    throw error
                }
            }
        }
    }

    static func offer(_ request: Request, _ context: BasicRequestContext, role: MediaRole, media: some MediaSignaling) async throws -> Response {
        let room = try roomName(context)
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard contentType == "application/sdp" else {
            var error = APIError(.unsupportedMediaType, code: "unsupported_media_type",
                                 "the offer must be sent as Content-Type: application/sdp (got \(request.headers[.contentType] ?? "none"))")
            error.headers[.acceptPost] = "application/sdp"
            throw error
        }
        let params = try QueryParameters(request, allowed: role == .viewer ? ["rid"] : [])
        let rid = params["rid"]
        if let rid, rid.isEmpty || rid.count > 16 || !rid.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            throw APIError.badParameter("rid", "expected a simulcast rid (RFC 8851: 1–16 alphanumerics), got '\(rid.prefix(32))'")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxOfferBytes)
        } catch {
            throw APIError(.contentTooLarge, code: "offer_too_large", "an SDP offer may be at most \(maxOfferBytes / 1024) KiB")
        }
        let sdp = String(decoding: body.readableBytesView, as: UTF8.self)
        guard !sdp.isEmpty else {
            throw APIError(.badRequest, code: "bad_offer", "empty body: POST the SDP offer")
        }
        let answer = try await media.offer(sdp, room: room, role: role, rid: rid)
        var headers = HTTPFields()
        headers[.contentType] = "application/sdp"
        headers[.location] = "/\(role.rawValue)/\(room)/\(answer.sessionID)"
        headers[.eTag] = "\"\(answer.sessionID)\""
        return Response(status: .created, headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.sdp)))
    }

    static func roomName(_ context: BasicRequestContext) throws -> String {
        let room = context.parameters.get("room") ?? ""
        guard (1...64).contains(room.count), room.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) else {
            throw APIError(.badRequest, code: "invalid_room", "room: expected 1–64 characters of [A-Za-z0-9._-], got '\(room.prefix(64))'", parameter: "room")
        }
        return room
    }
}

extension HTTPField.Name {
    static let acceptPost = HTTPField.Name("Accept-Post")!
}
