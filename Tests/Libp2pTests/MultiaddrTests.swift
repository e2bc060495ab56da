import Foundation
import Identity
import Testing
@testable import Libp2p

struct MultiaddrVectors: Decodable {
    struct Binary: Decodable, CustomTestStringConvertible {
        var text: String, hex: String, source: String
        var testDescription: String { text }
    }
    struct Canonical: Decodable, CustomTestStringConvertible {
        var input: String, text: String, source: String
        var testDescription: String { input }
    }
    struct InvalidText: Decodable, CustomTestStringConvertible {
        var input: String, source: String
        var testDescription: String { "'\(input)'" }
    }
    struct InvalidBinary: Decodable, CustomTestStringConvertible {
        var hex: String, source: String
        var testDescription: String { "0x" + hex }
    }
    var binary: [Binary]
    var canonical: [Canonical]
    var invalidText: [InvalidText]
    var invalidBinary: [InvalidBinary]

    static let shared: MultiaddrVectors = {
        do { return try Fixtures.load("multiaddr-vectors.json", as: MultiaddrVectors.self) } catch {
            fatalError("cannot load Fixtures/multiaddr-vectors.json: \(error)")
        }
    }()
}

@Suite struct MultiaddrVectorTests {
    @Test(arguments: MultiaddrVectors.shared.binary)
    func textToBinaryAndBack(vector: MultiaddrVectors.Binary) throws {
        let fromText = try Multiaddr(vector.text)
        #expect(hex(fromText.bytes) == vector.hex, "\(vector.source)")
        let fromBinary = try Multiaddr(bytes: unhex(vector.hex))
        #expect(fromBinary.description == vector.text, "\(vector.source)")
        #expect(fromBinary == fromText)
    }

    @Test(arguments: MultiaddrVectors.shared.canonical)
    func canonicalText(vector: MultiaddrVectors.Canonical) throws {
        let parsed = try Multiaddr(vector.input)
        #expect(parsed.description == vector.text, "\(vector.source)")
        #expect(try Multiaddr(bytes: parsed.bytes) == parsed)
    }

    @Test(arguments: MultiaddrVectors.shared.invalidText)
    func rejectsText(vector: MultiaddrVectors.InvalidText) {
        #expect(throws: MultiaddrError.self, "\(vector.source)") { try Multiaddr(vector.input) }
    }

    @Test(arguments: MultiaddrVectors.shared.invalidBinary)
    func rejectsBinary(vector: MultiaddrVectors.InvalidBinary) {
        #expect(throws: MultiaddrError.self, "\(vector.source)") { try Multiaddr(bytes: unhex(vector.hex)) }
    }

    @Test func vectorsCoverWhatTheBriefAsksFor() {
        let texts = MultiaddrVectors.shared.binary.map(\.text)
        #expect(texts.contains { $0.contains("/p2p/12D3KooW") })
        #expect(texts.contains { $0.hasPrefix("/dns4/") })
        #expect(MultiaddrVectors.shared.canonical.contains { $0.input.hasPrefix("/ip6/") && $0.input != $0.text })
    }
}

@Suite struct MultiaddrErrorTests {
    func message(_ text: String) -> String {
        do { _ = try Multiaddr(text); return "accepted" } catch { return error.message }
    }

    @Test func errorsNameTheComponent() {
        #expect(message("/ip4/300.1.1.1") == "multiaddr: '/ip4/300.1.1.1': not an IPv4 address")
        #expect(message("/ip4/1.2.3.4/tcp/99999") == "multiaddr: '/tcp/99999': not a port number (0-65535)")
        #expect(message("/ip6/1::2::3/tcp/1") == "multiaddr: '/ip6/1::2::3': not an IPv6 address")
        #expect(message("/ip4/1.2.3.4/tcp") == "multiaddr: '/tcp': missing value")
        #expect(message("/ip4/1.2.3.4/foo/1") == "multiaddr: '/foo': unknown protocol 'foo'")
        #expect(message("") == "multiaddr: '' does not start with '/'")
        #expect(message("/") == "multiaddr: empty address")
        #expect(message("/p2p/notapeer").hasPrefix("multiaddr: '/p2p/notapeer': not a PeerID ("))
    }

    @Test func errorCodes() {
        func code(_ text: String) -> MultiaddrError.Code? {
            do { _ = try Multiaddr(text); return nil } catch { return error.code }
        }
        #expect(code("/ip4/1.2.3.4/bogus") == .unknownProtocol)
        #expect(code("/ip4") == .missingValue)
        #expect(code("/ip4/x") == .invalidValue)
        #expect(code("") == .malformed)
        #expect(code("/") == .empty)
    }

