import Identity
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A test's raw samples as the `QosSamples` protobuf (Specs/qos.proto). Reports carry only
/// `hash` (16 bytes); the challenger keeps the samples and serves them at
/// `GET /qos/samples?hash=`, where anyone can check them against the hash and recompute the
/// scores.
public struct SampleSeries: Hashable, Sendable {
    public var intervalMs: UInt32
    public var samples: [QoSSample]

    public init(intervalMs: UInt32, samples: [QoSSample]) {
        self.intervalMs = intervalMs
        self.samples = samples
    }

    public var encoded: [UInt8] {
        var w = Drtc_Qos_V1_QosSamples()
        w.intervalMs = intervalMs
        w.bitrateBps = samples.map(\.bitrateBps)
        w.lossPpm = samples.map(\.lossPpm)
        w.rttUs = samples.map(\.rttUs)
        w.jitterUs = samples.map(\.jitterUs)
        return (try? w.serializedBytes()) ?? []
    }

    /// The first 16 bytes of SHA-256 over the encoding.
    public var hash: [UInt8] { Self.hash(of: encoded) }

    public static func hash(of encoded: [UInt8]) -> [UInt8] { Array(SHA256.hash(encoded).prefix(16)) }

    public init(decoding bytes: [UInt8]) throws {
        let w = try Drtc_Qos_V1_QosSamples(serializedBytes: bytes)
        let n = w.bitrateBps.count
        guard w.lossPpm.count == n, w.rttUs.count == n, w.jitterUs.count == n, n <= QoSSchedule.maxIntervals else {
            throw QoSRejection.malformed("samples: the four series must have equal lengths of at most \(QoSSchedule.maxIntervals)")
        }
        intervalMs = w.intervalMs
        samples = (0..<n).map { QoSSample(bitrateBps: w.bitrateBps[$0], lossPpm: w.lossPpm[$0], rttUs: w.rttUs[$0], jitterUs: w.jitterUs[$0]) }
    }
}
