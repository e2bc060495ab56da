// Media access tokens (Specs/orchestrator.md "Tokens"): what an orchestrator hands a client with
// an allocation, and what the media node checks on WHIP/WHEP (`Authorization: Bearer`, RFC 9725
// §4.4, or `?access_token=` after a redirect). Scoped to one node, room and role, and short-lived.
// Compact and self-contained: the issuer's PeerID inlines its Ed25519 key, so the media node
// verifies without a lookup, then checks that it accepts that issuer.
import Identity

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public enum MediaTokenErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        case missingToken = "missing_token"
        case malformedToken = "malformed_token"
        case badSignature = "bad_signature"
        case expired
        case notYetValid = "not_yet_valid"
        case wrongAudience = "wrong_audience"
        case wrongRoom = "wrong_room"
        case wrongRole = "wrong_role"
        case unknownOrchestrator = "unknown_orchestrator"
        public var description: String { rawValue }
    }
}

public typealias MediaTokenError = CodedError<MediaTokenErrorDomain>

/// What a client may do: publish (WHIP) or view (WHEP).
public enum ClientRole: String, Codable, Hashable, Sendable, CaseIterable {
    case publish, view
}

/// The claims of a media token.
public struct MediaTokenClaims: Codable, Hashable, Sendable {
    /// The issuing orchestrator's PeerID.
    public var iss: String
    /// The media node's PeerID.
    public var aud: String
    public var room: String
    public var role: ClientRole
    /// Issued at / expires at, Unix milliseconds.
    public var iat: UInt64
    public var exp: UInt64

    public init(iss: String, aud: String, room: String, role: ClientRole, iat: UInt64, exp: UInt64) {
        self.iss = iss
        self.aud = aud
        self.room = room
        self.role = role
        self.iat = iat
        self.exp = exp
    }

    /// Canonical JSON (field order fixed; room names are [A-Za-z0-9._-], so nothing needs escaping).
    var json: String {
        "{\"iss\":\"\(iss)\",\"aud\":\"\(aud)\",\"room\":\"\(room)\",\"role\":\"\(role.rawValue)\",\"iat\":\(iat),\"exp\":\(exp)}"
    }
}

public enum MediaToken {
    /// Domain separation: a token signature can never pass as an RPC payload's or a record's.
    static let signingPrefix = Array("drtc-media-token:".utf8)
    public static let defaultValidityMs: UInt64 = 120_000
    public static let maxTokenBytes = 1024

    /// `base64url(claims JSON) "." base64url(Ed25519(key, "drtc-media-token:" ‖ claims JSON))`.
    public static func issue(_ claims: MediaTokenClaims, key: Ed25519KeyPair) -> String {
        let body = Array(claims.json.utf8)
        return Base64.urlEncode(body) + "." + Base64.urlEncode(key.sign(signingPrefix + body))
    }

    /// Checks a token for `room`/`role` on node `audience` at `nowMs`: structure, issuer key,
    /// signature, window, then scope, then whether the issuer is accepted.
    public static func verify(_ token: String?, audience: PeerID, room: String, role: ClientRole, nowMs: UInt64,
                              accepts: (PeerID) -> Bool) throws(MediaTokenError) -> MediaTokenClaims {
        let claims = try decodeVerified(token, nowMs: nowMs)
        guard claims.aud == audience.description else {
            throw MediaTokenError(.wrongAudience, "this token is for node \(claims.aud.prefix(64)), not \(audience)")
        }
        guard claims.room == room else {
            throw MediaTokenError(.wrongRoom, "this token is for room '\(claims.room.prefix(64))', not '\(room)'")
        }
        guard claims.role == role else {
            throw MediaTokenError(.wrongRole, "this token allows \(claims.role.rawValue), not \(role.rawValue)")
        }
        let issuer = try! PeerID(claims.iss)  // decodeVerified parsed it
        guard accepts(issuer) else {
            throw MediaTokenError(.unknownOrchestrator, "issuer \(claims.iss) has no live registry record (or is not on this node's orchestrator allowlist)")
        }
        return claims
    }

    /// Structure, signature and validity window only (no scope): used to follow a token that
    /// names another node.
    public static func decodeVerified(_ token: String?, nowMs: UInt64) throws(MediaTokenError) -> MediaTokenClaims {
        guard let token, !token.isEmpty else {
            throw MediaTokenError(.missingToken, "send the token from POST /allocate as Authorization: Bearer <token> (or ?access_token=)")
        }
        guard token.utf8.count <= maxTokenBytes else { throw MediaTokenError(.malformedToken, "a token is at most \(maxTokenBytes) bytes") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let body = Base64.urlDecode(String(parts[0])), let sig = Base64.urlDecode(String(parts[1])),
              sig.count == Ed25519.signatureLength,
              let claims = try? JSONDecoder().decode(MediaTokenClaims.self, from: Data(body)),
              let issuer = try? PeerID(claims.iss), let key = issuer.inlinedPublicKey, key.type == .ed25519
        else {
            throw MediaTokenError(.malformedToken, "not a drtc media token (base64url(claims).base64url(signature), issuer an Ed25519 PeerID)")
        }
        guard key.verify(signature: sig, message: signingPrefix + body) else {
            throw MediaTokenError(.badSignature, "the token's signature does not verify with its issuer's key")
        }
        if nowMs + SignedRPC.clockLeewayMs < claims.iat {
            throw MediaTokenError(.notYetValid, "the token is issued in the future (clock difference with the orchestrator?)")
        }
        if nowMs > claims.exp {
            throw MediaTokenError(.expired, "the token expired \((nowMs - claims.exp) / 1000) s ago; ask POST /allocate again")
        }
        return claims
    }
}

/// PeerIDs' text forms, kept for the nodes allocated to: base58 costs microseconds, and every
/// token names its node. Bounded: cleared when full.
public struct PeerIDTexts: Sendable {
    private var texts: [PeerID: String] = [:]
    public let capacity: Int

    public init(capacity: Int = 16_384) { self.capacity = capacity }

    public mutating func text(_ id: PeerID) -> String {
        if let t = texts[id] { return t }
        if texts.count >= capacity { texts.removeAll(keepingCapacity: true) }
        let t = id.description
        texts[id] = t
        return t
    }
}
