import Identity
import Testing

@testable import Registry

/// Runs a session to completion between two snapshots, applying received records to sets.
struct SyncRun {
    var aRecords: [SyncID: SignedRecord]
    var bRecords: [SyncID: SignedRecord]
    var bytes = 0
    var rounds = 0
    var recordsShipped = 0

    init(_ a: [SignedRecord], _ b: [SignedRecord]) {
        aRecords = Dictionary(uniqueKeysWithValues: a.map { ($0.syncID, $0) })
        bRecords = Dictionary(uniqueKeysWithValues: b.map { ($0.syncID, $0) })
    }

    /// Strips the uvarint length prefix that `Step.frames` carry.
    static func body(_ frame: [UInt8]) -> [UInt8] {
        var i = 0
        while frame[i] & 0x80 != 0 { i += 1 }
        return Array(frame[(i + 1)...])
    }

    mutating func run(threshold: Int? = nil) throws {
        var a = RegistrySyncSession(role: .initiator, snapshot: SyncSnapshot(records: aRecords.values))
        var b = RegistrySyncSession(role: .responder, snapshot: SyncSnapshot(records: bRecords.values))
        if let threshold {
            a.idListThreshold = threshold
            b.idListThreshold = threshold
        }
        var inFlight = a.start().frames
        var toB = true
        while !inFlight.isEmpty {
            rounds += 1
            var next: [[UInt8]] = []
            for frame in inFlight {
                bytes += frame.count
                let step = toB ? try b.receive(frame: Self.body(frame)) : try a.receive(frame: Self.body(frame))
                for encoded in step.records {
                    let r = try SignedRecord.reload(encoded: encoded)
                    recordsShipped += 1
                    if toB { bRecords[r.syncID] = r } else { aRecords[r.syncID] = r }
                }
                next += step.frames
            }
            inFlight = next
            toB.toggle()
        }
        #expect(a.finished && b.finished)
    }
}

@Suite struct SyncTests {
    static let keys = (0..<400).map { _ in Ed25519KeyPair.generate() }

    func records(_ range: Range<Int>, wall: UInt64 = baseMs) -> [SignedRecord] {
        range.map { makeRecord(Self.keys[$0], wall: wall) }
    }

    @Test func equalSetsCostOneRoundTrip() throws {
        let set = records(0..<300)
        var run = SyncRun(set, set)
        try run.run()
        #expect(run.rounds == 2)
        #expect(run.recordsShipped == 0)
        #expect(run.bytes < 100)
    }

    /// A busy responder's answer (a final turn of sample records, no ranges) is a complete,
    /// valid session for any initiator: it hands over the records and ends.
    @Test func busyReplyEndsTheSessionWithTheSample() throws {
        let sample = records(0..<16)
        var initiator = RegistrySyncSession(role: .initiator, snapshot: SyncSnapshot(records: records(100..<400)))
        let first = initiator.start().frames
        #expect(!first.isEmpty)
        var received: [[UInt8]] = []
        var done = false
        for frame in RegistrySyncSession.busyReply(sample: sample) {
            let step = try initiator.receive(frame: SyncRun.body(frame))
            received += step.records
            #expect(step.frames.isEmpty, "a final turn needs no answer")
            done = step.done
        }
        #expect(done)
        #expect(received == sample.map(\.encoded))
        // An empty sample (a responder with an empty table) is a bare final turn.
        var other = RegistrySyncSession(role: .initiator, snapshot: SyncSnapshot(records: records(0..<3)))
        _ = other.start()
        let steps = try RegistrySyncSession.busyReply(sample: []).map { try other.receive(frame: SyncRun.body($0)) }
        #expect(steps.last?.done == true && steps.allSatisfy(\.records.isEmpty))
    }

    @Test func emptyJoinerGetsEverythingInTwoTurns() throws {
        let set = records(0..<300)
        var run = SyncRun([], set)
        try run.run()
        #expect(Set(run.aRecords.keys) == Set(set.map(\.syncID)))
        #expect(run.recordsShipped == 300)
        let size = set.reduce(0) { $0 + $1.encoded.count }
        #expect(run.bytes < size + size / 10)
        // And the other way round: the initiator holds everything.
        var reverse = SyncRun(set, [])
        try reverse.run()
        #expect(Set(reverse.bRecords.keys) == Set(set.map(\.syncID)))
    }

