// Node-to-node RPC authentication (whitepaper 4.1.2, Algorithm 1, and Specs/rpc.md): the caller
// signs a short-lived JSON payload with its Ed25519 key and sends it in `x-drtc-payload`, the
// signature in `x-drtc-signature`. Algorithm 1 checks the validity window and the signature; this
// file also closes what it leaves open: the payload names the target node (`aud`), the method and
// path, a SHA-256 of the body and a nonce, so a captured call cannot be replayed, re-aimed at
// another node or endpoint, or given another body. Pure: time and the key policy are inputs.
import Identity

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Codes of a refused RPC call; each is answered `401` with the code (Specs/rpc.md).
public enum RPCAuthErrorDomain: ErrorDomain {
    public enum Code: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// `x-drtc-payload` or `x-drtc-signature` absent.
        case missingCredentials = "missing_credentials"
        /// The payload is not the JSON object of Specs/rpc.md (or too large, or a field is malformed).
        case malformedPayload = "malformed_payload"
        /// The signature header is not base64 of 64 bytes.
        case malformedSignature = "malformed_signature"
        /// `exp` is in the past (beyond the clock leeway).
        case expired
        /// `iss` is in the future (beyond the clock leeway).
        case notYetValid = "not_yet_valid"
        /// `exp - iss` exceeds the longest validity a node accepts.
        case validityTooLong = "validity_too_long"
        /// The signature does not verify with the payload's `publicKey`.
        case badSignature = "bad_signature"
        /// `aud` is another node.
        case wrongAudience = "wrong_audience"
        /// `method` or `path` is not this request's.
        case wrongEndpoint = "wrong_endpoint"
        /// `bodySha256` is not the SHA-256 of this request's body.
        case bodyMismatch = "body_mismatch"
        /// The key has no live registry record (or is not on the operator's allowlist).
        case unknownOrchestrator = "unknown_orchestrator"
        /// This (key, nonce) was already accepted within its validity window.
        case replay
        public var description: String { rawValue }
    }
}

public typealias RPCAuthError = CodedError<RPCAuthErrorDomain>

/// The signed payload's fields. `iss`, `exp` and `publicKey` are the whitepaper's; the others
/// bind the payload to one request.
public struct RPCPayload: Codable, Hashable, Sendable {
    /// Issued at, RFC 3339 UTC.
    public var iss: String
    /// Expires at, RFC 3339 UTC.
    public var exp: String
    /// Base64 of the caller's libp2p PublicKey protobuf (Ed25519), as `pubKey` in registry JSON.
    public var publicKey: String
    /// The target node's PeerID.
    public var aud: String
    public var method: String
    /// The request path, without query.
    public var path: String
    /// Lower-case hex SHA-256 of the request body (of the empty string when there is none).
    public var bodySha256: String
    /// At least 16 random bytes, hex or base64url; unique per call.
    public var nonce: String

    /// The canonical JSON the signer sends (field order as declared; every value is ASCII
    /// without quotes or backslashes, so no escaping is needed, which `validate` enforces).
    public var json: String {
        "{\"iss\":\"\(iss)\",\"exp\":\"\(exp)\",\"publicKey\":\"\(publicKey)\",\"aud\":\"\(aud)\",\"method\":\"\(method)\",\"path\":\"\(path)\",\"bodySha256\":\"\(bodySha256)\",\"nonce\":\"\(nonce)\"}"
    }
}

/// Who called, once a call is authenticated.
public struct RPCCaller: Hashable, Sendable {
    public var peerID: PeerID
    public var publicKey: LibP2PPublicKey
    public var expiresAtMs: UInt64
}

/// The two headers of one signed call.
public struct RPCCredentials: Hashable, Sendable {
    public static let payloadHeader = "x-drtc-payload"
    public static let signatureHeader = "x-drtc-signature"
    public var payload: String
    /// Base64 (RFC 4648 §4) of the 64-byte Ed25519 signature over the payload's UTF-8 bytes.
    public var signature: String
}

public enum SignedRPC {
    /// The whitepaper's window: calls expire two minutes after issue.
    public static let defaultValidityMs: UInt64 = 120_000
    /// A node refuses payloads valid for longer than this (bounds the replay cache).
    public static let maxValidityMs: UInt64 = 300_000
    /// Clock difference tolerated between caller and node, on both ends of the window.
    public static let clockLeewayMs: UInt64 = 30_000
    public static let maxPayloadBytes = 2048

