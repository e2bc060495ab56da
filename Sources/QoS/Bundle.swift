import Identity
import Registry
import SwiftProtobuf
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How a test ended (Specs/qos.proto `TestOutcome`).
public enum TestOutcome: String, Hashable, Sendable, CaseIterable {
    case completed, noAnswer = "no_answer", stopped, refused

    var wire: Drtc_Qos_V1_TestOutcome {
        switch self {
        case .completed: .completed
        case .noAnswer: .noAnswer
        case .stopped: .stopped
        case .refused: .refused
        }
    }

    init?(wire: Drtc_Qos_V1_TestOutcome) {
        switch wire {
        case .completed: self = .completed
        case .noAnswer: self = .noAnswer
        case .stopped: self = .stopped
        case .refused: self = .refused
        default: return nil
        }
    }
}

/// One challenger's report on one prover.
public struct QoSReport: Hashable, Sendable {
    public var prover: NodeKey
    public var outcome: TestOutcome
    public var counts: ScoreCounts
    public var minRttUs: UInt32
    public var locationImplausible: Bool
    /// 16 bytes; empty when no media arrived (nothing to keep).
    public var samplesHash: [UInt8]

    public init(prover: NodeKey, outcome: TestOutcome, counts: ScoreCounts, minRttUs: UInt32 = 0,
                locationImplausible: Bool = false, samplesHash: [UInt8] = []) {
        self.prover = prover
        self.outcome = outcome
        self.counts = counts
        self.minRttUs = minRttUs
        self.locationImplausible = locationImplausible
        self.samplesHash = samplesHash
    }

    /// The report of a test that produced no media at all (no answer, refused).
    public static func failed(_ prover: NodeKey, _ outcome: TestOutcome, intervals: Int) -> QoSReport {
        QoSReport(prover: prover, outcome: outcome, counts: ScoreCounts(intervals: intervals, samples: 0, bitrateGood: 0, lossGood: 0, latencyGood: 0))
    }

    var wire: Drtc_Qos_V1_QosReport {
        var w = Drtc_Qos_V1_QosReport()
        w.prover = Data(prover.bytes)
        w.outcome = outcome.wire
        w.intervals = UInt32(counts.intervals)
        w.samples = UInt32(counts.samples)
        w.bitrateGood = UInt32(counts.bitrateGood)
        w.lossGood = UInt32(counts.lossGood)
        w.latencyGood = UInt32(counts.latencyGood)
        w.minRttUs = minRttUs
        w.locationImplausible = locationImplausible
        w.samplesHash = Data(samplesHash)
        return w
    }

    /// Field checks: a report must be consistent with its own outcome and with the schedule.
    init(wire w: Drtc_Qos_V1_QosReport, intervals: Int) throws(QoSRejection) {
        guard let prover = NodeKey(Array(w.prover)) else { throw .malformed("report: prover must be a 32-byte key") }
        guard let outcome = TestOutcome(wire: w.outcome) else { throw .badReport("outcome missing or unknown") }
        let c = ScoreCounts(intervals: Int(w.intervals), samples: Int(w.samples), bitrateGood: Int(w.bitrateGood),
                            lossGood: Int(w.lossGood), latencyGood: Int(w.latencyGood))
        guard c.intervals == intervals else {
            throw .badReport("\(c.intervals) intervals, but the bundle's schedule has \(intervals)")
        }
        guard c.samples <= c.intervals else { throw .badReport("more samples than intervals") }
        // The first interval with media is never good for bitrate (no EWMA yet) nor for latency.
        let bound = max(0, c.samples - 1)
        guard c.lossGood <= c.samples, c.bitrateGood <= bound, c.latencyGood <= bound else {
            throw .badReport("good counts exceed what \(c.samples) samples allow")
        }
        switch outcome {
        case .noAnswer, .refused:
            guard c.samples == 0 else { throw .badReport("\(outcome.rawValue) with samples") }
        case .stopped:
            guard c.samples >= 1, c.samples < c.intervals else { throw .badReport("stopped needs 1..intervals-1 samples") }
        case .completed:
            guard c.samples >= 1 else { throw .badReport("completed without samples") }
        }
        guard w.samplesHash.count == 16 || (w.samplesHash.isEmpty && c.samples == 0) else {
            throw .badReport("samples_hash must be 16 bytes")
        }
        self.init(prover: prover, outcome: outcome, counts: c, minRttUs: w.minRttUs,
                  locationImplausible: w.locationImplausible, samplesHash: Array(w.samplesHash))
    }
}

