import Identity
import Testing

@testable import Registry

/// The clock rules of Specs/registry.md "Clocks": the offset estimate, the skew bound, and
/// what a node's stamps are and how its records are judged when clocks are wrong.
@Suite struct ClockOffsetTests {
    static let minute: Int64 = 60_000
    static func peer(_ i: Int) -> PeerID { try! Ed25519KeyPair(seed: [UInt8](repeating: UInt8(i + 1), count: 32)).peerID }

    /// An estimator holding one sample per offset (peer i: offsets[i]), taken at `at`.
    static func estimator(_ offsets: [Int64], at: UInt64 = 1_000) -> ClockOffsetEstimator {
        var e = ClockOffsetEstimator()
        for (i, o) in offsets.enumerated() { e.add(peer(i), offsetMs: o, nowMs: at) }
        return e
    }

    @Test func anExchangeIsReadAtTheMidpointOfItsRoundTrip() {
        // Asked at local 900, answered at local 1,000: the peer's 800 was read at local 950.
        #expect(ClockOffsetEstimator.offset(localWallMs: 1_000, roundTripMs: 100, remoteWallMs: 800) == 150)
        #expect(ClockOffsetEstimator.offset(localWallMs: 1_000, roundTripMs: 0, remoteWallMs: 301_000) == -300_000)
    }

    @Test func withoutSamplesTheWallClockIsUsedAsItIs() {
        var e = ClockOffsetEstimator()
        #expect(e.estimate(nowMs: 0) == .init(offsetMs: 0, correctionMs: 0, status: .unknown, peers: 0))
    }

    @Test func aNodeAheadOfItsPeersIsCorrected() {
        var e = Self.estimator([5 * Self.minute, 5 * Self.minute + 40, 5 * Self.minute - 25])
        let x = e.estimate(nowMs: 1_000)
        #expect(x.status == .corrected && x.peers == 3)
        // Of the two middle values (5 min − 25 ms, 5 min), the one closer to zero.
        #expect(x.offsetMs == 5 * Self.minute - 25 && x.correctionMs == x.offsetMs)
        #expect(x.isSettled)
    }

    @Test func aNodeBehindItsPeersIsCorrectedTheOtherWay() {
        var e = Self.estimator([-5 * Self.minute, -5 * Self.minute - 10])
        let x = e.estimate(nowMs: 1_000)
        #expect(x.status == .corrected && x.correctionMs == -5 * Self.minute)
    }

    @Test func onePeerCannotMoveANode() {
        // Its own clock against one other: nobody can tell which is wrong.
        var e = Self.estimator([5 * Self.minute])
        let x = e.estimate(nowMs: 1_000)
        #expect(x.status == .undecided && x.correctionMs == 0 && !x.isSettled)
    }

    @Test func aMinorityOfLiarsCannotMoveANode() {
        // Three honest peers within milliseconds, two claiming this node is an hour off.
        var e = Self.estimator([12, -30, 4, -3_600_000, -3_600_000])
        let x = e.estimate(nowMs: 1_000)
        #expect(x.status == .ok && x.correctionMs == 0 && x.offsetMs.magnitude < 100)
        // Two against two (this node and one peer against two): undecided, nothing corrected.
        var split = Self.estimator([0, 5 * Self.minute, 5 * Self.minute])
        let z = split.estimate(nowMs: 1_000)
        #expect(z.status == .undecided && z.correctionMs == 0)
        // Even a majority of liars cannot shift it beyond the tolerance: it is refused instead.
        var f = Self.estimator([-3_600_000, -3_600_000, -3_600_000, 12])
        let y = f.estimate(nowMs: 1_000)
        #expect(y.status == .refused && y.correctionMs == 0 && y.offsetMs == -3_600_000)
    }

    @Test func theToleranceIsTheBound() {
        var within = Self.estimator([ClockSkew.toleranceMs, ClockSkew.toleranceMs])
        #expect(within.estimate(nowMs: 1_000).status == .corrected)
        var beyond = Self.estimator([ClockSkew.toleranceMs + 1, ClockSkew.toleranceMs + 1])
        let x = beyond.estimate(nowMs: 1_000)
        #expect(x.status == .refused && x.correctionMs == 0 && !x.isSettled)
    }

    @Test func smallOffsetsAreLeftAloneAndCorrectionHasHysteresis() {
        func at(_ offset: Int64, _ e: inout ClockOffsetEstimator) -> ClockOffsetEstimator.Estimate {
            for i in 0..<3 { e.add(Self.peer(i), offsetMs: offset, nowMs: 1_000) }
            return e.estimate(nowMs: 1_000)
        }
        var e = ClockOffsetEstimator()
        #expect(at(1_500, &e).status == .ok)           // NTP-level: the wall clock stays exact
        #expect(at(2_500, &e).status == .corrected)
        #expect(at(1_500, &e).status == .corrected)    // once correcting, down to half the band
        #expect(at(900, &e).status == .ok)
        #expect(at(1_500, &e).status == .ok)
    }

