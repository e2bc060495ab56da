import HTTPTypes
import Hummingbird
import NIOCore
import Orchestrator
import Registry

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

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

/// What a media node decides about a WHIP/WHEP offer before reading it (Specs/orchestrator.md
/// "Tokens"): serve it, or send the client elsewhere with `307 Temporary Redirect`.
public enum MediaAdmission: Sendable {
    case admit
    /// An absolute URL, with `?access_token=` when the client needs a new credential.
    case redirect(String)
}

/// Media access control: tokens and redirects. Throws `APIError` (401 with a code, 503).
public protocol MediaAccessControl: Sendable {
    func admit(room: String, role: MediaRole, token: String?, hints: PlacementHints) async throws -> MediaAdmission
}

/// WHIP (RFC 9725) and WHEP signalling: `POST /whip/{room}`, `POST /whep/{room}[?rid=]`,
/// `DELETE` the Location. Trickle ICE and ICE restarts are not supported (PATCH → 405): this
/// server is ICE-lite and learns the client's address from its connectivity checks.
public enum MediaAPI {
    /// Offers are a few kB; Chrome's simulcast offer is under 8 kB.
    static let maxOfferBytes = 64 * 1024

    /// `access` nil: open media (`--open-media true`), no tokens and no redirects.
    public static func add(to router: Router<BasicRequestContext>, media: some MediaSignaling, access: (any MediaAccessControl)? = nil) {
        for role in [MediaRole.publisher, .viewer] {
            let base = "/\(role.rawValue)"
            router.post("\(base)/:room") { request, context in
                try await offer(request, context, role: role, media: media, access: access)
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

    static func offer(_ request: Request, _ context: BasicRequestContext, role: MediaRole, media: some MediaSignaling,
                      access: (any MediaAccessControl)?) async throws -> Response {
        let room = try roomName(context)
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard contentType == "application/sdp" else {
            var error = APIError(.unsupportedMediaType, code: "unsupported_media_type",
                                 "the offer must be sent as Content-Type: application/sdp (got \(request.headers[.contentType] ?? "none"))")
            error.headers[.acceptPost] = "application/sdp"
            throw error
        }
        let placement: Set<String> = access == nil ? [] : ["access_token", "lat", "lon", "region", "strategy"]
        let params = try QueryParameters(request, allowed: (role == .viewer ? Set(["rid"]) : Set<String>()).union(placement))
        let rid = params["rid"]
        if let rid, rid.isEmpty || rid.count > 16 || !rid.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            throw APIError.badParameter("rid", "expected a simulcast rid (RFC 8851: 1–16 alphanumerics), got '\(rid.prefix(32))'")
        }
        if let access {
            switch try await access.admit(room: room, role: role, token: try bearerToken(request, params), hints: try hints(params)) {
            case .admit:
                break
            case .redirect(var location):
                // WHIP/WHEP: a 307 keeps the method and body; `rid` travels with the client.
                if let rid { location += (location.contains("?") ? "&" : "?") + "rid=\(rid)" }
                var headers = HTTPFields()
                headers[.location] = location
                headers[.contentType] = "application/json"
                let body = try APIJSON.encode(["location": location])
                return Response(status: .temporaryRedirect, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
            }
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

    /// RFC 6750 §2.1 (`Authorization: Bearer`) or §2.3 (`access_token`, which redirects carry);
    /// not both (§2: a client uses one method per request).
    static func bearerToken(_ request: Request, _ params: QueryParameters) throws -> String? {
        let query = params["access_token"]
        guard let header = request.headers[.authorization] else { return query }
        guard query == nil else {
            throw APIError(.badRequest, code: "invalid_request", "send the token either as Authorization: Bearer or as ?access_token=, not both (RFC 6750 §2)")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            var error = APIError(.unauthorized, code: "malformed_token", "expected Authorization: Bearer <token> (RFC 9725 §4.4)")
            error.headers[.wwwAuthenticate] = "Bearer"
            throw error
        }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    static func hints(_ params: QueryParameters) throws -> PlacementHints {
        var h = PlacementHints()
        h.lat = try params.double("lat", in: -90...90)
        h.lon = try params.double("lon", in: -180...180)
        if (h.lat == nil) != (h.lon == nil) { throw APIError.badParameter(h.lat == nil ? "lat" : "lon", "lat and lon go together") }
        h.region = params["region"]
        if let r = h.region, Region(rawValue: r) == nil {
            throw APIError.badParameter("region", "expected one of \(Region.allCases.map(\.rawValue).joined(separator: ", ")), got '\(r.prefix(40))'")
        }
        if let s = params["strategy"] {
            guard let strategy = Strategy(rawValue: s) else {
                throw APIError.badParameter("strategy", "expected auto, proximity, regional or fanout, got '\(s.prefix(40))'")
            }
            h.strategy = strategy
        }
        return h
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