/// A challenger's bundle for one epoch, before signing.
public struct QoSBundle: Hashable, Sendable {
    public var epoch: UInt64
    public var challenger: NodeKey
    public var schedule: QoSSchedule
    /// The ECVRF proof of the challenger's ticket for `epoch + 1` (empty: not active then).
    public var nextTicket: [UInt8]
    public var reports: [QoSReport]

    public init(epoch: UInt64, challenger: NodeKey, schedule: QoSSchedule, nextTicket: [UInt8] = [], reports: [QoSReport] = []) {
        self.epoch = epoch
        self.challenger = challenger
        self.schedule = schedule
        self.nextTicket = nextTicket
        self.reports = reports.sorted { $0.prover < $1.prover }
    }

    var wire: Drtc_Qos_V1_QosBundle {
        var w = Drtc_Qos_V1_QosBundle()
        w.epoch = epoch
        w.challenger = Data(challenger.bytes)
        w.epochSeconds = schedule.epochSeconds
        w.testSeconds = schedule.testSeconds
        w.sampleIntervalMs = schedule.sampleIntervalMs
        w.nextTicket = Data(nextTicket)
        w.reports = reports.map(\.wire)
        return w
    }

    /// Signs with the challenger's key (which must be `challenger`).
    public func signed(with key: Ed25519KeyPair) -> SignedQoSBundle {
        precondition(key.publicKeyBytes == challenger.bytes, "a bundle is signed by its challenger")
        let body = (try? Array(wire.serializedBytes() as [UInt8])) ?? []
        let signed = SignedQoSBundle(bundle: self, body: body, signature: key.sign(SignedQoSBundle.signingPrefix + body))
        // The signer knows its own ticket is valid; saves the proof check for local use.
        if !nextTicket.isEmpty { signed.ticket.withLock { $0 = .some(Ticket.verify(proof: nextTicket, node: challenger, epoch: epoch + 1)) } }
        return signed
    }
}

/// Why a bundle was refused (`drtc_qos_reports_rejected_total{reason}`, Specs/qos.md
/// "Validation").
public enum QoSRejection: Error, Hashable, Sendable, CustomStringConvertible {
    case tooLarge
    case malformed(String)
    case badSignature
    case badSchedule(String)
    case badReport(String)
    case selfReport
    /// Outside the epoch's gossip window (gossip only: sync carries old bundles).
    case wrongEpoch
    /// Reports published before their test could have ended (gossip only).
    case premature
    /// The prover's ticket is known here and does not assign this challenger (gossip only).
    case unassignedPair

    public var reason: String {
        switch self {
        case .tooLarge: "too_large"
        case .malformed: "malformed"
        case .badSignature: "bad_signature"
        case .badSchedule: "bad_schedule"
        case .badReport: "bad_report"
        case .selfReport: "self_report"
        case .wrongEpoch: "wrong_epoch"
        case .premature: "premature"
        case .unassignedPair: "unassigned_pair"
        }
    }

    public var description: String {
        switch self {
        case .tooLarge: "bundle larger than \(SignedQoSBundle.maxEncodedSize) bytes"
        case .malformed(let why): "malformed bundle: \(why)"
        case .badSignature: "signature does not verify against the challenger key"
        case .badSchedule(let why): "bad schedule: \(why)"
        case .badReport(let why): "inconsistent report: \(why)"
        case .selfReport: "a node cannot report on itself"
        case .wrongEpoch: "bundle outside its epoch's gossip window"
        case .premature: "reports published before the epoch's test ended"
        case .unassignedPair: "the prover's ticket does not assign this challenger"
        }
    }
}

/// A bundle with the exact bytes its challenger signed. Immutable and shared.
public final class SignedQoSBundle: Sendable, Hashable {
    public static let signingPrefix = Array("drtc-qos-bundle:".utf8)
    public static let maxEncodedSize = 16 * 1024

    public let bundle: QoSBundle
    public let body: [UInt8]
    public let signature: [UInt8]
    /// Item ID in set reconciliation: the first 16 bytes of SHA-256 over the encoding.
    public let syncID: SyncID
    /// The checked ticket, once checked (nil: not yet).
    let ticket = Mutex<[UInt8]??>(nil)

