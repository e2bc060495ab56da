// libFuzzer entry point for multistream-select negotiation. Not part of any target yet: build
// it as its own executable with `-sanitize=fuzzer,address` against the Libp2p module.
//
// The first input byte picks the role, the limits and the chunking; the rest is what the peer
// sends. Invariants (a violation traps, which libFuzzer reports as a crash):
// - `receive` only ever returns a step or throws `MultistreamError`;
// - on `.selected`, the protocol is one we offered and `remainder` is exactly the unread tail
//   of what was delivered in the final chunk;
// - once finished, the negotiator refuses further input.
import Libp2p

@_cdecl("LLVMFuzzerTestOneInput")
public func multistreamFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    guard let control = input.first else { return 0 }
    let peerBytes = Array(input.dropFirst())

    let offered = ["/noise", "/yamux/1.0.0", "/tls/1.0.0"]
    let role: MultistreamSelect.Role = control & 1 == 0
        ? .initiator(proposals: offered)
        : .responder(supported: offered)
    let limits = MultistreamSelect.Limits(
        maxMessageLength: control & 2 == 0 ? 1024 : 24,
        maxRejectedProposals: Int(control >> 5))
    let chunkSize = Int((control >> 2) & 7) + 1

    guard var negotiator = try? MultistreamSelect(role: role, limits: limits) else { return 0 }
    _ = negotiator.start()
    var offset = 0
    while offset < peerBytes.count {
        let chunk = Array(peerBytes[offset..<min(offset + chunkSize, peerBytes.count)])
        offset += chunk.count
        let step: MultistreamStep
        do {
            step = try negotiator.receive(chunk)
        } catch {
            precondition(negotiator.isFinished, "failed without finishing: \(error)")
            return 0
        }
        switch step {
        case .needMoreInput:
            continue
        case .selected(let chosen, _, let remainder):
            precondition(offered.contains(chosen), "selected '\(chosen)', which was never offered")
            precondition(remainder.count <= chunk.count && Array(chunk.suffix(remainder.count)) == remainder,
                         "remainder is not the unread tail of the last chunk")
            precondition((try? negotiator.receive([0])) == nil, "accepted input after selection")
            return 0
        case .noneSupported(let tried):
            precondition(tried == offered, "tried \(tried)")
            return 0
        }
    }
    return 0
}
