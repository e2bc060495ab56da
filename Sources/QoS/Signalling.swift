import Identity
import Registry
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The signed offer/answer of a test on `/drtc/qos-test/1.0.0` (Specs/qos.md "Test
/// protocol"). The challenger signs its offer (which carries its DTLS fingerprint), the prover
/// signs its answer (with its own fingerprint) and the hash of the request it answers: each
/// side's DTLS certificate is bound to its node key, and the DTLS handshake then checks the
/// certificates against the fingerprints, so nobody can stand in for either node.
public enum TestSignalling {
    public static let protocolID = "/drtc/qos-test/1.0.0"
    static let requestPrefix = Array("drtc-qos-test-request:".utf8)
    static let responsePrefix = Array("drtc-qos-test-response:".utf8)
    public static let maxMessageSize = 64 * 1024

    public struct Request: Hashable, Sendable {
        public var epoch: UInt64
        public var challenger: NodeKey
        public var prover: NodeKey
        public var offer: String
        /// SHA-256 of the signed body: what the response must name.
        public var hash: [UInt8] = []

        public init(epoch: UInt64, challenger: NodeKey, prover: NodeKey, offer: String) {
            self.epoch = epoch
            self.challenger = challenger
            self.prover = prover
            self.offer = offer
        }
    }

    public enum Status: String, Hashable, Sendable { case accepted, refused }

    public struct Response: Hashable, Sendable {
        public var epoch: UInt64
        public var challenger: NodeKey
        public var prover: NodeKey
        public var requestHash: [UInt8]
        public var status: Status
        public var answer: String
        public var reason: String

        public init(to request: Request, status: Status, answer: String = "", reason: String = "") {
            epoch = request.epoch
            challenger = request.challenger
            prover = request.prover
            requestHash = request.hash
            self.status = status
            self.answer = answer
            self.reason = reason
        }
    }

    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var code: String
        public var message: String
        public var description: String { "\(code): \(message)" }
        init(_ code: String, _ message: String) {
            self.code = code
            self.message = message
        }
    }

    public static func sign(_ r: Request, key: Ed25519KeyPair) -> [UInt8] { signed(r, key: key).bytes }

    /// The signed request and the request with its `hash` set (what the response must name).
    public static func signed(_ r: Request, key: Ed25519KeyPair) -> (bytes: [UInt8], request: Request) {
        var w = Drtc_Qos_V1_QosTestRequest()
        w.epoch = r.epoch
        w.challenger = Data(r.challenger.bytes)
        w.prover = Data(r.prover.bytes)
        w.offer = r.offer
        let (bytes, body) = envelope(w, prefix: requestPrefix, key: key)
        var request = r
        request.hash = SHA256.hash(body)
        return (bytes, request)
    }

    public static func sign(_ r: Response, key: Ed25519KeyPair) -> [UInt8] {
        var w = Drtc_Qos_V1_QosTestResponse()
        w.epoch = r.epoch
        w.challenger = Data(r.challenger.bytes)
        w.prover = Data(r.prover.bytes)
        w.requestHash = Data(r.requestHash)
        w.status = r.status == .accepted ? .accepted : .refused
        w.answer = r.answer
        w.reason = r.reason
        return envelope(w, prefix: responsePrefix, key: key).bytes
    }

    /// Decodes and verifies a request signed by the challenger it names.
    public static func verifyRequest(_ bytes: [UInt8]) throws(Failure) -> Request {
        let (body, signature) = try open(bytes)
        let w: Drtc_Qos_V1_QosTestRequest
        do { w = try Drtc_Qos_V1_QosTestRequest(serializedBytes: body) } catch { throw Failure("malformed", "not a QosTestRequest") }
        guard let c = NodeKey(Array(w.challenger)), let p = NodeKey(Array(w.prover)) else { throw Failure("malformed", "keys must be 32 bytes") }
        guard Ed25519.verify(signature: signature, message: requestPrefix + body, publicKey: c.bytes) else {
            throw Failure("bad_signature", "the request is not signed by its challenger")
        }
        var r = Request(epoch: w.epoch, challenger: c, prover: p, offer: w.offer)
        r.hash = SHA256.hash(body)
        return r
    }

    /// Decodes and verifies the prover's response to `request`.
    public static func verifyResponse(_ bytes: [UInt8], to request: Request) throws(Failure) -> Response {
        let (body, signature) = try open(bytes)
        let w: Drtc_Qos_V1_QosTestResponse
        do { w = try Drtc_Qos_V1_QosTestResponse(serializedBytes: body) } catch { throw Failure("malformed", "not a QosTestResponse") }
        guard Ed25519.verify(signature: signature, message: responsePrefix + body, publicKey: request.prover.bytes) else {
            throw Failure("bad_signature", "the response is not signed by the prover")
        }
        guard w.epoch == request.epoch, Array(w.challenger) == request.challenger.bytes, Array(w.prover) == request.prover.bytes,
              Array(w.requestHash) == request.hash else {
            throw Failure("mismatch", "the response answers another request")
        }
        let status: Status
        switch w.status {
        case .accepted: status = .accepted
        case .refused: status = .refused
        default: throw Failure("malformed", "response status missing")
        }
        return Response(to: request, status: status, answer: w.answer, reason: w.reason)
    }

    static func envelope(_ message: some SwiftProtobuf.Message, prefix: [UInt8], key: Ed25519KeyPair) -> (bytes: [UInt8], body: [UInt8]) {
        let body: [UInt8] = (try? message.serializedBytes()) ?? []
        return (SignedEnvelope.encode(body: body, signature: key.sign(prefix + body)), body)
    }

    static func open(_ bytes: [UInt8]) throws(Failure) -> ([UInt8], [UInt8]) {
        guard bytes.count <= maxMessageSize else { throw Failure("too_large", "message over \(maxMessageSize) bytes") }
        let e: Drtc_Qos_V1_SignedQosTestMessage
        do { e = try Drtc_Qos_V1_SignedQosTestMessage(serializedBytes: bytes) } catch { throw Failure("malformed", "not a SignedQosTestMessage") }
        guard e.signature.count == 64 else { throw Failure("malformed", "signature must be 64 bytes") }
        return (Array(e.body), Array(e.signature))
    }
}
