import Identity
import Testing
@testable import Libp2p

/// Runs two negotiators against each other in memory, delivering at most `chunkSize` bytes per
/// `receive` call, until neither has anything left to say.
struct Exchange {
    var initiator: MultistreamSelect
    var responder: MultistreamSelect
    var initiatorOutcome: MultistreamStep?
    var responderOutcome: MultistreamStep?
    /// Everything each side put on the wire, for byte-exact checks.
    var initiatorWire: [UInt8] = []
    var responderWire: [UInt8] = []

    init(proposals: [String], supported: [String]) throws {
        initiator = try MultistreamSelect(role: .initiator(proposals: proposals))
        responder = try MultistreamSelect(role: .responder(supported: supported))
    }

    mutating func run(chunkSize: Int = .max) throws {
        var toResponder = initiator.start()
        var toInitiator = responder.start()
        initiatorWire += toResponder
        responderWire += toInitiator
        while true {
            var progressed = false
            if !toResponder.isEmpty && !responder.isFinished {
                let chunk = Array(toResponder.prefix(chunkSize))
                toResponder.removeFirst(chunk.count)
                let step = try responder.receive(chunk)
                let send = Exchange.record(step, into: &responderOutcome)
                responderWire += send
                toInitiator += send
                progressed = true
            }
            if !toInitiator.isEmpty && !initiator.isFinished {
                let chunk = Array(toInitiator.prefix(chunkSize))
                toInitiator.removeFirst(chunk.count)
                let step = try initiator.receive(chunk)
                let send = Exchange.record(step, into: &initiatorOutcome)
                initiatorWire += send
                toResponder += send
                progressed = true
            }
            if !progressed { return }
        }
    }

    private static func record(_ step: MultistreamStep, into outcome: inout MultistreamStep?) -> [UInt8] {
        switch step {
        case .needMoreInput(let send):
            return send
        case .selected(_, let send, _):
            outcome = step
            return send
        case .noneSupported:
            outcome = step
            return []
        }
    }
}

func message(_ line: String) -> [UInt8] { MultistreamSelect.encodeMessage(line) }
let header = message("/multistream/1.0.0")

@Suite struct MultistreamWireTests {
    @Test func headerIsByteExact() {
        // 0x13 = 19 = 18 characters + '\n'.
        #expect(hex(header) == "13" + hex(Array("/multistream/1.0.0\n".utf8)))
        #expect(header.first == 0x13 && header.last == 0x0a && header.count == 20)
        // libp2p/specs connections/README.md: "na" is 0x036e610a.
        #expect(hex(message("na")) == "036e610a")
        #expect(hex(message("/noise")) == "072f6e6f6973650a")
    }

    @Test func initiatorPipelinesHeaderAndFirstProposal() throws {
        var initiator = try MultistreamSelect(role: .initiator(proposals: ["/noise", "/tls/1.0.0"]))
        #expect(initiator.start() == header + message("/noise"))
        #expect(initiator.start() == [])
    }

    @Test func responderSendsHeaderFirst() throws {
        var responder = try MultistreamSelect(role: .responder(supported: ["/noise"]))
        #expect(responder.start() == header)
    }
}

@Suite struct MultistreamNegotiationTests {
    @Test func successOnFirstProposal() throws {
        var exchange = try Exchange(proposals: ["/noise"], supported: ["/yamux/1.0.0", "/noise"])
        try exchange.run()
        #expect(exchange.initiatorOutcome == .selected(protocol: "/noise", send: [], remainder: []))
        #expect(exchange.responderOutcome == .selected(protocol: "/noise", send: message("/noise"), remainder: []))
        #expect(exchange.initiatorWire == header + message("/noise"))
        #expect(exchange.responderWire == header + message("/noise"))
    }

    @Test(arguments: [Int.max, 1, 2, 3, 7])
    func successAfterTwoRejections(chunkSize: Int) throws {
        var exchange = try Exchange(proposals: ["/tls/1.0.0", "/plaintext/2.0.0", "/noise"], supported: ["/noise"])
        try exchange.run(chunkSize: chunkSize)
        #expect(exchange.initiatorOutcome == .selected(protocol: "/noise", send: [], remainder: []))
        #expect(exchange.responderOutcome == .selected(protocol: "/noise", send: message("/noise"), remainder: []))
        #expect(exchange.initiatorWire == header + message("/tls/1.0.0") + message("/plaintext/2.0.0") + message("/noise"))
        #expect(exchange.responderWire == header + message("na") + message("na") + message("/noise"))
    }

