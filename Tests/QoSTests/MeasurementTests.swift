import RTC
import SFU
import Testing
@testable import QoS

@Suite struct MeasurementTests {
    let schedule = QoSSchedule(epochSeconds: 40, testSeconds: 30, sampleIntervalMs: 2000)
    let epoch: UInt64 = 43_000_000

    /// A stream of `perInterval` packets of 1000 payload bytes per interval, dropping those
    /// for which `drop` is true, from `from` ms to `until` ms after the test start.
    func feed(_ m: inout ChallengerMeasurement, perInterval: Int = 100, from: Int64 = -1000, until: Int64, drop: (Int) -> Bool = { _ in false },
              rtt: ((Int64) -> UInt32?)? = nil) -> Int {
        let start = Int64(m.testStartMs)
        let step = Int64(m.intervalMs) / Int64(perInterval)
        var seq: UInt16 = 65_000  // wraps during the test
        var k = 0
        var t = from
        while t < until {
            if let rtt, let us = rtt(t) { m.roundTrip(us: us, atMs: UInt64(start + t)) }
            if !drop(k) {
                let packet = RTPPacket(payloadType: 96, sequenceNumber: seq, timestamp: UInt32(truncatingIfNeeded: k * 900), ssrc: 77, payload: [UInt8](repeating: 1, count: 1000))
                m.received(packet, atMs: UInt64(start + t))
            }
            seq &+= 1
            k += 1
            t += step
        }
        return k
    }

    @Test func cleanStreamGivesFullScores() throws {
        var m = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        // One STUN round trip 500 ms into every interval.
        _ = feed(&m, until: 30_000, rtt: { t in t >= 0 && t % 2000 == 500 ? 2_000 + UInt32(t / 2000) : nil })
        m.advance(toMs: m.endMs)
        #expect(m.finished)
        #expect(m.samples.count == 15)
        // 100 packets × 1000 bytes per 2 s = 400 kbit/s.
        #expect(m.samples.allSatisfy { $0.bitrateBps == 400_000 })
        #expect(m.samples.allSatisfy { $0.lossPpm == 0 })
        #expect(m.samples.allSatisfy { $0.rttUs >= 2_000 && $0.rttUs < 2_100 })
        #expect(m.outcome == .completed)
        let (report, series) = m.report(prover: NodeKey([UInt8](repeating: 9, count: 32))!)
        #expect(report.counts == ScoreCounts(intervals: 15, samples: 15, bitrateGood: 14, lossGood: 15, latencyGood: 14))
        #expect(report.samplesHash == series.hash)
        #expect(report.minRttUs == 2_000)
        #expect(try SampleSeries(decoding: series.encoded) == series)
    }

    /// RFC 3550 A.3: the loss of each interval from sequence numbers, across a wrap.
    @Test func lossPerIntervalFromSequenceNumbers() {
        var m = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        // Every tenth packet lost: 10 %.
        _ = feed(&m, until: 30_000, drop: { $0 % 10 == 3 })
        m.advance(toMs: m.endMs)
        for s in m.samples {
            #expect(abs(Double(s.lossPpm) - 100_000) <= 10_000, "\(s.lossPpm)")
            #expect(s.bitrateBps == 360_000)
        }
        let (report, _) = m.report(prover: NodeKey([UInt8](repeating: 9, count: 32))!)
        #expect(report.counts.lossGood == 0)
        #expect(report.counts.score == 0)
    }

    @Test func setupPacketsAreNotCountedAsExpected() {
        var m = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        // Heavy loss during setup only.
        _ = feed(&m, from: -5000, until: 30_000, drop: { $0 < 250 && $0 % 2 == 0 })
        m.advance(toMs: m.endMs)
        #expect(m.samples.first?.lossPpm == 0)
        #expect(m.samples.allSatisfy { $0.lossPpm == 0 })
    }

    @Test func duplicatesAndReorderingAreNotLoss() {
        var m = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        let start = m.testStartMs
        var seqs: [UInt16] = []
        for base in stride(from: 0, to: 100, by: 4) { seqs += [UInt16(base + 1), UInt16(base), UInt16(base + 2), UInt16(base + 2), UInt16(base + 3)] }
        for (i, s) in seqs.enumerated() {
            m.received(RTPPacket(payloadType: 96, sequenceNumber: s, timestamp: UInt32(s) * 900, ssrc: 5, payload: [1, 2, 3]), atMs: start + UInt64(i) * 10)
        }
        m.advance(toMs: start + 2000)
        #expect(m.samples.first?.lossPpm == 0)
    }

