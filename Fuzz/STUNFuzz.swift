// libFuzzer entry point for STUN (RFC 8489) and the ICE-lite agent (RFC 8445 §2.5), the first
// code every datagram on the media port reaches. Built by scripts/fuzz.sh against the RTC module.
//
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
// - decoding never traps, and an accepted message re-encodes to bytes that decode to the same
//   message (attributes the decoder ignores are dropped once, so the second pass is exact);
// - the raw-byte MESSAGE-INTEGRITY/FINGERPRINT checks and the ufrag router never trap;
// - the agent never traps on the raw input, and every reply it sends is a STUN message with a
//   valid FINGERPRINT (signed replies also a valid MESSAGE-INTEGRITY under our password);
// - a decoded message re-signed with the agent's password (so it passes authentication) drives
//   the agent past the authentication checks: 420, 487, success, nomination and address change.
import RTC

private let password = "fuzz-password-0123456789"
private let key = Array(password.utf8)
private let sources = [
    SocketAddress(ip: .v4(0xC000_0201), port: 5000),
    SocketAddress(ip: .v4(0xC000_0202), port: 5001),
    SocketAddress(ip: .v6(high: 0x2001_0db8_0000_0000, low: 1), port: 5002),
]

private func checkReplies(_ actions: [ICELiteAction]) {
    for action in actions {
        guard case .send(let bytes, _) = action else { continue }
        guard let reply = try? STUNMessage(decoding: bytes) else { preconditionFailure("agent sent undecodable STUN \(bytes)") }
        precondition(STUNMessage.checkFingerprint(bytes[...]) == .valid, "reply without a valid FINGERPRINT")
        if reply.hasMessageIntegrity {
            precondition(STUNMessage.checkIntegrity(bytes[...], key: key) == .valid, "signed reply fails its own integrity check")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func stunFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []

    // 1. Raw bytes, whole and as a slice with a non-zero start index.
    _ = DatagramKind(classifying: input)
    _ = STUNMessage.checkIntegrity(input[...], key: key)
    _ = STUNMessage.checkFingerprint(input[...])
    _ = ICELiteAgent.localUfrag(of: input)
    if input.count > 1 {
        let slice = input[1...]
        _ = try? STUNMessage(decoding: slice)
        _ = STUNMessage.checkIntegrity(slice, key: key)
        _ = STUNMessage.checkFingerprint(slice)
    }
    var lenient = ICELiteAgent(localUfrag: "srv1", localPassword: password,
                               configuration: .init(requireFingerprint: false), now: 0)
    checkReplies(lenient.receive(input, from: sources[0], now: 1))

    guard let message = try? STUNMessage(decoding: input) else { return 0 }
    let reencoded = message.encoded()
    guard let again = try? STUNMessage(decoding: reencoded) else {
        preconditionFailure("re-encoded message does not decode: \(message)")
    }
    precondition(again.encoded() == reencoded, "encode/decode is not stable: \(message) vs \(again)")
    _ = message.unknownComprehensionRequired
    _ = message.xorMappedAddress
    _ = message.errorCode

    // 2. The same attributes, authenticated: USERNAME addressed to us (the input's own when it
    //    has one, so mismatches are still reached), signed and fingerprinted.
    let control = input.count > 3 ? input[3] : 0
    var attributes = message.attributes.filter {
        switch $0 {
        case .messageIntegrity, .fingerprint: false
        default: true
        }
    }
    if message.username == nil || control & 1 != 0 {
        attributes.insert(.username("srv1:peer"), at: 0)
    }
    var request = message
    request.attributes = attributes
    let signed = request.encoded(integrityKey: key, fingerprint: true)
    var agent = ICELiteAgent(localUfrag: "srv1", localPassword: password,
                             remoteUfrag: control & 2 != 0 ? "peer" : nil, now: 0)
    for (i, source) in sources.enumerated() where i <= Int(control >> 6) {
        let actions = agent.receive(signed, from: source, now: UInt64(i) * 1000)
        checkReplies(actions)
    }
    _ = agent.isExpired(now: 40_000)
    return 0
}
