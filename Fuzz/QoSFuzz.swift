// libFuzzer entry point for the QoS decoders that read untrusted bytes (Specs/qos.md): signed
// bundles (gossip and sync), test signalling messages (/drtc/qos-test/1.0.0), and sample
// series (GET /qos/samples answers a client may check).
//
// Invariants: no input traps; a bundle that decodes can be stored, its ticket checked and the
// set aggregated.
import Identity
import QoS

let fuzzSchedule = QoSSchedule(epochSeconds: 40, testSeconds: 30, sampleIntervalMs: 2000)

@_cdecl("LLVMFuzzerTestOneInput")
public func qosFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let bundle = try? SignedQoSBundle.verify(encoded: input) {
        _ = bundle.nextBeta
        var ledger = QoSLedger()
        ledger.insert(bundle)
        _ = QoSAggregate.compute(ledger, schedule: bundle.bundle.schedule)
        _ = QoSAggregate.compute(ledger, schedule: fuzzSchedule)
    }
    if let request = try? TestSignalling.verifyRequest(input) {
        _ = try? TestSignalling.verifyResponse(input, to: request)
    }
    if let series = try? SampleSeries(decoding: input) {
        _ = ScoreCounts.compute(series.samples)
    }
    return 0
}