    @Test(arguments: [Int.max, 1])
    func allRejected(chunkSize: Int) throws {
        let proposals = ["/tls/1.0.0", "/noise", "/plaintext/2.0.0"]
        var exchange = try Exchange(proposals: proposals, supported: ["/secio/1.0.0"])
        try exchange.run(chunkSize: chunkSize)
        #expect(exchange.initiatorOutcome == .noneSupported(triedProtocols: proposals))
        #expect(exchange.initiator.isFinished)
        #expect(exchange.responderOutcome == nil)   // still waiting; the initiator closes the stream
        #expect(exchange.responderWire == header + message("na") + message("na") + message("na"))
    }

    @Test func dripFedResponderAnswersAtTheRightByte() throws {
        var responder = try MultistreamSelect(role: .responder(supported: ["/noise"]))
        _ = responder.start()
        let input = header + message("/noise")
        for (index, byte) in input.enumerated() {
            let step = try responder.receive([byte])
            if index < input.count - 1 {
                #expect(step == .needMoreInput(send: []), "byte \(index)")
            } else {
                #expect(step == .selected(protocol: "/noise", send: message("/noise"), remainder: []))
            }
        }
    }

    @Test func responderKeepsPipelinedProtocolBytes() throws {
        var responder = try MultistreamSelect(role: .responder(supported: ["/noise"]))
        _ = responder.start()
        let early: [UInt8] = [0x00, 0x20, 0xde, 0xad, 0xbe, 0xef]   // e.g. a Noise handshake message
        let step = try responder.receive(header + message("/noise") + early)
        #expect(step == .selected(protocol: "/noise", send: message("/noise"), remainder: early))
    }

    @Test func initiatorKeepsBytesAfterTheEcho() throws {
        var initiator = try MultistreamSelect(role: .initiator(proposals: ["/yamux/1.0.0"]))
        _ = initiator.start()
        let frame: [UInt8] = [0x00, 0x01, 0x00, 0x01, 0, 0, 0, 1, 0, 0, 0, 0]   // a yamux SYN
        #expect(try initiator.receive(header) == .needMoreInput(send: []))
        let step = try initiator.receive(message("/yamux/1.0.0") + frame)
        #expect(step == .selected(protocol: "/yamux/1.0.0", send: [], remainder: frame))
    }

    @Test func remainderSurvivesDripFeeding() throws {
        var initiator = try MultistreamSelect(role: .initiator(proposals: ["/a", "/b"]))
        _ = initiator.start()
        let input = header + message("na") + message("/b") + [1, 2, 3]
        var outcome: MultistreamStep?
        var consumed = 0
        for byte in input {
            consumed += 1
            let step = try initiator.receive([byte])
            if case .selected = step { outcome = step; break }
        }
        // Selected on the echo's newline; the three trailing bytes were never delivered.
        #expect(outcome == .selected(protocol: "/b", send: [], remainder: []))
        #expect(consumed == input.count - 3)
    }

    @Test func protocolIDsMatchByteForByte() throws {
        // U+212A KELVIN SIGN is canonically equivalent to "K": equal as Swift Strings, not as bytes.
        var responder = try MultistreamSelect(role: .responder(supported: ["/Kad/1.0.0"]))
        _ = responder.start()
        #expect(try responder.receive(header + message("/\u{212A}ad/1.0.0")) == .needMoreInput(send: message("na")))
        var initiator = try MultistreamSelect(role: .initiator(proposals: ["/Kad/1.0.0"]))
        _ = initiator.start()
        #expect(throws: MultistreamError.self) { try initiator.receive(header + message("/\u{212A}ad/1.0.0")) }
    }

    @Test func responderAnswersLsWithNa() throws {
        var responder = try MultistreamSelect(role: .responder(supported: ["/noise"]))
        _ = responder.start()
        #expect(try responder.receive(header + message("ls")) == .needMoreInput(send: message("na")))
    }
}

@Suite struct MultistreamFailureTests {
    func failure(_ role: MultistreamSelect.Role, limits: MultistreamSelect.Limits = .init(), _ input: [UInt8]) -> MultistreamError? {
        do {
            var negotiator = try MultistreamSelect(role: role, limits: limits)
            _ = negotiator.start()
            _ = try negotiator.receive(input)
            return nil
        } catch {
            return error
        }
    }

    @Test func httpRequestInsteadOfHeader() {
        let http = Array("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".utf8)
        let error = failure(.responder(supported: ["/noise"]), http)
        #expect(error?.code == .unexpectedHeader)
        #expect(error?.message == "multistream: expected /multistream/1.0.0, got 'GET / HTTP/1.1'")
    }