    @Test func binaryErrorsNameComponentAndOffset() {
        func message(_ hexString: String) -> String {
            do { _ = try Multiaddr(bytes: unhex(hexString)); return "accepted" } catch { return error.message }
        }
        #expect(message("047f0000010680") == "multiaddr: '/tcp' at byte 5: needs 2 value bytes but only 1 remain")
        #expect(message("0401020304ffff") == "multiaddr: truncated protocol code at byte 5")
        #expect(message("e707") == "multiaddr: unknown protocol code 999 (0x3e7) at byte 0")
        #expect(message("360561") == "multiaddr: '/dns4' at byte 0: value of 5 bytes but only 1 remain")
        #expect(message("3602612f") == "multiaddr: '/dns4' at byte 0: host name contains '/'")
    }

    @Test func logsAreEscaped() {
        let text = "/foo\nINJECTED/1"
        let m = message(text)
        #expect(!m.contains("\n"))
        #expect(m.contains("\\n"))
    }

    @Test func sizeLimits() throws {
        // 204 × "/ip4/1.2.3.4" (5 bytes each) plus "/tcp/1" (3) is 1023 bytes: fits. 1025 does not.
        let fits = String(repeating: "/ip4/1.2.3.4", count: 204) + "/tcp/1"
        #expect(try Multiaddr(fits).bytes.count == 1023)
        do { _ = try Multiaddr(fits + "/tls"); Issue.record("accepted > 1 KiB") } catch {
            #expect(error.code == .tooLarge)
        }
        let tooManyBytes: [UInt8] = (0..<1025).map { $0 % 2 == 0 ? 0xdd : 0x03 }
        do { _ = try Multiaddr(bytes: tooManyBytes); Issue.record("accepted > 1 KiB") } catch {
            #expect(error.code == .tooLarge)
        }
        // A text form far beyond any 1 KiB address is refused before it is split.
        do { _ = try Multiaddr(String(repeating: "/ws", count: 3000)); Issue.record("accepted") } catch {
            #expect(error.code == .tooLarge)
        }
        // A host name cannot exceed 255 bytes.
        #expect(throws: MultiaddrError.self) { try Multiaddr("/dns4/" + String(repeating: "a", count: 256)) }
        #expect(try Multiaddr("/dns4/" + String(repeating: "a", count: 255)).components.count == 1)
    }
}

@Suite struct MultiaddrHelperTests {
    let peer = try! PeerID("12D3KooWPA6ax6t3jqTyGq73Zm1RmwppYqxaXzrtarfcTWGp5Wzx")
    let relay = try! PeerID("QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC")

    @Test func peerIDAndWithoutPeerID() throws {
        let address = try Multiaddr("/ip4/127.0.0.1/tcp/4001/p2p/\(peer)")
        #expect(address.peerID == peer)
        #expect(address.withoutPeerID.description == "/ip4/127.0.0.1/tcp/4001")
        #expect(address.withoutPeerID.peerID == nil)
        #expect(address.withoutPeerID.appending(.p2p(peer)) == address)

        let bare = try Multiaddr("/ip4/127.0.0.1/tcp/4001")
        #expect(bare.peerID == nil)
        #expect(bare.withoutPeerID == bare)
        #expect(bare.appending(.p2p(peer)).description == "/ip4/127.0.0.1/tcp/4001/p2p/\(peer)")
    }

    @Test func relayAddressPeerIsTheTarget() throws {
        let circuit = try Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/\(relay)/p2p-circuit/p2p/\(peer)")
        #expect(circuit.peerID == peer)
        #expect(circuit.withoutPeerID.description == "/ip4/1.2.3.4/tcp/1/p2p/\(relay)/p2p-circuit")
        // A relay listen address ends in /p2p-circuit: the /p2p before it is the relay, not the peer.
        let listen = try Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/\(relay)/p2p-circuit")
        #expect(listen.peerID == nil)
    }

