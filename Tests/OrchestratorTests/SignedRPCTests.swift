import Identity
import Testing
@testable import Orchestrator

let t0: UInt64 = 1_733_000_000_000  // 2024-11-30T20:53:20Z

@Suite struct RFC3339Tests {
    @Test func formatsAndParsesUTC() {
        #expect(RFC3339.format(unixMs: 0) == "1970-01-01T00:00:00Z")
        #expect(RFC3339.format(unixMs: t0 + 999) == "2024-11-30T20:53:20Z")
        #expect(RFC3339.parse("2024-11-30T20:53:20Z") == t0)
        #expect(RFC3339.parse("2024-11-30T20:53:20.250Z") == t0 + 250)
        #expect(RFC3339.parse("2024-11-30T22:53:20+02:00") == t0)
        #expect(RFC3339.parse("2024-02-29T00:00:00Z") != nil)
        for bad in ["2023-02-29T00:00:00Z", "2024-11-30 20:53:20", "2024-13-01T00:00:00Z", "2024-11-30T20:53:20", "x", "1969-12-31T23:59:59Z"] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
        var rng = SplitMix64(seed: 3)
        for _ in 0..<2000 {
            let ms = UInt64.random(in: 0..<4_000_000_000_000, using: &rng) / 1000 * 1000
            #expect(RFC3339.parse(RFC3339.format(unixMs: ms)) == ms)
        }
    }
}

@Suite struct SignedRPCTests {
    let orchestrator = try! Ed25519KeyPair(seed: [UInt8](repeating: 7, count: 32))
    let node = try! Ed25519KeyPair(seed: [UInt8](repeating: 9, count: 32))
    let body = Array(#"{"room":"r1"}"#.utf8)

    func signed(_ key: Ed25519KeyPair? = nil, at: UInt64 = t0, nonce: UInt8 = 1, path: String = "/rpc/v1/rooms") -> RPCCredentials {
        SignedRPC.sign(key: key ?? orchestrator, audience: node.peerID, method: "POST", path: path, body: body,
                       nowMs: at, nonce: [UInt8](repeating: nonce, count: 16))
    }

    func verify(_ c: RPCCredentials, now: UInt64 = t0 + 1000, method: String = "POST", path: String = "/rpc/v1/rooms",
                body: [UInt8]? = nil, audience: PeerID? = nil, accepts: Set<PeerID>? = nil,
                replay: inout ReplayCache) throws(RPCAuthError) -> RPCCaller {
        let known = accepts ?? [orchestrator.peerID]
        return try SignedRPC.verify(payload: c.payload, signature: c.signature, method: method, path: path, body: body ?? self.body,
                                    audience: audience ?? node.peerID, nowMs: now, accepts: { known.contains($0) }, replay: &replay)
    }

    func code(_ c: RPCCredentials, now: UInt64 = t0 + 1000, method: String = "POST", path: String = "/rpc/v1/rooms",
              body: [UInt8]? = nil, audience: PeerID? = nil, accepts: Set<PeerID>? = nil) -> RPCAuthErrorDomain.Code? {
        var cache = ReplayCache()
        do {
            _ = try verify(c, now: now, method: method, path: path, body: body, audience: audience, accepts: accepts, replay: &cache)
            return nil
        } catch { return error.code }
    }

    @Test func payloadHasTheWhitepaperFieldsAndVerifies() throws {
        let c = signed()
        #expect(c.payload.hasPrefix(#"{"iss":"2024-11-30T20:53:20Z","exp":"2024-11-30T20:55:20Z","publicKey":"CAESI"#))
        var cache = ReplayCache()
        let caller = try verify(c, replay: &cache)
        #expect(caller.peerID == orchestrator.peerID)
        #expect(caller.expiresAtMs == t0 + 120_000)
    }

    @Test func everyRejectionHasItsCode() {
        let c = signed()
        #expect(code(RPCCredentials(payload: "", signature: c.signature)) == .missingCredentials)
        #expect(code(RPCCredentials(payload: "{}", signature: c.signature)) == .malformedPayload)
        #expect(code(RPCCredentials(payload: c.payload, signature: "AAAA")) == .malformedSignature)
        #expect(code(c, now: t0 + 120_000 + SignedRPC.clockLeewayMs + 1) == .expired)
        #expect(code(c, now: t0 + 120_000 + SignedRPC.clockLeewayMs) == nil, "the leeway covers clock differences")
        #expect(code(c, now: t0 - SignedRPC.clockLeewayMs - 1) == .notYetValid)
        #expect(code(SignedRPC.sign(key: orchestrator, audience: node.peerID, method: "POST", path: "/rpc/v1/rooms", body: body,
                                    nowMs: t0, validityMs: 3_600_000, nonce: [UInt8](repeating: 1, count: 16))) == .validityTooLong)
        // Tampered: one byte of the payload changed after signing.
        let tampered = RPCCredentials(payload: c.payload.replacingOccurrences(of: "/rpc/v1/rooms", with: "/rpc/v1/pipes"), signature: c.signature)
        #expect(code(tampered, path: "/rpc/v1/pipes") == .badSignature)
        // Wrong key: signed by another key than the payload's publicKey.
        let other = Ed25519KeyPair.generate()
        #expect(code(SignedRPC.sign(payload: c.payload, key: other)) == .badSignature)
        #expect(code(c, audience: other.peerID) == .wrongAudience)
        #expect(code(c, method: "DELETE") == .wrongEndpoint)
        #expect(code(c, path: "/rpc/v1/status") == .wrongEndpoint)
        #expect(code(c, body: Array(#"{"room":"r2"}"#.utf8)) == .bodyMismatch)
        #expect(code(signed(other)) == .unknownOrchestrator)
        #expect(code(signed(other), accepts: [other.peerID]) == nil)
    }

    @Test func aReplayedCallIsRefusedUntilItsWindowEnds() throws {
        var cache = ReplayCache()
        let c = signed()
        _ = try verify(c, replay: &cache)
        do {
            _ = try verify(c, now: t0 + 2000, replay: &cache)
            Issue.record("a replay passed")
        } catch { #expect(error.code == .replay) }
        // Another nonce is another call.
        _ = try verify(signed(nonce: 2), replay: &cache)
        // A rejected call leaves no nonce behind: the right body afterwards still passes.
        let fresh = signed(nonce: 3)
        #expect(code(fresh, body: []) == .bodyMismatch)
        _ = try verify(fresh, replay: &cache)
    }

    @Test func replayCacheMemoryIsBoundedAndStillRefusesReplays() {
        var cache = ReplayCache(capacity: 1000)
        let peer = orchestrator.peerID
        var now = t0
        for i in 0..<10_000 {
            now += 10
            #expect(cache.insert(caller: peer, nonce: "n\(i)", until: now + 150_000, nowMs: now) == .fresh)
            #expect(cache.count <= 1000)
        }
        // Every recent nonce is refused, remembered or not.
        for i in 9_000..<10_000 {
            #expect(cache.insert(caller: peer, nonce: "n\(i)", until: now - UInt64(10_000 - i) * 10 + 150_000, nowMs: now) == .replay)
        }
        // Expired entries leave on their own.
        var small = ReplayCache(capacity: 1000)
        for i in 0..<500 { _ = small.insert(caller: peer, nonce: "x\(i)", until: t0 + 1000, nowMs: t0) }
        _ = small.insert(caller: peer, nonce: "late", until: t0 + 200_000, nowMs: t0 + 20_000)
        #expect(small.count == 1)
    }

    /// Byte-exact vector shared with the Python tier (Fixtures/rpc-vectors.json).
    @Test func fixtureVectorsVerify() throws {
        let vectors = try Vectors.load()
        for v in vectors.rpc {
            let key = try Ed25519KeyPair(seed: Hex.decode(v.seedHex)!)
            let c = SignedRPC.sign(key: key, audience: try PeerID(v.aud), method: v.method, path: v.path,
                                   body: Array(v.body.utf8), nowMs: v.nowMs, nonce: Hex.decode(v.nonceHex)!)
            #expect(c.payload == v.payload)
            #expect(c.signature == v.signature)
            var cache = ReplayCache()
            _ = try SignedRPC.verify(payload: v.payload, signature: v.signature, method: v.method, path: v.path, body: Array(v.body.utf8),
                                     audience: try PeerID(v.aud), nowMs: v.nowMs, accepts: { _ in true }, replay: &cache)
        }
        for v in vectors.token {
            let key = try Ed25519KeyPair(seed: Hex.decode(v.seedHex)!)
            let claims = MediaTokenClaims(iss: key.peerID.description, aud: v.aud, room: v.room, role: ClientRole(rawValue: v.role)!, iat: v.iat, exp: v.exp)
            #expect(MediaToken.issue(claims, key: key) == v.token)
        }
    }
}

