import Identity
import Testing
import Libp2p

/// What a session did with some bytes: events (including those left pending when it threw),
/// the error if any, and the resulting outbound bytes and stream table.
struct YamuxOutcome: Equatable {
    var events: [YamuxEvent] = []
    var error: YamuxError?
    var outbound: [UInt8] = []
    var streamIDs: [UInt32] = []
}

/// Feeds `bytes` to a copy of `session` in pieces chosen by `split` (given what is left).
func feed(_ session: YamuxSession, _ bytes: [UInt8], split: (Int) -> Int) -> YamuxOutcome {
    var session = session
    var outcome = YamuxOutcome()
    var offset = 0
    do {
        repeat {
            let n = bytes.count == offset ? 0 : split(bytes.count - offset)
            outcome.events += try session.receive(Array(bytes[offset..<offset + n]))
            offset += n
        } while offset < bytes.count
    } catch {
        outcome.error = error
        outcome.events += session.takeEvents()
    }
    outcome.outbound = session.takeOutbound()
    outcome.streamIDs = session.streamIDs
    return outcome
}

/// Random frame sequences that are mostly well-formed, to get past the header checks and into
/// the stream state machine: small stream ids, all flag combinations, edge-case lengths.
func randomFrameSequence(_ rng: inout SplitMix64) -> [UInt8] {
    var out: [UInt8] = []
    for _ in 0..<Int.random(in: 1...16, using: &rng) {
        let type = UInt8.random(in: 0...20, using: &rng) == 0 ? 4 : UInt8.random(in: 0...3, using: &rng)
        let flags = UInt16.random(in: 0...15, using: &rng)
        let id = UInt32.random(in: 0...9, using: &rng)
        let length: UInt32 = type == 0
            ? UInt32.random(in: 0...40, using: &rng)
            : [0, 1, 100, 262_144, 0xFFFF_FFFF, UInt32.random(in: 0...UInt32.max, using: &rng)].randomElement(using: &rng)!
        out += [0, type, UInt8(flags >> 8), UInt8(flags & 0xFF)]
        out += [UInt8(id >> 24), UInt8((id >> 16) & 0xFF), UInt8((id >> 8) & 0xFF), UInt8(id & 0xFF)]
        out += [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
        if type == 0 { out += (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) } }
    }
    if !out.isEmpty && Bool.random(using: &rng) && UInt8.random(in: 0...3, using: &rng) == 0 {
        out[Int.random(in: 0..<out.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
    }
    if !out.isEmpty && UInt8.random(in: 0...7, using: &rng) == 0 {
        out.removeLast(Int.random(in: 0...out.count, using: &rng))
    }
    return out
}

@Suite struct YamuxRobustnessTests {
    @Test func tenThousandRandomInputsOnlyEverThrow() {
        var rng = SplitMix64(seed: 0xF022)
        var violations = 0
        for i in 0..<10_000 {
            let bytes: [UInt8] = i % 2 == 0
                ? (0..<Int.random(in: 0...256, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                : randomFrameSequence(&rng)
            var session = YamuxSession(role: i % 4 < 2 ? .server : .client)
            if session.role == .client, Bool.random(using: &rng) { _ = try? session.openStream() }
            var offset = 0
            do {
                while offset < bytes.count {
                    let n = Int.random(in: 1...(bytes.count - offset), using: &rng)
                    _ = try session.receive(Array(bytes[offset..<offset + n]))
                    offset += n
                    // The application pokes at whatever streams might exist.
                    let id = UInt32.random(in: 0...9, using: &rng)
                    switch UInt8.random(in: 0...5, using: &rng) {
                    case 0: _ = try? session.write([1, 2, 3], on: id)
                    case 1: session.consumed(Int.random(in: 0...300_000, using: &rng), on: id)
                    case 2: session.close(id)
                    case 3: session.reset(id)
                    case 4: _ = session.ping()
                    default: break
                    }
                    _ = session.takeOutbound()
                }
            } catch {
                violations += 1
                #expect(error.isProtocolViolation, "input \(i): \(error)")
                #expect(session.failure == error)
            }
        }
        // Sanity: the generator reaches both outcomes.
        #expect(violations > 1000 && violations < 10_000)
    }

    @Test func dripFeedingRandomSequencesGivesTheSameOutcome() {
        var rng = SplitMix64(seed: 0xD219)
        for i in 0..<2000 {
            let bytes = randomFrameSequence(&rng)
            var session = YamuxSession(role: i % 2 == 0 ? .server : .client)
            if session.role == .client { _ = try? session.openStream(); _ = session.takeOutbound() }
            let whole = feed(session, bytes) { $0 }
            let dripped = feed(session, bytes) { _ in 1 }
            var splitRNG = SplitMix64(seed: UInt64(i))
            let split = feed(session, bytes) { Int.random(in: 1...$0, using: &splitRNG) }
            #expect(whole == dripped, "sequence \(i)")
            #expect(whole == split, "sequence \(i)")
        }
    }

    @Test func dripFeedingARealConversationGivesTheSameEvents() throws {
        var pair = YamuxTestPair()
        pair.server.echo = true
        pair.verifyDripFeed = true
        var ids: [UInt32] = []
        for i in 0..<6 {
            let id = try pair.client.session.openStream()
            ids.append(id)
            try pair.client.send(pattern(40_000 * (i + 1), seed: UInt64(i)), on: id, thenClose: i % 2 == 0)
        }
        let opaque = pair.client.session.ping()
        try pair.pump()
        pair.client.session.reset(ids[1])
        pair.server.session.reset(ids[3])
        for id in [ids[5]] { pair.client.session.close(id) }
        pair.server.session.goAway()
        try pair.pump()
        #expect(pair.client.pingResponses == [opaque])
        #expect(pair.client.received[ids[0]] == pattern(40_000, seed: 0))
        #expect(pair.client.goAways == [.normal])
        #expect(pair.client.session.streamCount == 0)
        #expect(pair.server.session.streamCount == 0)
        #expect(pair.dripChecks > 5)
    }
}
