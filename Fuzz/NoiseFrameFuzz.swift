// libFuzzer entry point for noise-libp2p input handling: NoiseFrameDecoder and a fresh
// responder NoiseHandshake, the two places untrusted bytes reach first.
//
// Not part of the package targets yet. Intended build, once wired (Linux, Swift toolchain
// with libFuzzer):
//
//     swiftc -parse-as-library -sanitize=fuzzer,address -O \
//         -I .build/debug/Modules ... Fuzz/NoiseFrameFuzz.swift -o noise-frame-fuzz
//
// Any crash, precondition failure or sanitizer report is a bug: every input must end in
// frames, waiting for more bytes, or a NoiseError.

import Identity
import Libp2p

/// Fixed keys keep runs comparable; each responder still draws a fresh ephemeral key, which
/// affects no branch an input can steer.
private let fuzzIdentity = try! Ed25519KeyPair(seed: [UInt8](repeating: 0x5a, count: 32))
private let fuzzStaticKey = try! X25519KeyPair(privateKey: [UInt8](repeating: 0x3c, count: 32))

@_cdecl("LLVMFuzzerTestOneInput")
public func noiseFrameFuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input: [UInt8] = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []

    // 1. The raw input as one unframed message 1.
    var direct = NoiseHandshake(role: .responder, identity: fuzzIdentity, staticKey: fuzzStaticKey)
    _ = try? direct.receive(input)

    // 2. The input as a framed byte stream: the first byte picks how it is chunked (1 = drip
    //    feed), the first byte's high bits a lower frame limit; every frame goes to a responder,
    //    which sees message 1, then message 3, then must refuse further frames.
    guard let control = input.first else { return 0 }
    let chunk = Int(control & 0x0f) + 1
    let limit = control & 0x80 != 0 ? Int(control & 0x70) << 4 : NoiseFrame.maxBodyLength
    var decoder = NoiseFrameDecoder(maxFrameLength: limit)
    var responder = NoiseHandshake(role: .responder, identity: fuzzIdentity, staticKey: fuzzStaticKey)
    var rest = input.dropFirst()
    do {
        while !rest.isEmpty {
            let piece = rest.prefix(chunk)
            rest = rest.dropFirst(piece.count)
            for frame in try decoder.frames(from: piece) {
                precondition(frame.count <= decoder.maxFrameLength, "decoder returned an oversize frame")
                _ = try? responder.receive(frame)
            }
            precondition(decoder.bufferedByteCount <= decoder.capacity, "decoder exceeded its buffer bound")
        }
    } catch {
        guard case .frameTooLarge(let length, let maxLength) = error, length > maxLength else {
            preconditionFailure("unexpected decoder error \(error)")
        }
    }
    return 0
}