    /// Signs a call from `key` to node `audience`: `method path` with `body`, valid from `nowMs`.
    public static func sign(key: Ed25519KeyPair, audience: PeerID, method: String, path: String, body: [UInt8],
                            nowMs: UInt64, validityMs: UInt64 = defaultValidityMs, nonce: [UInt8]) -> RPCCredentials {
        let payload = RPCPayload(
            iss: RFC3339.format(unixMs: nowMs), exp: RFC3339.format(unixMs: nowMs + validityMs),
            publicKey: Base64.encode(key.publicKey.protobufEncoding), aud: audience.description, method: method,
            path: path, bodySha256: Hex.encode(SHA256.hash(body)), nonce: Base64.urlEncode(nonce))
        return sign(payload: payload.json, key: key)
    }

    /// Signs given payload bytes as they are (tests build tampered and odd payloads with it).
    public static func sign(payload: String, key: Ed25519KeyPair) -> RPCCredentials {
        RPCCredentials(payload: payload, signature: Base64.encode(key.sign(Array(payload.utf8))))
    }

    /// Algorithm 1 and the bindings of Specs/rpc.md, in that document's order; the first failure
    /// wins. `accepts` says whether a key may command this node (live registry record or
    /// allowlist). The nonce goes into `replay` only when everything else passed.
    public static func verify(payload: String?, signature: String?, method: String, path: String, body: [UInt8],
                              audience: PeerID, nowMs: UInt64, accepts: (PeerID) -> Bool,
                              replay: inout ReplayCache) throws(RPCAuthError) -> RPCCaller {
        try verify(payload: payload, signature: signature, method: method, path: path, body: body, audience: audience,
                   nowMs: nowMs, accepts: accepts, remember: { replay.insert(caller: $0, nonce: $1, until: $2, nowMs: nowMs) })
    }

    /// The same, with the replay cache behind `remember(caller, nonce, until)`, so a node can
    /// verify signatures on many threads and hold a lock only for the nonce.
    public static func verify(payload: String?, signature: String?, method: String, path: String, body: [UInt8],
                              audience: PeerID, nowMs: UInt64, accepts: (PeerID) -> Bool,
                              remember: (PeerID, String, UInt64) -> ReplayCache.Outcome) throws(RPCAuthError) -> RPCCaller {
        guard let payload, let signature, !payload.isEmpty, !signature.isEmpty else {
            throw RPCAuthError(.missingCredentials, "send the signed payload in \(RPCCredentials.payloadHeader) and its signature in \(RPCCredentials.signatureHeader) (Specs/rpc.md)")
        }
        let bytes = Array(payload.utf8)
        guard bytes.count <= maxPayloadBytes else {
            throw RPCAuthError(.malformedPayload, "\(RPCCredentials.payloadHeader) is \(bytes.count) bytes; at most \(maxPayloadBytes)")
        }
        let p: RPCPayload
        do { p = try JSONDecoder().decode(RPCPayload.self, from: Data(bytes)) } catch {
            throw RPCAuthError(.malformedPayload, "\(RPCCredentials.payloadHeader) must be a JSON object with string fields iss, exp, publicKey, aud, method, path, bodySha256, nonce")
        }
        guard let sig = Base64.decode(signature), sig.count == Ed25519.signatureLength else {
            throw RPCAuthError(.malformedSignature, "\(RPCCredentials.signatureHeader) must be base64 of a 64-byte Ed25519 signature")
        }
        guard let keyBytes = Base64.decode(p.publicKey), let key = try? LibP2PPublicKey(protobuf: keyBytes), key.type == .ed25519 else {
            throw RPCAuthError(.malformedPayload, "publicKey must be base64 of an Ed25519 libp2p PublicKey protobuf")
        }
        guard let iss = RFC3339.parse(p.iss), let exp = RFC3339.parse(p.exp) else {
            throw RPCAuthError(.malformedPayload, "iss and exp must be RFC 3339 timestamps, e.g. \(RFC3339.format(unixMs: nowMs))")
        }
        guard (16...128).contains(p.nonce.utf8.count) else {
            throw RPCAuthError(.malformedPayload, "nonce must be 16–128 characters (at least 16 random bytes, hex or base64url)")
        }
        // Algorithm 1, lines 5–8, with a leeway for clock differences between nodes.
        if nowMs + clockLeewayMs < iss {
            throw RPCAuthError(.notYetValid, "issued at \(p.iss), which is in the future for this node (now \(RFC3339.format(unixMs: nowMs)))")
        }
        if nowMs > exp + clockLeewayMs {
            throw RPCAuthError(.expired, "expired at \(p.exp) (now \(RFC3339.format(unixMs: nowMs)))")
        }
        guard exp >= iss, exp - iss <= maxValidityMs else {
            throw RPCAuthError(.validityTooLong, "exp - iss must be 0…\(maxValidityMs / 1000) s")
        }
        // Lines 9–14.
        guard key.verify(signature: sig, message: bytes) else {
            throw RPCAuthError(.badSignature, "the signature does not verify with the payload's publicKey over the payload bytes as sent")
        }
        guard p.aud == audience.description else {
            throw RPCAuthError(.wrongAudience, "this payload is for node \(p.aud.prefix(64)); this node is \(audience)")
        }
        guard p.method == method, p.path == path else {
            throw RPCAuthError(.wrongEndpoint, "this payload is for \(p.method.prefix(10)) \(p.path.prefix(200)), not \(method) \(path)")
        }
        guard p.bodySha256.lowercased() == Hex.encode(SHA256.hash(body)) else {
            throw RPCAuthError(.bodyMismatch, "bodySha256 is not the SHA-256 of the request body")
        }
        let caller = PeerID(publicKey: key)
        guard accepts(caller) else {
            throw RPCAuthError(.unknownOrchestrator, "\(caller) has no live registry record (or is not on this node's orchestrator allowlist)")
        }
        switch remember(caller, p.nonce, exp + clockLeewayMs) {
        case .fresh: break
        case .replay: throw RPCAuthError(.replay, "this payload was already used (nonce \(p.nonce.prefix(32)))")
        }
        return RPCCaller(peerID: caller, publicKey: key, expiresAtMs: exp)
    }
}

