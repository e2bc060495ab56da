import Foundation
@testable import Node
import Registry
import Testing

/// The clock exchange's wire format and the offset it yields, against the byte-exact vectors
/// in Fixtures/clock/exchange-vectors.json (Specs/registry.md "Clocks").
@Suite struct ClockExchangeTests {
    struct Vectors: Decodable {
        struct Reading: Decodable { var ms: UInt64; var hex: String }
        struct Exchange: Decodable {
            var localWallAtAnswerMs: UInt64
            var roundTripMs: UInt64
            var responderHex: String
            var offsetMs: Int64
        }
        var readings: [Reading]
        var exchanges: [Exchange]
        var invalidAnswers: [String]
    }

    static func vectors() throws -> Vectors {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/clock/exchange-vectors.json")
        return try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
    }

    static func bytes(_ hex: String) -> [UInt8] {
        let chars = Array(hex.utf8)
        return stride(from: 0, to: chars.count, by: 2).map { UInt8(String(decoding: chars[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }

    @Test func readingsAreEightBytesBigEndian() throws {
        for r in try Self.vectors().readings {
            #expect(ClockService.encode(r.ms) == Self.bytes(r.hex))
            #expect(ClockService.decode(Self.bytes(r.hex)) == r.ms)
        }
    }

    @Test func anAnswerOfAnyOtherLengthIsRefused() throws {
        for hex in try Self.vectors().invalidAnswers { #expect(ClockService.decode(Self.bytes(hex)) == nil, "\(hex)") }
    }

    @Test func anExchangeGivesTheOffsetWithItsSign() throws {
        for e in try Self.vectors().exchanges {
            let remote = try #require(ClockService.decode(Self.bytes(e.responderHex)))
            #expect(ClockOffsetEstimator.offset(localWallMs: e.localWallAtAnswerMs, roundTripMs: e.roundTripMs, remoteWallMs: remote) == e.offsetMs)
        }
    }
}