    @Test func samplesAgeOutAndDisconnectedPeersAreForgotten() {
        var e = Self.estimator([5 * Self.minute, 5 * Self.minute], at: 1_000)
        #expect(!e.needsSample(Self.peer(0), nowMs: 1_000 + ClockSkew.sampleLifetimeMs / 2 - 1))
        #expect(e.needsSample(Self.peer(0), nowMs: 1_000 + ClockSkew.sampleLifetimeMs / 2))
        #expect(e.needsSample(Self.peer(7), nowMs: 1_000))
        e.keep(only: [Self.peer(0)])
        #expect(e.estimate(nowMs: 2_000).peers == 1)
        #expect(e.estimate(nowMs: 1_000 + ClockSkew.sampleLifetimeMs).status == .unknown)
    }
}

@Suite struct ClockRuleTests {
    static let minute: UInt64 = 60_000

    /// Other nodes' stamps do not drag this node's clock: a peer whose clock is 5 minutes
    /// ahead leaves this node's own records stamped with its own time.
    @Test func aRemoteClockAheadDoesNotDragOwnStamps() {
        let me = Ed25519KeyPair.generate(), fast = Ed25519KeyPair.generate()
        var replica = RegistryReplica()
        #expect(replica.merge(makeRecord(fast, wall: baseMs + 5 * Self.minute), nowMs: baseMs) == .accepted)
        let stamp = replica.nextTimestamp(nowMs: baseMs + 1, owner: me.peerID)
        #expect(stamp == HLC(wallMs: baseMs + 1))
    }

    /// A new version of a node's own record always orders after the one the table holds, even
    /// when that one was stamped by a clock that ran ahead (before a restart, or before the
    /// node learned its offset): the stamps hold still until the clock passes it.
    @Test func ownStampsOrderAfterTheOwnRecordTheTableHolds() {
        let me = Ed25519KeyPair.generate()
        var replica = RegistryReplica()
        let ahead = makeRecord(me, wall: baseMs + 5 * Self.minute, logical: 3)
        replica.merge(ahead, nowMs: baseMs)
        let next = replica.nextTimestamp(nowMs: baseMs, owner: me.peerID)
        #expect(next > ahead.hlc && next.wallMs == ahead.hlc.wallMs)
        let later = replica.nextTimestamp(nowMs: baseMs + 6 * Self.minute, owner: me.peerID)
        #expect(later == HLC(wallMs: baseMs + 6 * Self.minute))
    }

    /// The rule end to end, with the registry clocks of three nodes: A right, B 5 minutes
    /// ahead, C 5 minutes behind, both corrected by their estimates (Specs/registry.md
    /// "Clocks"). Every record is accepted and live everywhere; a record of B stamped before
    /// its estimate (5 minutes ahead) is accepted too, lives at most its skew beyond its TTL,
    /// and then expires everywhere; a replayed old record is still refused.
    @Test func skewWithinTheBoundHidesNoNodeAndKilledNodesStillExpire() throws {
        let t = baseMs
        let ttl: UInt32 = 90
        let keys = (0..<3).map { _ in Ed25519KeyPair.generate() }
        // Registry clocks at true time t: wall minus correction.
        let skew: [Int64] = [0, 5 * 60_000, -5 * 60_000]
        let wall = skew.map { UInt64(Int64(t) + $0) }
        let registryNow = zip(wall, skew).map { $0 &- UInt64(bitPattern: $1) }
        #expect(Set(registryNow) == [t])
        // Each node stamps on its registry clock; B's first record went out before it knew.
        var records = keys.map { makeRecord($0, wall: t, ttl: ttl) }
        let early = makeRecord(keys[1], wall: wall[1], ttl: ttl)
        records.append(early)
        for now in registryNow {
            for r in records {
                let verified = try SignedRecord.verify(encoded: r.encoded, nowMs: now)
                #expect(verified.isLive(nowMs: now))
            }
        }
        // B dies right after its early record: gone everywhere within TTL + its skew.
        let gone = t + UInt64(ttl) * 1000 + 5 * Self.minute
        #expect(early.isLive(nowMs: gone - 1) && !early.isLive(nowMs: gone))
        // C's honest records expire after their TTL as usual.
        #expect(!records[2].isLive(nowMs: t + UInt64(ttl) * 1000))
        // A record already past its TTL (a replay) is not live on any registry clock.
        let replayed = makeRecord(keys[0], wall: t - 120_000, ttl: 60)
        #expect(registryNow.allSatisfy { !replayed.isLive(nowMs: $0) })
    }
}
