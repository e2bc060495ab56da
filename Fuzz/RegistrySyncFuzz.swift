// libFuzzer entry point for the registry-sync session decoder (Specs/registry-sync.md).
//
// Invariants: feeding any bytes as frames to a responder (fresh or mid-session) never traps;
// a session that accepted a frame produces frames that a peer session can read.
import Identity
import Registry

let syncSnapshot: SyncSnapshot = {
    let key = try! Ed25519KeyPair(seed: [UInt8](repeating: 7, count: 32))
    let record = try! MediaNodeRecord(publicKey: key.publicKey, region: "EU", hlc: HLC(wallMs: 1_700_000_000_000)).signed(with: key)
    return SyncSnapshot(records: [record])
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func registrySyncFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    var responder = RegistrySyncSession(role: .responder, snapshot: syncSnapshot)
    // Split the input into frames at 0xF0 bytes so one input can drive several turns.
    for frame in input.split(separator: 0xF0, omittingEmptySubsequences: false) {
        guard let step = try? responder.receive(frame: Array(frame)) else { break }
        var initiator = RegistrySyncSession(role: .initiator, snapshot: syncSnapshot)
        _ = initiator.start()
        for out in step.frames {
            var i = 0
            while i < out.count && out[i] & 0x80 != 0 { i += 1 }
            _ = try? initiator.receive(frame: Array(out[(i + 1)...]))
        }
        if step.done { break }
    }
    return 0
}