    @Test func tcpEndpoint() throws {
        func endpoint(_ text: String) throws -> String? {
            try Multiaddr(text).tcpEndpoint.map { "\($0.host) \($0.port)" }
        }
        #expect(try endpoint("/ip4/127.0.0.1/tcp/4001") == "127.0.0.1 4001")
        #expect(try endpoint("/ip4/127.0.0.1/tcp/4001/p2p/\(peer)") == "127.0.0.1 4001")
        #expect(try endpoint("/ip6/::1/tcp/80") == "::1 80")
        #expect(try endpoint("/dns4/example.com/tcp/443") == "example.com 443")
        #expect(try endpoint("/dns/example.com/tcp/443") == "example.com 443")
        #expect(try endpoint("/ip4/127.0.0.1/udp/4001/quic-v1") == nil)
        #expect(try endpoint("/ip4/127.0.0.1/tcp/443/wss") == nil)
        #expect(try endpoint("/dnsaddr/bootstrap.libp2p.io") == nil)
        #expect(try endpoint("/ip4/1.2.3.4/tcp/1/p2p/\(relay)/p2p-circuit/p2p/\(peer)") == nil)
        #expect(try endpoint("/tcp/80") == nil)
    }

    @Test func equalityIsByteExact() throws {
        let kelvin = try Multiaddr("/dns4/\u{212A}.example")
        let ascii = try Multiaddr("/dns4/K.example")
        #expect("\u{212A}.example" == "K.example")   // Swift's String equality...
        #expect(kelvin != ascii)                       // ...is not what identifies an address.
        #expect(Set([kelvin, ascii]).count == 2)
    }

    @Test func ipfsAliasReadsAsP2P() throws {
        let a = try Multiaddr("/ipfs/\(relay)")
        #expect(a.description == "/p2p/\(relay)")
        #expect(a.peerID == relay)
    }
}

@Suite struct IPAddressTests {
    @Test func ipv6Forms() throws {
        let cases: [(String, String)] = [
            ("::", "::"), ("::1", "::1"), ("1::", "1::"), ("1:0:0:0:0:0:0:0", "1::"),
            ("0:0:0:0:0:0:0:1", "::1"), ("ABCD:EF01:2345:6789:ABCD:EF01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"),
            ("2001:DB8:0:0:8:800:200C:417A", "2001:db8::8:800:200c:417a"), ("FF01:0:0:0:0:0:0:101", "ff01::101"),
            ("0:0:0:0:0:0:13.1.68.3", "::d01:4403"), ("0:0:0:0:0:FFFF:129.144.52.38", "::ffff:129.144.52.38"),
            ("::13.1.68.3", "::d01:4403"), ("::FFFF:129.144.52.38", "::ffff:129.144.52.38"),
            ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"), ("0:1:0:0:1:0:0:0", "0:1:0:0:1::"),
            ("0:0:1:0:0:1:0:0", "::1:0:0:1:0:0"),
        ]
        for (input, canonical) in cases {
            let address = try #require(IPv6Address(input), "\(input)")
            #expect(address.description == canonical, "\(input)")
            #expect(IPv6Address(canonical) == address)
            #expect(IPv6Address(bytes: address.bytes) == address)
        }
    }

    @Test func ipv6Rejects() {
        for bad in ["", ":", ":::", "1:2", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "::1::", "1::2::3",
                    "12345::", "g::", "1:2:3:4:5:6:7:1.2.3.4", "1.2.3.4", "::1.2.3", "::1.2.3.256",
                    "::ffff:1.2.3.04", "1.2.3.4::", "::1.2.3.4:1", "[::1]", "fe80::1%eth0", " ::1",
                    "::1 ", ":1::", "1::2:", "::-1"] {
            #expect(IPv6Address(bad) == nil, "'\(bad)'")
        }
    }

    @Test func ipv4() {
        #expect(IPv4Address("192.0.2.1")?.bytes == [192, 0, 2, 1])
        #expect(IPv4Address("0.0.0.0")?.rawValue == 0)
        #expect(IPv4Address("255.255.255.255")?.rawValue == .max)
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "1.2.3.4 ", "+1.2.3.4", "a.b.c.d", "1.2.3.-4"] {
            #expect(IPv4Address(bad) == nil, "'\(bad)'")
        }
    }

    @Test func ipv6RandomRoundTrip() throws {
        var rng = SplitMix64(seed: 6)
        for _ in 0..<3000 {
            // Zero-heavy groups so that '::' placement and ties get exercised.
            let groups = (0..<8).map { _ in Bool.random(using: &rng) ? 0 : UInt16.random(in: 0...0xffff, using: &rng) }
            let address = IPv6Address(groups: groups)
            let text = address.description
            #expect(IPv6Address(text) == address, "\(text)")
            #expect(!text.contains(":::"))
            #expect(text.components(separatedBy: "::").count <= 2)
        }
    }
}
