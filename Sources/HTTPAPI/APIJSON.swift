#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How every JSON body of the API is written (Specs/openapi.yaml, "JSON"):
/// - the keys of every object are sorted by their UTF-8 bytes (JSONEncoder's own order is a
///   hash order that changes from one call to the next), so equal data gives equal bytes;
/// - `/` is not escaped (URLs and multiaddrs stay readable);
/// - computed numbers are rounded where they are computed (`Double.rounded(decimals:)`), so no
///   binary floating-point noise (`0.5740000000000001`) reaches a client.
///
/// Sorting costs a few microseconds per object; the hot paths (`/getMediaNodes`,
/// `/nodeById`) serve each record's JSON from `RecordJSONCache`, encoded once. The node's
/// signed RPC bodies (Specs/rpc.md) are written the same way.
public enum APIJSON {
    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }
}

extension Double {
    /// The decimal with `decimals` places nearest to this value, as the nearest `Double`:
    /// Swift (and JSONEncoder) print it with at most `decimals` places.
    public func rounded(decimals: Int) -> Double {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