    @Test func garbageIsEscapedAndTruncatedForLogs() throws {
        let garbage: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0xff] + Array(repeating: UInt8(ascii: "A"), count: 200)
        let error = try #require(failure(.initiator(proposals: ["/noise"]), garbage))
        #expect(error.message.hasPrefix("multistream: expected /multistream/1.0.0, got '\\u{16}\\u{3}\\u{1}\\u{2}\\u{0}\\xff"))
        #expect(error.message.hasSuffix("AAA…'"))
        #expect(error.message.count < 200)
    }

    @Test func wrongHeaderVersion() {
        let error = failure(.initiator(proposals: ["/noise"]), message("/multistream/2.0.0"))
        #expect(error?.message == "multistream: expected /multistream/1.0.0, got '/multistream/2.0.0'")
    }

    @Test func oversizeLineRejectedBeforeItsBody() {
        // Only the length prefix of a 1025-byte message has arrived: that is enough to refuse.
        let error = failure(.responder(supported: ["/noise"]), header + UVarint.encode(1025))
        #expect(error?.code == .messageTooLarge)
        #expect(error?.message.contains("1025") == true)
        // Exactly 1024 (1023 characters + newline) is allowed.
        let longest = String(repeating: "x", count: 1023)
        #expect(failure(.responder(supported: ["/noise"]), header + message(longest)) == nil)
    }

    @Test func lineLimitIsConfigurable() {
        let limits = MultistreamSelect.Limits(maxMessageLength: 32)
        let error = failure(.responder(supported: ["/noise"]), limits: limits, header + message(String(repeating: "y", count: 40)))
        #expect(error?.code == .messageTooLarge)
    }

    @Test func tooManyRejectedProposals() throws {
        let limits = MultistreamSelect.Limits(maxRejectedProposals: 3)
        var responder = try MultistreamSelect(role: .responder(supported: ["/noise"]), limits: limits)
        _ = responder.start()
        #expect(try responder.receive(header) == .needMoreInput(send: []))
        for i in 0..<3 {
            #expect(try responder.receive(message("/nope/\(i)")) == .needMoreInput(send: message("na")))
        }
        do {
            _ = try responder.receive(message("/nope/3"))
            Issue.record("a fourth rejection was allowed")
        } catch {
            #expect(error.code == .tooManyRounds)
        }
        #expect(responder.isFinished)
    }

    @Test func unexpectedAnswer() {
        let error = failure(.initiator(proposals: ["/noise"]), header + message("/tls/1.0.0"))
        #expect(error?.code == .unexpectedMessage)
        #expect(error?.message == "multistream: proposed '/noise', peer answered '/tls/1.0.0' (expected the echo or 'na')")
    }

    @Test func framingErrors() {
        // Length says 3 but the line does not end in '\n'.
        #expect(failure(.responder(supported: []), header + [0x03, 0x6e, 0x61, 0x21])?.code == .malformedMessage)
        // Empty message.
        #expect(failure(.responder(supported: []), header + [0x00])?.code == .malformedMessage)
        // Not UTF-8.
        #expect(failure(.responder(supported: []), header + [0x03, 0xff, 0xfe, 0x0a])?.code == .malformedMessage)
        // Non-minimal length prefix.
        #expect(failure(.responder(supported: []), header + [0x83, 0x00])?.code == .malformedMessage)
    }

    @Test func invalidTransitions() throws {
        var negotiator = try MultistreamSelect(role: .responder(supported: ["/noise"]))
        do { _ = try negotiator.receive(header); Issue.record("receive before start") } catch {
            #expect(error.code == .invalidTransition)
        }
        _ = negotiator.start()
        _ = try negotiator.receive(header + message("/noise"))
        do { _ = try negotiator.receive([1]); Issue.record("receive after selection") } catch {
            #expect(error.code == .invalidTransition)
        }
    }

    @Test func errorsAreSticky() throws {
        var negotiator = try MultistreamSelect(role: .responder(supported: ["/noise"]))
        _ = negotiator.start()
        var first: MultistreamError?
        do { _ = try negotiator.receive([0x47]) } catch { first = error }
        do { _ = try negotiator.receive(header); Issue.record("recovered after failure") } catch {
            #expect(error == first)
        }
    }

    @Test func invalidProtocolIDs() {
        for bad in [[], [""], ["na"], ["ls"], ["/multistream/1.0.0"], ["/a\nb"], [String(repeating: "z", count: 1024)]] {
            #expect(throws: MultistreamError.self, "\(bad)") { try MultistreamSelect(role: .initiator(proposals: bad)) }
        }
        #expect(throws: MultistreamError.self) { try MultistreamSelect(role: .responder(supported: ["na"])) }
        #expect((try? MultistreamSelect(role: .initiator(proposals: [String(repeating: "z", count: 1023)]))) != nil)
    }
}

