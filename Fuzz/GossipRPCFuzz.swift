// libFuzzer entry point for the Gossipsub RPC decoder and the router that consumes it.
//
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
// - decoding never traps; whatever decodes re-encodes to bytes that decode to an equal RPC;
// - a router fed the bytes as a peer's frame never traps, whatever its state.
import Gossipsub
import Identity

let fuzzKeys = (0..<2).map { try! Ed25519KeyPair(seed: [UInt8](repeating: UInt8($0 + 1), count: 32)) }
nonisolated(unsafe) var fuzzRouter: GossipRouter = {
    var r = GossipRouter(localPeer: fuzzKeys[0].peerID, signer: fuzzKeys[0], seed: 1)
    _ = r.subscribe("drtc/registry/1", now: 1_000)
    _ = r.addPeer(fuzzKeys[1].peerID, protocol: .v12, outbound: true, now: 1_000)
    return r
}()
nonisolated(unsafe) var fuzzNow: UInt64 = 1_000

@_cdecl("LLVMFuzzerTestOneInput")
public func gossipRPCFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let rpc = try? GossipRPC(decoding: input) {
        let again = try? GossipRPC(decoding: rpc.encoded)
        precondition(again == rpc, "RPC did not survive encode/decode")
    }
    fuzzNow += 100
    _ = fuzzRouter.handle(frame: input, from: fuzzKeys[1].peerID, now: fuzzNow) { m, _ in m.data.first == 0 ? .reject("x") : .accept }
    if input.first == 0xff { _ = fuzzRouter.heartbeat(now: fuzzNow) }
    return 0
}
