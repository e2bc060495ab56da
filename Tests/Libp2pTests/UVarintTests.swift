import Identity
import Testing
@testable import Libp2p

@Suite struct UVarintTests {
    /// multiformats/unsigned-varint README examples.
    static let readmeVectors: [(UInt64, String)] = [
        (1, "01"), (127, "7f"), (128, "8001"), (255, "ff01"), (300, "ac02"), (16384, "808001"),
    ]

    @Test(arguments: readmeVectors)
    func readmeVector(value: UInt64, encoding: String) throws {
        #expect(hex(UVarint.encode(value)) == encoding)
        let decoded = try #require(try UVarint.decode(unhex(encoding)))
        #expect(decoded.value == value)
        #expect(decoded.length == encoding.count / 2)
    }

    @Test func zeroAndLimits() throws {
        #expect(UVarint.encode(0) == [0])
        let max = UVarint.encode(UVarint.maxValue)
        #expect(max.count == 9)
        #expect(max == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        #expect(try UVarint.decode(max)?.value == UVarint.maxValue)
        #expect(UVarint.encodedLength(UVarint.maxValue) == 9)
    }

    @Test func decodeIgnoresTrailingBytes() throws {
        let decoded = try #require(try UVarint.decode([0xac, 0x02, 0xff, 0xff]))
        #expect(decoded.value == 300 && decoded.length == 2)
        // Works on slices with a non-zero start index too.
        let slice: ArraySlice<UInt8> = ([0x00, 0xac, 0x02] as [UInt8])[1...]
        #expect(try UVarint.decode(slice)?.value == 300)
    }

    @Test func needsMoreBytes() throws {
        #expect(try UVarint.decode([UInt8]()) == nil)
        #expect(try UVarint.decode([0x80]) == nil)
        #expect(try UVarint.decode([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) == nil)
    }

    @Test func rejectsNonMinimal() {
        for bad: [UInt8] in [[0x80, 0x00], [0x81, 0x00], [0xff, 0x80, 0x00], [0x80, 0x80, 0x80, 0x00]] {
            do { _ = try UVarint.decode(bad); Issue.record("accepted \(bad)") } catch {
                #expect(error.code == .nonMinimal)
            }
        }
    }

    @Test func rejectsMoreThanNineBytes() {
        // 2^63 needs a tenth byte; so does any nine-byte prefix that keeps the continuation bit.
        let tooLong: [UInt8] = Array(repeating: 0x80, count: 9) + [0x01]
        do { _ = try UVarint.decode(tooLong); Issue.record("accepted a 10-byte varint") } catch {
            #expect(error.code == .overflow)
            #expect(error.message.contains("9 bytes"))
        }
        // Rejected as soon as the ninth byte says "more follows", without waiting for the tenth.
        do { _ = try UVarint.decode(Array(repeating: 0xff, count: 9)); Issue.record("accepted") } catch {
            #expect(error.code == .overflow)
        }
    }

    @Test func roundTripsRandomValues() throws {
        var rng = SplitMix64(seed: 1)
        for _ in 0..<5000 {
            let bits = Int.random(in: 0...63, using: &rng)
            let value = bits == 0 ? 0 : UInt64.random(in: 0...UVarint.maxValue, using: &rng) >> UInt64(63 - bits)
            let encoded = UVarint.encode(value)
            #expect(encoded.count == UVarint.encodedLength(value))
            let decoded = try #require(try UVarint.decode(encoded + [0x55]))
            #expect(decoded.value == value && decoded.length == encoded.count)
        }
    }
}