    @Test func stoppedAndSilentProvers() {
        var stopped = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        _ = feed(&stopped, until: 11_000)
        stopped.advance(toMs: stopped.endMs)
        #expect(stopped.outcome == .stopped)
        let (report, _) = stopped.report(prover: NodeKey([UInt8](repeating: 9, count: 32))!)
        #expect(report.outcome == .stopped)
        #expect(report.counts.samples == 6)
        #expect(report.counts.lossGood == 6)
        #expect(report.counts.fractionalLossScore == 6.0 / 15)

        var silent = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        silent.advance(toMs: silent.endMs)
        #expect(silent.outcome == .noAnswer)
        let (none, _) = silent.report(prover: NodeKey([UInt8](repeating: 9, count: 32))!)
        #expect(none.counts.score == 0)
        #expect(none.samplesHash.isEmpty)

        // A challenger that gives up early: the intervals never closed are missing.
        var early = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        _ = feed(&early, until: 4_000)
        let (cut, series) = early.report(prover: NodeKey([UInt8](repeating: 9, count: 32))!)
        #expect(series.samples.count == 15)
        #expect(cut.outcome == .stopped)
    }

    @Test func rttIsTheIntervalsMedianOfTheChallengersOwnChecks() {
        var m = ChallengerMeasurement(schedule: schedule, epoch: epoch)
        let t = m.testStartMs
        for (i, rtt) in [5_000, 1_000, 90_000].enumerated() { m.roundTrip(us: UInt32(rtt), atMs: t + 100 + UInt64(i)) }
        m.roundTrip(us: 3, atMs: t - 10)  // before the test: ignored
        m.advance(toMs: t + 4000)
        #expect(m.samples.map(\.rttUs) == [5_000, 0])
        #expect(m.minRttUs == 1_000)
    }

    @Test func generatorHitsItsBitrateWithDetectableKeyframes() throws {
        var source = TestVideoSource(ssrc: 1234, bitrateKbps: 1000, startMs: 10_000, firstSequence: 65_500)
        var packets: [RTPPacket] = []
        for now in stride(from: UInt64(10_000), through: 20_000, by: 20) { packets += source.packets(upTo: now) }
        // 10 s of frames (301 frames at 30 fps, 0 to 10 s inclusive).
        let bytes = packets.reduce(0) { $0 + $1.payload.count }
        let kbps = Double(bytes) * 8 / 10 / 1000
        #expect(abs(kbps - 1000) < 30, "\(kbps) kbit/s")
        #expect(packets.allSatisfy { $0.payload.count <= 1100 && $0.ssrc == 1234 })
        for (a, b) in zip(packets, packets.dropFirst()) { #expect(b.sequenceNumber == a.sequenceNumber &+ 1) }
        let frameStarts = packets.filter { $0.payload[0] & 0x10 != 0 }
        #expect(frameStarts.count == 301)
        let keyframes = packets.filter { KeyframeDetector.isVP8KeyframeStart($0.payload[...]) }
        #expect(keyframes.count == 6, "one every 2 s: 0, 2, 4, 6, 8, 10 s")
        // The marker closes every frame.
        #expect(packets.filter(\.marker).count == 301)
        source.requestKeyframe()
        let next = source.packets(upTo: 20_040)
        #expect(KeyframeDetector.isVP8KeyframeStart(next[0].payload[...]))
    }

    @Test func locationPlausibility() {
        // 1 ms of RTT allows 100 km.
        #expect(!LocationCheck.isImplausible(minRttUs: 1_000, distanceKm: 99))
        #expect(LocationCheck.isImplausible(minRttUs: 1_000, distanceKm: 101))
        #expect(!LocationCheck.isImplausible(minRttUs: 0, distanceKm: 5000))
        #expect(!LocationCheck.isImplausible(minRttUs: 100, distanceKm: nil))
    }
}