    @Test(arguments: [1, 7, 40])
    func partitionDifferencesAreExchangedBothWays(diff: Int) throws {
        // Both sides share 300 records; each side holds `diff` newer versions the other lacks,
        // plus records only one side has.
        let shared = records(0..<300)
        var a = shared, b = shared
        for i in 0..<diff {
            a[i] = makeRecord(Self.keys[i], wall: baseMs + 1_000)
            b[299 - i] = makeRecord(Self.keys[299 - i], wall: baseMs + 2_000)
        }
        a += records(300..<(300 + diff))
        var run = SyncRun(a, b)
        try run.run()
        #expect(Set(run.aRecords.keys) == Set(run.bRecords.keys))
        #expect(Set(run.aRecords.keys) == Set(a.map(\.syncID)).union(b.map(\.syncID)))
        // Only the difference travels: both versions of each changed node (each side sends
        // its own; LWW keeps the newer), and the records only A had.
        #expect(run.recordsShipped == 5 * diff)
        let differing = Set(a.map(\.syncID)).symmetricDifference(b.map(\.syncID))
        let diffBytes = differing.reduce(0) { $0 + (run.aRecords[$1]?.encoded.count ?? 0) }
        #expect(run.bytes < 20 * diffBytes)
    }

    @Test func randomSetsAlwaysConverge() throws {
        var rng = SplitMix64(seed: 11)
        for _ in 0..<20 {
            let all = records(0..<200)
            let a = all.filter { _ in rng.next() % 3 != 0 }
            let b = all.filter { _ in rng.next() % 3 != 0 }
            var run = SyncRun(a, b)
            try run.run(threshold: Int(rng.next() % 8) + 2)
            #expect(Set(run.aRecords.keys) == Set(all.filter { r in a.contains(r) || b.contains(r) }.map(\.syncID)))
            #expect(Set(run.aRecords.keys) == Set(run.bRecords.keys))
        }
    }

    @Test func malformedFramesAreErrorsNotCrashes() throws {
        let snapshot = SyncSnapshot(records: records(0..<50))
        let valid = RegistrySyncSession(role: .initiator, snapshot: snapshot)
        var starter = valid
        let frame = SyncRun.body(starter.start().frames[0])
        for cut in 0..<frame.count {
            var s = RegistrySyncSession(role: .responder, snapshot: snapshot)
            _ = try? s.receive(frame: Array(frame[..<cut]))
        }
        var rng = SplitMix64(seed: 3)
        for _ in 0..<3_000 {
            var s = RegistrySyncSession(role: .responder, snapshot: snapshot)
            let bytes = [1, UInt8(rng.next() % 4)] + (0..<Int(rng.next() % 80)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = try? s.receive(frame: bytes)
        }
        var s = RegistrySyncSession(role: .responder, snapshot: snapshot)
        #expect { try s.receive(frame: [2, 0]) } throws: { ($0 as? SyncError)?.code == .unsupportedVersion }
        // Ranges that do not reach +∞ are a protocol violation.
        var t = RegistrySyncSession(role: .responder, snapshot: snapshot)
        #expect { try t.receive(frame: [1, 0, 1, 1, 0x80]) } throws: { ($0 as? SyncError)?.code == .protocolViolation }
    }

    @Test func roundLimitStopsAnEndlessPeer() throws {
        var limits = SyncLimits()
        limits.maxRounds = 3
        var s = RegistrySyncSession(role: .responder, snapshot: SyncSnapshot(records: records(0..<100)), limits: limits)
        // A peer that keeps sending a mismatching fingerprint of the whole space.
        let frame: [UInt8] = [1, 0, 2, 0xff, 1] + [UInt8](repeating: 9, count: 16)
        for _ in 0..<3 { _ = try s.receive(frame: frame) }
        #expect { try s.receive(frame: frame) } throws: { ($0 as? SyncError)?.code == .limitExceeded }
    }
}