/// Nonces accepted and still inside their validity window, so a captured call is refused the
/// second time. Memory is bounded: entries leave when their window ends (at most
/// `SignedRPC.maxValidityMs` + leeway after issue). At `capacity` (a flood of valid calls) the
/// half that expires first is forgotten, and from then on any payload whose window ends by the
/// last forgotten expiry is refused as a replay: its nonce may have been forgotten. Fresh calls
/// expire later than that, so they still pass.
public struct ReplayCache: Sendable {
    public enum Outcome: Sendable, Equatable { case fresh, replay }

    public let capacity: Int
    private var seen: [String: UInt64] = [:]
    /// When nothing older than this may still be in `seen` unswept.
    private var nextSweepMs: UInt64 = 0
    /// Entries dropped for capacity raise this: payloads expiring before it are refused as
    /// replays, since their nonce may have been among those forgotten.
    public private(set) var forgottenBeforeMs: UInt64 = 0

    public init(capacity: Int = 100_000) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var count: Int { seen.count }

    public mutating func insert(caller: PeerID, nonce: String, until: UInt64, nowMs: UInt64) -> Outcome {
        if nowMs >= nextSweepMs || seen.count >= capacity { sweep(nowMs: nowMs) }
        let key = caller.description + "/" + nonce
        if let old = seen[key], old > nowMs { return .replay }
        if until <= forgottenBeforeMs { return .replay }
        seen[key] = until
        return .fresh
    }

    /// Drops expired entries; if still at capacity, forgets the earliest-expiring half and
    /// remembers up to when it forgot.
    private mutating func sweep(nowMs: UInt64) {
        seen = seen.filter { $0.value > nowMs }
        nextSweepMs = nowMs + 10_000
        guard seen.count >= capacity else { return }
        let sorted = seen.values.sorted()
        let cut = sorted[sorted.count / 2]
        seen = seen.filter { $0.value > cut }
        forgottenBeforeMs = max(forgottenBeforeMs, cut)
    }
}

/// Base64 (RFC 4648 §4) and base64url without padding (§5).
public enum Base64 {
    public static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    public static func decode(_ text: String) -> [UInt8]? {
        Data(base64Encoded: text).map { Array($0) }
    }

    private static let urlAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// RFC 4648 §5 without padding, straight from the bytes (tokens are made per allocation).
    public static func urlEncode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [urlAlphabet[Int(v >> 18)], urlAlphabet[Int(v >> 12 & 63)], urlAlphabet[Int(v >> 6 & 63)], urlAlphabet[Int(v & 63)]]
            i += 3
        }
        if bytes.count - i == 1 {
            let v = UInt32(bytes[i]) << 16
            out += [urlAlphabet[Int(v >> 18)], urlAlphabet[Int(v >> 12 & 63)]]
        } else if bytes.count - i == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [urlAlphabet[Int(v >> 18)], urlAlphabet[Int(v >> 12 & 63)], urlAlphabet[Int(v >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func urlDecode(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F }) else { return nil }
        var s = String(text.map { $0 == "-" ? "+" : ($0 == "_" ? "/" : $0) })
        while s.utf8.count % 4 != 0 { s += "=" }
        return decode(s)
    }
}
