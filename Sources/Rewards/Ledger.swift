import Identity
import Registry

/// What the ledger of one epoch is computed from: plain values, each filled by an evidence
/// source other peers can check (Specs/rewards.md "Inputs"). Order does not matter: the ledger
/// sorts everything itself.
public struct RewardInputs: Sendable {
    public var epoch: UInt64
    public var nodes: [RewardNodeInput]
    /// Where participants were served in the epoch: each point a position and a number of
    /// participants (the location score's ρ_I).
    public var demand: [DemandPoint]

    public init(epoch: UInt64, nodes: [RewardNodeInput], demand: [DemandPoint]) {
        self.epoch = epoch
        self.nodes = nodes
        self.demand = demand
    }
}

/// One node's evidence for one epoch.
public struct RewardNodeInput: Hashable, Sendable {
    public var node: PeerID
    /// The node's position (its registry record's); nil: no location or coverage score.
    public var position: GeoPoint?
    /// u and l of `A = u/l` over the node's lifetime up to the epoch's end.
    public var uptimeSeconds: Double
    public var lifetimeSeconds: Double
    /// V in the epoch, nil when QoS did not measure the node.
    public var quality: Double?
    /// b summed over the node's verified session receipts of the epoch, in MB.
    public var dataSuppliedMB: Double
    /// s: the node's data supplied over its lifetime up to the epoch's end, in MB (history score).
    public var lifetimeDataSuppliedMB: Double
    /// Verified session receipts of the epoch.
    public var sessions: Int

    public init(node: PeerID, position: GeoPoint?, uptimeSeconds: Double, lifetimeSeconds: Double, quality: Double?,
                dataSuppliedMB: Double = 0, lifetimeDataSuppliedMB: Double = 0, sessions: Int = 0) {
        self.node = node
        self.position = position
        self.uptimeSeconds = uptimeSeconds
        self.lifetimeSeconds = lifetimeSeconds
        self.quality = quality
        self.dataSuppliedMB = dataSuppliedMB
        self.lifetimeDataSuppliedMB = lifetimeDataSuppliedMB
        self.sessions = sessions
    }
}

public struct DemandPoint: Hashable, Sendable {
    public var position: GeoPoint
    public var participants: Double
    public init(position: GeoPoint, participants: Double) {
        self.position = position
        self.participants = participants
    }
}

/// One node's line of the ledger. Values are rounded as the ledger publishes them (ratios to
/// 6 decimals, megabytes to 3), so the JSON, the CSV and the digest say the same thing.
public struct RewardRow: Hashable, Sendable {
    public var node: String
    /// A, H, L, C.
    public var availability: Double
    public var history: Double
    public var location: Double
    public var coverage: Double
    /// V as measured, nil when unmeasured (the formula then used `unmeasuredQuality`).
    public var quality: Double?
    /// r.
    public var unitReward: Double
    /// b, and R = r·b.
    public var dataSuppliedMB: Double
    public var reward: Double
    public var sessions: Int
    public var uptimeSeconds: Double
    public var lifetimeSeconds: Double
    /// Participants served within the location radius, and media nodes within the coverage
    /// radius (the node included): the densities behind L and C. 0 without a position.
    public var demandNearby: Double
    public var nodesNearby: Int
}

/// The rewards of one epoch: a pure function of `RewardInputs` and `RewardParameters`, so two
/// peers holding the same evidence publish byte-identical ledgers (`csv`, `digest`).
public struct RewardLedger: Sendable {
    public let epoch: UInt64
    public let parameters: RewardParameters
    /// Sorted by node ID text.
    public let rows: [RewardRow]

    public static let ratioDecimals = 6
    public static let megabyteDecimals = 3
    public static let secondDecimals = 3

    public init(_ inputs: RewardInputs, parameters p: RewardParameters) {
        epoch = inputs.epoch
        parameters = p
        // One line per node: duplicates keep their first occurrence in ID order, with the
        // larger evidence first, so a caller's order never decides.
        var byID: [String: RewardNodeInput] = [:]
        for n in inputs.nodes {
            let id = n.node.description
            if let held = byID[id], !Self.prefers(n, over: held) { continue }
            byID[id] = n
        }
        // PeerID texts are base58 (ASCII), for which String order is byte order.
        let ids = byID.keys.sorted()
        let nodes = ids.map { byID[$0]! }

        let demandPoints = inputs.demand
            .filter { $0.position.isValid && $0.participants.isFinite && $0.participants > 0 }
            .sorted { ($0.position.latitude, $0.position.longitude, $0.participants) < ($1.position.latitude, $1.position.longitude, $1.participants) }
        let demand = Neighbourhood(radiusKm: p.locationRadiusKm, points: demandPoints.map { ($0.position, $0.participants) })
        let placed = nodes.compactMap { n in n.position.flatMap { $0.isValid ? ($0, 1.0) : nil } }
        let density = Neighbourhood(radiusKm: p.coverageRadiusKm, points: placed)

        var demandNear = [Double](repeating: 0, count: nodes.count)
        var nodesNear = [Int](repeating: 0, count: nodes.count)
        for (i, n) in nodes.enumerated() {
            guard let geo = n.position, geo.isValid else { continue }
            demandNear[i] = demand.sum(around: geo).weight
            nodesNear[i] = density.sum(around: geo).count
        }
        // L ∝ ρ_I, normalised by the busiest neighbourhood; C ∝ 1/ρ_M: 1 for a node alone in
        // its radius, 1/k when k nodes share it.
        let maxDemand = demandNear.max() ?? 0
        let history = RewardFunction.history(lifetimeSupplied: nodes.map { max(0, $0.lifetimeDataSuppliedMB) }, hMin: p.hMin)

        rows = nodes.enumerated().map { i, n in
            let a = RewardFunction.availability(uptimeSeconds: n.uptimeSeconds, lifetimeSeconds: n.lifetimeSeconds)
            let l = maxDemand > 0 ? demandNear[i] / maxDemand : 0
            let c = nodesNear[i] > 0 ? 1 / Double(nodesNear[i]) : 0
            let v = n.quality.map(RewardFunction.clamp)
            // The formula takes the rounded scores the ledger publishes, so anyone can recompute
            // r from a published row.
            let (ra, rh, rl, rc) = (Self.ratio(a), Self.ratio(history[i]), Self.ratio(l), Self.ratio(c))
            let rv = v.map(Self.ratio)
            let r = Self.ratio(RewardFunction.unitReward(availability: ra, history: rh, location: rl, coverage: rc,
                                                         quality: rv ?? p.unmeasuredQuality, parameters: p))
            let b = Self.megabytes(max(0, n.dataSuppliedMB))
            return RewardRow(
                node: ids[i], availability: ra, history: rh, location: rl, coverage: rc, quality: rv, unitReward: r,
                dataSuppliedMB: b, reward: Self.ratio(RewardFunction.sessionReward(unitReward: r, dataSuppliedMB: b)),
                sessions: max(0, n.sessions), uptimeSeconds: Self.seconds(n.uptimeSeconds), lifetimeSeconds: Self.seconds(n.lifetimeSeconds),
                demandNearby: Self.ratio(demandNear[i]), nodesNearby: nodesNear[i])
        }
    }

