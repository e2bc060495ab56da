// libFuzzer entry point for SDP offers from WHIP/WHEP clients: the `SessionDescription` parser,
// its serializer, the JSEP answerer and the SFU's producer description built from each section.
// Built by scripts/fuzz.sh against the RTC and SFU modules.
//
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
// - parsing never traps; an accepted description serializes to text that parses again, and the
//   serialized form is a fixed point after one pass (parse ∘ serialize is stable);
// - the answer to an accepted offer (when one can be made) serializes to text that parses, with
//   one m-section per offered section, in order, each carrying a=setup:passive and none
//   a=bundle-only (JSEP, RFC 8829 §5.3.1);
// - `ProducerDescription(section:)` never traps on an accepted section.
import RTC
import SFU

private let options = SDPAnswerOptions(
    iceUfrag: "srvU", icePwd: "server-password-0123456789",
    fingerprint: SDPFingerprint(digest: (0..<32).map { UInt8($0) }),
    candidates: [SDPCandidate(address: SocketAddress(ip: .v4(0xC000_0201), port: 40000)),
                 SDPCandidate(foundation: "2", priority: 2_130_706_430, address: SocketAddress(ip: .v6(high: 0x2001_0db8 << 32, low: 1), port: 40000))],
    sessionID: 123_456_789, answerToSendRecv: .recvonly,
    outgoingTracks: ["0": SDPOutgoingTrack(ssrc: 0xC0, rtxSSRC: 0xC1, cname: "drtc", streamID: "s", trackID: "t")])

@_cdecl("LLVMFuzzerTestOneInput")
public func sdpFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    let text = String(decoding: input, as: UTF8.self)
    guard let offer = try? SessionDescription(parsing: text) else { return 0 }

    let serialized = offer.serialized
    guard let reparsed = try? SessionDescription(parsing: serialized) else {
        preconditionFailure("serialized description does not parse:\n\(serialized)")
    }
    precondition(reparsed.serialized == serialized, "serialize is not a fixed point:\n\(serialized)\n---\n\(reparsed.serialized)")

    for m in offer.media {
        _ = try? ProducerDescription(section: m, sessionExtmaps: [])
    }
    var sendRecv = options
    sendRecv.answerToSendRecv = .sendrecv
    for opts in [options, sendRecv] {
        guard let answer = try? SessionDescription.answer(to: offer, options: opts) else { continue }
        precondition(answer.media.count == offer.media.count, "answer has \(answer.media.count) sections for \(offer.media.count) offered")
        precondition(answer.media.allSatisfy { $0.setup == .passive && !$0.bundleOnly }, "an answer section lacks a=setup:passive or has a=bundle-only")
        guard (try? SessionDescription(parsing: answer.serialized)) != nil else {
            preconditionFailure("answer does not parse:\n\(answer.serialized)")
        }
    }
    return 0
}
