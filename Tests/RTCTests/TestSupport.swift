import Foundation
import Identity

extension SplitMix64 {
    mutating func ascii(_ count: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/")
        return String((0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &self)] })
    }
}

enum Fixtures {
    /// `Fixtures/` at the package root, found from this file's path.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // RTCTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .appendingPathComponent("Fixtures")

    static func load<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try JSONDecoder().decode(T.self, from: data)
    }

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    /// Names of the files in `Fixtures/sdp` with prefix `prefix`, sorted.
    static func sdpNames(prefix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("sdp").path)) ?? []
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".sdp") }.sorted()
    }
}

func unhex(_ string: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = string.makeIterator()
    while let a = chars.next(), let b = chars.next() {
        guard let byte = UInt8(String([a, b]), radix: 16) else { fatalError("bad hex in test: \(string)") }
        out.append(byte)
    }
    return out
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