    init(bundle: QoSBundle, body: [UInt8], signature: [UInt8]) {
        self.bundle = bundle
        self.body = body
        self.signature = signature
        self.syncID = SyncID(digestOf: Self.encode(body: body, signature: signature))
    }

    /// β of the next-epoch ticket: nil when the bundle reveals none or its proof does not
    /// verify (Specs/qos.md "Validation": the ticket is checked by the aggregation, once per
    /// bundle, not on the gossip path; a bad one only costs its own challenger its activity).
    public var nextBeta: [UInt8]? {
        if let known = ticket.withLock({ $0 }) { return known }
        let beta = bundle.nextTicket.isEmpty ? nil : Ticket.verify(proof: bundle.nextTicket, node: challenger, epoch: epoch + 1)
        ticket.withLock { $0 = .some(beta) }
        return beta
    }

    public var epoch: UInt64 { bundle.epoch }
    public var challenger: NodeKey { bundle.challenger }

    /// The `SignedQosBundle` protobuf.
    public var encoded: [UInt8] { Self.encode(body: body, signature: signature) }

    static func encode(body: [UInt8], signature: [UInt8]) -> [UInt8] { SignedEnvelope.encode(body: body, signature: signature) }

    /// Decodes and verifies a `SignedQosBundle`: every check that depends on the bytes alone,
    /// so that every replica accepts the same bundles into its set (Specs/qos.md "Validation").
    /// The ticket's ECVRF proof (≈ 7 Ed25519 verifications) is checked later, by `nextBeta`.
    public static func verify(encoded bytes: [UInt8]) throws(QoSRejection) -> SignedQoSBundle {
        guard bytes.count <= maxEncodedSize else { throw .tooLarge }
        let envelope: Drtc_Qos_V1_SignedQosBundle
        do { envelope = try Drtc_Qos_V1_SignedQosBundle(serializedBytes: bytes) } catch {
            throw .malformed("not a SignedQosBundle protobuf")
        }
        let body = Array(envelope.body), signature = Array(envelope.signature)
        guard signature.count == Ed25519.signatureLength else { throw .malformed("signature must be 64 bytes") }
        let w: Drtc_Qos_V1_QosBundle
        do { w = try Drtc_Qos_V1_QosBundle(serializedBytes: body) } catch { throw .malformed("body is not a QosBundle protobuf") }
        guard let challenger = NodeKey(Array(w.challenger)) else { throw .malformed("challenger must be a 32-byte key") }
        guard Ed25519.verify(signature: signature, message: signingPrefix + body, publicKey: challenger.bytes) else { throw .badSignature }
        let schedule = QoSSchedule(epochSeconds: w.epochSeconds, testSeconds: w.testSeconds, sampleIntervalMs: w.sampleIntervalMs)
        if let problem = schedule.problem { throw .badSchedule(problem) }
        guard w.epoch < UInt64.max / 2 else { throw .malformed("epoch out of range") }
        guard w.reports.count <= QoSParameters().maxReportsPerBundle else {
            throw .malformed("more than \(QoSParameters().maxReportsPerBundle) reports")
        }
        var reports: [QoSReport] = []
        reports.reserveCapacity(w.reports.count)
        for r in w.reports {
            let report = try QoSReport(wire: r, intervals: schedule.intervals)
            guard report.prover != challenger else { throw .selfReport }
            if let last = reports.last, !(last.prover < report.prover) { throw .malformed("reports not strictly ascending by prover") }
            reports.append(report)
        }
        guard w.nextTicket.isEmpty || w.nextTicket.count == ECVRF.proofLength else {
            throw .malformed("next_ticket must be empty or an \(ECVRF.proofLength)-byte ECVRF proof")
        }
        let bundle = QoSBundle(epoch: w.epoch, challenger: challenger, schedule: schedule, nextTicket: Array(w.nextTicket), reports: reports)
        return SignedQoSBundle(bundle: bundle, body: body, signature: signature)
    }

    public static func == (a: SignedQoSBundle, b: SignedQoSBundle) -> Bool { a.syncID == b.syncID }
    public func hash(into hasher: inout Hasher) { hasher.combine(syncID) }
}
