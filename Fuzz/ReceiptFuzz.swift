// libFuzzer entry point for the session receipt decoders that read untrusted bytes
// (Specs/rewards.md "Data supplied"): `SignedSessionReceipt`s from gossip, sync and
// `POST /rpc/v1/receipts`, and `SessionReceipt` bodies an orchestrator proposes when it clamps.
//
// Invariants: no input traps; a receipt body that decodes can be decided on, compared, counted
// into the ledger's inputs, and its encoding decodes to the same receipt.
import Identity
import Rewards

let fuzzOrchestrator = try! Ed25519KeyPair(seed: Array(repeating: 7, count: 32))

@_cdecl("LLVMFuzzerTestOneInput")
public func receiptFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let signed = try? SignedSessionReceipt.verify(encoded: input, countersigned: false), signed.isCountersigned {
        var set = ReceiptSet()
        set.insert(signed)
        _ = set.totals(epoch: signed.epoch, epochSeconds: signed.receipt.epochSeconds, streamBitrateKbps: 700)
    }
    if let decoded = try? SessionReceipt(body: input) {
        // The fuzzer cannot find the orchestrator's key: the receipt is made this one's.
        var r = decoded
        r.orchestrator = fuzzOrchestrator.publicKeyBytes
        guard r.problem == nil else { return 0 }
        precondition((try? SessionReceipt(body: r.body)) == r, "a decoded receipt re-encodes to itself")
        _ = r.dataSuppliedMB(streamBitrateKbps: 700)
        let sightings = [RoomSighting(atMs: r.startMs, publishers: r.publishers, viewers: r.viewers),
                         RoomSighting(atMs: r.endMs, publishers: .greatestFiniteMagnitude, viewers: 0, pipesIn: 3, pipesOut: 1)]
        for tokens in [0, 1, Int.max] {
            let d = CountersignPolicy.decide(r, me: fuzzOrchestrator.publicKeyBytes, epochSeconds: r.epochSeconds,
                                             evidence: ReceiptEvidence(publishTokens: tokens, viewTokens: tokens, role: .edge, sightings: sightings),
                                             nowMs: r.endMs)
            if case .clamp(let backed, _) = d { precondition(CountersignPolicy.isNarrowing(backed, of: r), "a clamp only narrows") }
        }
    }
    return 0
}