@Suite struct MultistreamFuzzTests {
    /// 10,000 random or mutated inputs in random chunks: every call returns a step or throws a
    /// `MultistreamError`, and nothing traps.
    @Test func randomInputsNeverCrash() throws {
        var rng = SplitMix64(seed: 99)
        let valid = [
            header + message("/noise") + [9, 9],
            header + message("na") + message("na") + message("/yamux/1.0.0"),
            header + message("/tls/1.0.0") + message("ls"),
        ]
        var outcomes = [String: Int]()
        for i in 0..<10_000 {
            var input: [UInt8]
            switch i % 3 {
            case 0: input = rng.bytes(Int.random(in: 0...64, using: &rng))
            case 1: input = header + rng.bytes(Int.random(in: 0...64, using: &rng))
            default:
                input = valid[i % valid.count]
                for _ in 0..<Int.random(in: 1...4, using: &rng) where !input.isEmpty {
                    let at = Int.random(in: 0..<input.count, using: &rng)
                    input[at] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            let role: MultistreamSelect.Role = Bool.random(using: &rng)
                ? .initiator(proposals: ["/noise", "/yamux/1.0.0"])
                : .responder(supported: ["/noise", "/yamux/1.0.0", "/tls/1.0.0"])
            var negotiator = try MultistreamSelect(role: role, limits: .init(maxMessageLength: 48, maxRejectedProposals: 4))
            _ = negotiator.start()
            var offset = 0
            feeding: while offset < input.count {
                let size = Int.random(in: 1...8, using: &rng)
                let chunk = Array(input[offset..<min(offset + size, input.count)])
                offset += chunk.count
                do {
                    switch try negotiator.receive(chunk) {
                    case .needMoreInput: continue
                    case .selected: outcomes["selected", default: 0] += 1; break feeding
                    case .noneSupported: outcomes["none", default: 0] += 1; break feeding
                    }
                } catch {
                    outcomes[error.code.description, default: 0] += 1
                    break feeding
                }
            }
        }
        // The corpus reaches success and the main failure paths, not just "garbage header".
        #expect(outcomes["selected", default: 0] > 0)
        #expect(outcomes["unexpectedHeader", default: 0] > 0)
        #expect(outcomes["malformedMessage", default: 0] > 0)
    }
}

@Suite struct LengthPrefixedDecoderTests {
    @Test func framesAndDecodes() throws {
        #expect(LengthPrefixedDecoder.frame([1, 2, 3]) == [3, 1, 2, 3])
        #expect(LengthPrefixedDecoder.frame([UInt8]()) == [0])
        var decoder = LengthPrefixedDecoder(maxMessageSize: 300)
        let big = [UInt8](repeating: 7, count: 300)
        decoder.append(LengthPrefixedDecoder.frame([1]) + LengthPrefixedDecoder.frame([]) + LengthPrefixedDecoder.frame(big) + [5])
        #expect(try decoder.next() == [1])
        #expect(try decoder.next() == [])
        #expect(try decoder.next() == big)
        #expect(try decoder.next() == nil)
        #expect(Array(decoder.bufferedBytes) == [5])
        #expect(decoder.takeBufferedBytes() == [5])
        #expect(decoder.bufferedBytes.isEmpty)
    }

    @Test func dripFed() throws {
        var decoder = LengthPrefixedDecoder(maxMessageSize: 1 << 20)
        let messages: [[UInt8]] = [[], [1], Array(repeating: 2, count: 200), Array(repeating: 3, count: 20_000)]
        let wire = messages.flatMap { LengthPrefixedDecoder.frame($0) }
        var received: [[UInt8]] = []
        for byte in wire {
            decoder.append([byte])
            while let message = try decoder.next() { received.append(message) }
        }
        #expect(received == messages)
    }

    @Test func rejectsOversizeFromThePrefixAlone() {
        var decoder = LengthPrefixedDecoder(maxMessageSize: 100)
        decoder.append(UVarint.encode(101))
        do { _ = try decoder.next(); Issue.record("accepted") } catch {
            #expect(error.code == .messageTooLarge)
            #expect(error.message == "length-prefixed message of 101 bytes exceeds the 100-byte limit")
        }
        // Sticky.
        #expect(throws: LengthPrefixError.self) { try decoder.next() }
    }

    @Test func rejectsBadPrefix() throws {
        var decoder = LengthPrefixedDecoder(maxMessageSize: 100)
        decoder.append([0x80, 0x00])
        #expect(throws: LengthPrefixError.self) { try decoder.next() }
        var huge = LengthPrefixedDecoder(maxMessageSize: .max)
        huge.append([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        #expect(try huge.next() == nil)   // 2^63 − 1 announced: waits, never overflows an index
    }
}
