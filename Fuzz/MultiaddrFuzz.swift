// libFuzzer entry point for the multiaddr parsers. Not part of any target yet: build it as its
// own executable with `-sanitize=fuzzer,address` against the Libp2p module.
//
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
// - binary parsing never traps, and whatever it accepts re-serialises to the same bytes;
// - an accepted address prints to text that parses back to an equal address;
// - text parsing never traps, and accepted text round-trips through binary and text.
import Libp2p

@_cdecl("LLVMFuzzerTestOneInput")
public func multiaddrFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []

    if let address = try? Multiaddr(bytes: input) {
        precondition(address.bytes == input, "binary form did not round-trip: \(address)")
        let reparsed = try? Multiaddr(address.description)
        precondition(reparsed == address, "text form did not parse back: \(address)")
        _ = address.peerID
        _ = address.withoutPeerID
        _ = address.tcpEndpoint
    }

    let text = String(decoding: input, as: UTF8.self)
    if let address = try? Multiaddr(text) {
        let fromBinary = try? Multiaddr(bytes: address.bytes)
        precondition(fromBinary == address, "binary form did not parse back: \(address)")
        precondition((try? Multiaddr(address.description)) == address, "canonical text did not parse back: \(address)")
    }
    return 0
}
