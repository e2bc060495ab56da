import HTTPTypes
import Hummingbird
import Identity
import QoS
import Registry

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the QoS endpoints need from a node (Specs/qos.md "HTTP").
public protocol QoSBackend: Sendable {
    var qosSchedule: QoSSchedule { get }
    func qosAggregate() -> QoSAggregate
    /// Stored bundles, of one epoch or all.
    func qosBundles(epoch: UInt64?) -> [SignedQoSBundle]
    /// Raw samples this node holds (its own reports').
    func qosSamples(hash: [UInt8]) -> SampleSeries?
    /// The API base URL of a node, from its registry record.
    func apiURL(of node: PeerID) -> String?
}

/// The `qos` object of a record: `score` and the components are null while unmeasured.
public struct QoSJSON: Codable, Sendable, Equatable {
    public var score: Double?
    public var bitrateScore: Double?
    public var fractionalLossScore: Double?
    public var latencyScore: Double?
    public var reports: Int
    public var epoch: UInt64?
    public var measured: Bool
    public var locationPlausible: Bool

    public init(_ q: NodeQoS) {
        score = q.score.map(QoSAPI.round)
        bitrateScore = q.bitrateScore.map(QoSAPI.round)
        fractionalLossScore = q.fractionalLossScore.map(QoSAPI.round)
        latencyScore = q.latencyScore.map(QoSAPI.round)
        reports = q.reports
        epoch = q.epoch
        measured = q.measured
        locationPlausible = q.locationPlausible
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(score, forKey: .score)
        try c.encode(bitrateScore, forKey: .bitrateScore)
        try c.encode(fractionalLossScore, forKey: .fractionalLossScore)
        try c.encode(latencyScore, forKey: .latencyScore)
        try c.encode(reports, forKey: .reports)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(measured, forKey: .measured)
        try c.encode(locationPlausible, forKey: .locationPlausible)
    }

    /// `"qos":{…}` bytes, to splice into cached record JSON.
    var field: [UInt8] {
        Array(#""qos":"#.utf8) + ((try? APIJSON.encode(self)) ?? Array("null".utf8))
    }
}

/// The whitepaper's `scoreSnapshot` (4.3.2.4.3).
struct ScoreSnapshotJSON: Encodable {
    var bitrateScore: Double
    var bitrateSnapshot: [Double]?
    var latencyScore: Double
    var latencySnapshot: [Double?]?
    var fractionalLossScore: Double
    var fractionalLossSnapshot: [Double]?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(bitrateScore, forKey: .bitrateScore)
        try c.encode(bitrateSnapshot, forKey: .bitrateSnapshot)
        try c.encode(latencyScore, forKey: .latencyScore)
        try c.encode(latencySnapshot, forKey: .latencySnapshot)
        try c.encode(fractionalLossScore, forKey: .fractionalLossScore)
        try c.encode(fractionalLossSnapshot, forKey: .fractionalLossSnapshot)
    }

    enum CodingKeys: String, CodingKey {
        case bitrateScore, bitrateSnapshot, latencyScore, latencySnapshot, fractionalLossScore, fractionalLossSnapshot
    }
}

struct QoSReportJSON: Encodable {
    var epoch: UInt64
    var challenger: String
    var prover: String
    var outcome: String
    var score: Double
    var counted: Bool
    var reason: String?
    var weight: Double?
    var intervals: Int
    var samples: Int
    var minRttMs: Double?
    var locationImplausible: Bool
    var samplesHash: String?
    var samplesUrl: String?
    var scoreSnapshot: ScoreSnapshotJSON
    var signature: String
    var bundle: String
}

struct SamplesJSON: Encodable {
    var hash: String
    var intervalMs: UInt32
    var bitrateKbps: [Double]
    var fractionLost: [Double]
    var rttMs: [Double?]
    var jitterMs: [Double]

    init(hash: [UInt8], _ s: SampleSeries) {
        self.hash = Hex.encode(hash)
        intervalMs = s.intervalMs
        bitrateKbps = s.samples.map { QoSAPI.round($0.bitrateKbps) }
        fractionLost = s.samples.map { QoSAPI.round($0.fractionLost) }
        rttMs = s.samples.map { $0.rttMs.map(QoSAPI.round) }
        jitterMs = s.samples.map { QoSAPI.round(Double($0.jitterUs) / 1000) }
    }
}

