import Identity
import Testing
@testable import Libp2p

/// Random well-formed multiaddrs, in the spirit of rust-multiaddr's quickcheck `Arbitrary`.
struct MultiaddrGenerator {
    var rng: SplitMix64

    mutating func hostName() -> String {
        // ASCII labels, plus non-ASCII and combining marks: a name may begin with U+0301,
        // which must not fuse with the preceding '/' when the text form is split.
        let pieces = ["a", "z", "0", "-", ".", "xn--", "é", "\u{301}", "ß", "ü", "موقع", "例", "_", ":", "%", "~"]
        let count = Int.random(in: 1...12, using: &rng)
        return (0..<count).map { _ in pieces.randomElement(using: &rng)! }.joined()
    }

    mutating func peerID() -> PeerID {
        if Bool.random(using: &rng) {
            return PeerID(publicKey: LibP2PPublicKey(type: .ed25519, data: rng.bytes(32)))
        }
        return try! PeerID(multihash: [0x12, 0x20] + rng.bytes(32))
    }

    mutating func component() -> MultiaddrComponent {
        switch Int.random(in: 0..<22, using: &rng) {
        case 0: return .ip4(IPv4Address(rawValue: UInt32.random(in: 0...UInt32.max, using: &rng)))
        case 1:
            let groups = (0..<8).map { _ in Bool.random(using: &rng) ? 0 : UInt16.random(in: 0...0xffff, using: &rng) }
            return .ip6(IPv6Address(groups: groups))
        case 2: return .tcp(UInt16.random(in: 0...UInt16.max, using: &rng))
        case 3: return .udp(UInt16.random(in: 0...UInt16.max, using: &rng))
        case 4: return .dns(hostName())
        case 5: return .dns4(hostName())
        case 6: return .dns6(hostName())
        case 7: return .dnsaddr(hostName())
        case 8: return .p2p(peerID())
        case 9: return .quic
        case 10: return .quicV1
        case 11: return .webtransport
        case 12:
            let digest = rng.bytes(Int.random(in: 0...40, using: &rng))
            return .certhash(UVarint.encode(UInt64.random(in: 0...0x3fff, using: &rng)) + UVarint.encode(UInt64(digest.count)) + digest)
        case 13: return .tls
        case 14: return .sni(hostName())
        case 15: return .noise
        case 16: return .http
        case 17: return .ws
        case 18: return .wss
        case 19: return .p2pCircuit
        case 20: return .webrtcDirect
        default: return .webrtc
        }
    }

    mutating func multiaddr() -> Multiaddr {
        Multiaddr((0..<Int.random(in: 1...8, using: &rng)).map { _ in component() })
    }
}

@Suite struct MultiaddrPropertyTests {
    @Test func randomAddressesRoundTripTextBinaryText() throws {
        var generator = MultiaddrGenerator(rng: SplitMix64(seed: 42))
        for _ in 0..<2000 {
            let address = generator.multiaddr()
            let text = address.description
            let parsed = try Multiaddr(text)
            #expect(parsed == address, "\(text)")
            let binary = parsed.bytes
            let fromBinary = try Multiaddr(bytes: binary)
            #expect(fromBinary.bytes == binary, "\(text)")
            #expect(fromBinary.description == text)
        }
    }

    /// Random bytes and random text must only ever produce a value or a `MultiaddrError`;
    /// whatever parses must round-trip.
    @Test func garbageNeverCrashes() {
        var rng = SplitMix64(seed: 7)
        var generator = MultiaddrGenerator(rng: SplitMix64(seed: 8))
        let seeds = (0..<50).map { _ in generator.multiaddr().bytes }
        for i in 0..<10_000 {
            var input: [UInt8]
            if i % 2 == 0 {
                input = rng.bytes(Int.random(in: 0...40, using: &rng))
            } else {
                // Mutate a valid address: flip, drop or insert a few bytes.
                input = seeds[i % seeds.count]
                for _ in 0..<Int.random(in: 1...3, using: &rng) where !input.isEmpty {
                    let at = Int.random(in: 0..<input.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: input[at] ^= UInt8.random(in: 1...255, using: &rng)
                    case 1: input.remove(at: at)
                    default: input.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                    }
                }
            }
            if let address = try? Multiaddr(bytes: input) {
                #expect(address.bytes == input, "\(hex(input))")
                #expect((try? Multiaddr(address.description)) == address, "\(address)")
            }
            let text = String(decoding: input, as: UTF8.self)
            if let address = try? Multiaddr(text) {
                #expect((try? Multiaddr(address.description)) == address, "\(address)")
            }
        }
    }
}
