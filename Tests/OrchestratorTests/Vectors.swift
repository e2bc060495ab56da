import Foundation

/// Fixtures/rpc-vectors.json: signed RPC calls and media tokens computed by an independent
/// implementation (Python `cryptography`, Fixtures/make-rpc-vectors.py).
struct Vectors: Decodable {
    struct RPC: Decodable {
        var seedHex: String
        var aud: String
        var method: String
        var path: String
        var body: String
        var nowMs: UInt64
        var nonceHex: String
        var payload: String
        var signature: String
    }
    struct Token: Decodable {
        var seedHex: String
        var aud: String
        var room: String
        var role: String
        var iat: UInt64
        var exp: UInt64
        var token: String
    }
    var rpc: [RPC]
    var token: [Token]

    static func load() throws -> Vectors {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/rpc-vectors.json")
        return try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
    }
}