    /// Between two inputs for the same node: the one with more evidence (longer lifetime, then
    /// more data), so duplicates resolve the same way on every replica.
    static func prefers(_ a: RewardNodeInput, over b: RewardNodeInput) -> Bool {
        (a.lifetimeSeconds, a.uptimeSeconds, a.lifetimeDataSuppliedMB, a.dataSuppliedMB)
            > (b.lifetimeSeconds, b.uptimeSeconds, b.lifetimeDataSuppliedMB, b.dataSuppliedMB)
    }

    public func row(for node: String) -> RewardRow? {
        var lo = 0, hi = rows.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if rows[mid].node < node { lo = mid + 1 } else { hi = mid }
        }
        return lo < rows.count && rows[lo].node == node ? rows[lo] : nil
    }

    public var totalReward: Double { Self.ratio(rows.reduce(0) { $0 + $1.reward }) }

    // MARK: the canonical form

    public static let csvHeader = "epoch,nodeId,availability,history,location,coverage,quality,qualityMeasured,unitReward,dataSuppliedMB,reward,sessions,uptimeSeconds,lifetimeSeconds,demandNearby,nodesNearby"

    /// The ledger as CSV (RFC 4180; `\n` line ends, fixed decimals): its canonical bytes.
    /// An unmeasured node's `quality` is empty and `qualityMeasured` is `false`.
    public var csv: String {
        var out = Self.csvHeader + "\n"
        out.reserveCapacity(rows.count * 160 + 200)
        let e = String(epoch)
        for r in rows {
            let fields: [String] = [
                e, r.node, Self.fixed(r.availability, Self.ratioDecimals), Self.fixed(r.history, Self.ratioDecimals),
                Self.fixed(r.location, Self.ratioDecimals), Self.fixed(r.coverage, Self.ratioDecimals),
                r.quality.map { Self.fixed($0, Self.ratioDecimals) } ?? "", r.quality == nil ? "false" : "true",
                Self.fixed(r.unitReward, Self.ratioDecimals), Self.fixed(r.dataSuppliedMB, Self.megabyteDecimals),
                Self.fixed(r.reward, Self.ratioDecimals), String(r.sessions), Self.fixed(r.uptimeSeconds, Self.secondDecimals),
                Self.fixed(r.lifetimeSeconds, Self.secondDecimals), Self.fixed(r.demandNearby, Self.ratioDecimals), String(r.nodesNearby),
            ]
            out += fields.joined(separator: ",")
            out += "\n"
        }
        return out
    }

    /// SHA-256 of `csv`, lower-case hex: equal digests, equal ledgers.
    public var digest: String { Hex.encode(SHA256.hash(Array(csv.utf8))) }

    // MARK: rounding

    static func ratio(_ x: Double) -> Double { round(x, ratioDecimals) }
    static func megabytes(_ x: Double) -> Double { round(x, megabyteDecimals) }
    static func seconds(_ x: Double) -> Double { round(max(0, x), secondDecimals) }

    static func round(_ x: Double, _ decimals: Int) -> Double {
        guard x.isFinite else { return 0 }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        return (x * scale).rounded() / scale
    }

    /// `x` with exactly `decimals` decimals, from its integer count of units (no locale, no
    /// exponent): `fixed(0.5, 6)` is `0.500000`.
    public static func fixed(_ x: Double, _ decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (x * scale).rounded()
        guard scaled.isFinite, abs(scaled) < 9e18 else { return "0" }
        let units = Int64(scaled)
        let magnitude = units.magnitude
        let unit = UInt64(scale)
        var fraction = String(magnitude % unit)
        fraction = String(repeating: "0", count: max(0, decimals - fraction.count)) + fraction
        return (units < 0 ? "-" : "") + String(magnitude / unit) + (decimals > 0 ? "." + fraction : "")
    }
}