struct AssignmentsJSON: Encodable {
    struct Schedule: Encodable {
        var epochSeconds: UInt32
        var testSeconds: UInt32
        var sampleIntervalMs: UInt32
        var testStartMs: UInt64
        var testEndMs: UInt64
    }
    struct Plan: Encodable {
        var observedNodes: Int
        var networkSize: Int
        var expectedActive: Int
        var expectedChallengers: Double
        var tau: Double
        var activeProbability: Double
        var genesis: Bool
    }
    struct TicketJSON: Encodable {
        var node: String
        var proof: String
        var beta: String
        var active: Bool
        var weight: Double?
    }
    struct Pair: Encodable {
        var challenger: String
        var prover: String
        var draw: String
        var reported: Bool
        var counted: Bool
    }
    var epoch: UInt64
    var schedule: Schedule
    /// null when this node holds no ticket for the epoch.
    var plan: Plan?
    var tickets: [TicketJSON]
    var pairs: [Pair]

    enum CodingKeys: String, CodingKey { case epoch, schedule, plan, tickets, pairs }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(plan, forKey: .plan)
        try c.encode(tickets, forKey: .tickets)
        try c.encode(pairs, forKey: .pairs)
    }
}

public enum QoSAPI {
    static func round(_ x: Double) -> Double { (x * 1_000_000).rounded() / 1_000_000 }

    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/qos/reports", [.get]), ("/qos/assignments", [.get]), ("/qos/samples", [.get]),
    ]

    public static func add(to router: Router<BasicRequestContext>, backend: some QoSBackend) {
        router.get("/qos/reports") { request, _ in
            let params = try QueryParameters(request, allowed: ["node", "epoch"])
            guard let text = params["node"] else { throw APIError.badParameter("node", "required: the prover's PeerID") }
            guard let peer = try? PeerID(text), let node = NodeKey(peerID: peer) else {
                throw APIError.badParameter("node", "expected an Ed25519 PeerID (12D3KooW…), got '\(text.prefix(80))'")
            }
            let epoch = try params["epoch"].map { raw -> UInt64 in
                guard let e = UInt64(raw) else { throw APIError.badParameter("epoch", "expected an epoch number, got '\(raw.prefix(40))'") }
                return e
            }
            return try RegistryAPI.json(ReportsBody(node: text, reports: reports(on: node, epoch: epoch, backend: backend)))
        }
        router.get("/qos/assignments") { request, _ in
            let params = try QueryParameters(request, allowed: ["epoch"])
            guard let raw = params["epoch"] else { throw APIError.badParameter("epoch", "required: an epoch number (Specs/qos.md \"Epochs\")") }
            guard let epoch = UInt64(raw) else { throw APIError.badParameter("epoch", "expected an epoch number, got '\(raw.prefix(40))'") }
            return try RegistryAPI.json(assignments(epoch: epoch, backend: backend))
        }
        router.get("/qos/samples") { request, _ in
            let params = try QueryParameters(request, allowed: ["hash"])
            guard let raw = params["hash"], let hash = Hex.decode(raw), hash.count == 16 else {
                throw APIError.badParameter("hash", "expected the 32 hex digits of a report's samplesHash")
            }
            guard let series = backend.qosSamples(hash: hash) else {
                throw APIError(.notFound, code: "not_found", "this node holds no samples with hash \(raw); ask the report's challenger")
            }
            return try RegistryAPI.json(SamplesJSON(hash: hash, series))
        }
    }

    struct ReportsBody: Encodable {
        var node: String
        var reports: [QoSReportJSON]
    }

    static func reports(on node: NodeKey, epoch: UInt64?, backend: some QoSBackend) -> [QoSReportJSON] {
        let agg = backend.qosAggregate()
        var out: [QoSReportJSON] = []
        for b in backend.qosBundles(epoch: epoch) {
            for r in b.bundle.reports where r.prover == node {
                let status = agg.reportStatus[ReportRef(bundle: b.syncID, prover: node)]
                var counted = false, weight: Double?, reason: String?
                switch status {
                case .counted(let w)?: counted = true; weight = round(w)
                case .notCounted(let why)?: reason = why
                case nil: reason = "not_aggregated"
                }
                let series = r.samplesHash.isEmpty ? nil : backend.qosSamples(hash: r.samplesHash)
                let snapshot = ScoreSnapshotJSON(
                    bitrateScore: round(r.counts.bitrateScore), bitrateSnapshot: series?.samples.map { round($0.bitrateKbps) },
                    latencyScore: round(r.counts.latencyScore), latencySnapshot: series?.samples.map { $0.rttMs.map(round) },
                    fractionalLossScore: round(r.counts.fractionalLossScore), fractionalLossSnapshot: series?.samples.map { round($0.fractionLost) })
                let hash = r.samplesHash.isEmpty ? nil : Hex.encode(r.samplesHash)
                out.append(QoSReportJSON(
                    epoch: b.epoch, challenger: b.challenger.description, prover: node.description, outcome: r.outcome.rawValue,
                    score: round(r.counts.score), counted: counted, reason: reason, weight: weight, intervals: r.counts.intervals,
                    samples: r.counts.samples, minRttMs: r.minRttUs == 0 ? nil : round(Double(r.minRttUs) / 1000),
                    locationImplausible: r.locationImplausible, samplesHash: hash,
                    samplesUrl: hash.flatMap { h in backend.apiURL(of: b.challenger.peerID).map { $0 + "/qos/samples?hash=" + h } },
                    scoreSnapshot: snapshot, signature: Data(b.signature).base64EncodedString(), bundle: Data(b.encoded).base64EncodedString()))
            }
        }
        return out.sorted { $0.epoch != $1.epoch ? $0.epoch > $1.epoch : $0.challenger < $1.challenger }
    }

    static func assignments(epoch: UInt64, backend: some QoSBackend) -> AssignmentsJSON {
        let agg = backend.qosAggregate()
        let s = backend.qosSchedule
        let schedule = AssignmentsJSON.Schedule(epochSeconds: s.epochSeconds, testSeconds: s.testSeconds, sampleIntervalMs: s.sampleIntervalMs,
                                                testStartMs: s.testStartMs(epoch), testEndMs: s.testEndMs(epoch))
        guard let r = agg.epochs[epoch] else { return AssignmentsJSON(epoch: epoch, schedule: schedule, plan: nil, tickets: [], pairs: []) }
        let proofs = Dictionary(backend.qosBundles(epoch: epoch &- 1).map { ($0.challenger, $0.bundle.nextTicket) }, uniquingKeysWith: { a, _ in a })
        let tickets = r.tickets.keys.sorted().map { k in
            AssignmentsJSON.TicketJSON(node: k.description, proof: Hex.encode(proofs[k] ?? []), beta: Hex.encode(r.tickets[k]!),
                                       active: r.active.contains(k), weight: r.weights[k].map(round))
        }
        var reported: [NodeKey: Set<NodeKey>] = [:]
        var counted: [NodeKey: Set<NodeKey>] = [:]
        for b in backend.qosBundles(epoch: epoch) {
            for rep in b.bundle.reports {
                reported[b.challenger, default: []].insert(rep.prover)
                if agg.reportStatus[ReportRef(bundle: b.syncID, prover: rep.prover)]?.isCounted == true { counted[b.challenger, default: []].insert(rep.prover) }
            }
        }
        var pairs: [AssignmentsJSON.Pair] = []
        let active = r.active.sorted()
        for p in active {
            for c in active where c != p && r.plan.isAssigned(proverBeta: r.tickets[p]!, challenger: c) {
                pairs.append(AssignmentsJSON.Pair(
                    challenger: c.description, prover: p.description,
                    draw: String(Sortition.pairDraw(proverBeta: r.tickets[p]!, challenger: c)),
                    reported: reported[c]?.contains(p) ?? false, counted: counted[c]?.contains(p) ?? false))
            }
        }
        let plan = AssignmentsJSON.Plan(observedNodes: r.plan.observedNodes, networkSize: r.plan.networkSize, expectedActive: r.plan.expectedActive,
                                        expectedChallengers: r.plan.expectedChallengers, tau: round(r.plan.tau),
                                        activeProbability: round(r.plan.activeProbability), genesis: r.genesis)
        return AssignmentsJSON(epoch: epoch, schedule: schedule, plan: plan, tickets: tickets, pairs: pairs)
    }
}