@Suite struct MediaTokenTests {
    let orchestrator = try! Ed25519KeyPair(seed: [UInt8](repeating: 7, count: 32))
    let node = try! Ed25519KeyPair(seed: [UInt8](repeating: 9, count: 32))

    func token(room: String = "r1", role: ClientRole = .publish, aud: PeerID? = nil, exp: UInt64 = t0 + 120_000, key: Ed25519KeyPair? = nil) -> String {
        let k = key ?? orchestrator
        return MediaToken.issue(MediaTokenClaims(iss: k.peerID.description, aud: (aud ?? node.peerID).description, room: room, role: role, iat: t0, exp: exp), key: k)
    }

    func code(_ t: String?, room: String = "r1", role: ClientRole = .publish, now: UInt64 = t0 + 1000) -> MediaTokenErrorDomain.Code? {
        do {
            _ = try MediaToken.verify(t, audience: node.peerID, room: room, role: role, nowMs: now, accepts: { $0 == orchestrator.peerID })
            return nil
        } catch { return error.code }
    }

    @Test func scopedToNodeRoomRoleAndTime() {
        let t = token()
        #expect(t.utf8.count < 400, "compact: \(t.utf8.count) bytes")
        #expect(code(t) == nil)
        #expect(code(nil) == .missingToken)
        #expect(code("abc") == .malformedToken)
        #expect(code(t, room: "r2") == .wrongRoom)
        #expect(code(t, role: .view) == .wrongRole)
        #expect(code(t, now: t0 + 120_001) == .expired)
        #expect(code(token(aud: orchestrator.peerID)) == .wrongAudience)
        #expect(code(token(key: Ed25519KeyPair.generate())) == .unknownOrchestrator)
        // A signature from another key over the same claims.
        let parts = t.split(separator: ".")
        let forged = String(parts[0]) + "." + Base64.urlEncode(Ed25519KeyPair.generate().sign(Array("x".utf8)))
        #expect(code(forged) == .badSignature)
        // An RPC signature over the same bytes does not make a token (domain separation).
        let body = Base64.urlDecode(String(parts[0]))!
        let rpcStyle = String(parts[0]) + "." + Base64.urlEncode(orchestrator.sign(body))
        #expect(code(rpcStyle) == .badSignature)
    }
}
