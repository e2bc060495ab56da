/// `report.html`: one self-contained page (inline CSS and SVG, no scripts, no network) with the
/// figures of `report.json`, the run's wall time and memory, and its charts.
public enum ReportHTML {
    public static func render(_ r: SimReport, run: RunInfo?) -> String {
        var rows: [(String, String)] = [
            ("scenario", r.scenario), ("peers", "\(r.peers)"), ("seed", "\(r.seed)"),
            ("virtual duration", "\(fmt(r.durationSeconds)) s (+ \(fmt(r.warmupSeconds)) s warm-up)"),
            ("links", r.link.regionLatencyMs != nil ? "region matrix ± \(fmt(r.link.jitterMs)) ms, loss \(fmt(r.link.loss))"
                : "\(fmt(r.link.latencyMs)) ms ± \(fmt(r.link.jitterMs)) ms, loss \(fmt(r.link.loss))"),
            ("record updates judged", "\(r.updates)"),
            ("delivery ratio", fmt(r.deliveryRatio, 6)),
            ("convergence p50 / p99 / p99.99 / max", "\(fmt(r.convergence.p50, 3)) / \(fmt(r.convergence.p99, 3)) / \(fmt(r.convergence.p9999, 3)) / \(fmt(r.convergence.max, 3)) s"),
            ("duplicates per message (mean / p99)", "\(fmt(r.duplicates.mean, 2)) / \(fmt(r.duplicates.p99, 2))"),
            ("bytes per peer per second, sent (mean / p99)", "\(fmt(r.bytesPerPeerPerSecond.mean, 0)) / \(fmt(r.bytesPerPeerPerSecond.p99, 0))"),
            ("table agreement (final / min / mean)", "\(fmt(r.finalAgreement, 4)) / \(fmt(r.minAgreement, 4)) / \(fmt(r.meanAgreement, 4))"),
            ("events processed", "\(r.events)"),
        ]
        if let run {
            rows.append(("wall time", "\(fmt(run.wallSeconds, 1)) s"))
            rows.append(("peak memory (RSS)", "\(run.peakRSSBytes >> 20) MiB"))
        }
        for (k, v) in r.outcome { rows.append((k, fmt(v, 4))) }
        var qosCharts: [String] = []
        if let q = r.qos {
            rows += [
                ("QoS epoch / test", "\(q.epochSeconds) s / \(q.testSeconds) s (production: \(fmt(q.productionEpochSeconds, 0)) s)"),
                ("QoS: active provers with ≥ 3 counted reports (mean / min over epochs)", "\(fmt(q.measuredShareOfActiveMean, 4)) / \(fmt(q.measuredShareOfActiveMin, 4))"),
                ("QoS: peers measured at least once", fmt(q.measuredAtLeastOnceShare, 4)),
                ("QoS: bundle delivery ratio (gossip)", fmt(q.deliveryRatio, 6)),
                ("QoS gossip sent per peer, this run (mean / p99)", "\(fmt(q.bytesPerPeerPerSecond.mean, 0)) / \(fmt(q.bytesPerPeerPerSecond.p99, 0)) B/s"),
                ("QoS gossip sent per peer at the production epoch (mean / p99)", "\(fmt(q.bytesPerPeerPerSecondAtProductionEpoch.mean, 0)) / \(fmt(q.bytesPerPeerPerSecondAtProductionEpoch.p99, 0)) B/s"),
                ("QoS: colluders / degraded honest / measured nodes", "\(q.colluders) / \(q.degraded) / \(q.measuredNodes)"),
                ("QoS score error, honest nodes (mean / p99 / share > 0.25)", "\(fmt(q.honestMeanAbsError, 4)) / \(fmt(q.honestP99AbsError, 4)) / \(fmt(q.honestWrongShare, 4))"),
                ("QoS: colluders' mean score / share above 0.5", "\(fmt(q.colluderMeanScore, 4)) / \(fmt(q.colluderInflatedShare, 4))"),
                ("QoS: degraded honest nodes scored below 0.3", fmt(q.degradedDetectedShare, 4)),
            ]
            qosCharts.append(chart(id: "chart-qos-coverage", title: "QoS: share of active provers measured (≥ 3 counted reports), by epoch",
                                   points: q.epochs.map { (Double($0.epoch), $0.measuredShareOfActive) }, xLabel: "epoch", yLabel: "share", yMax: 1))
        }
        if let rw = r.rewards {
            rows += [
                ("rewards: epoch, evidence", "\(rw.epoch) (\(rw.epochSeconds) s), V and A from \(rw.evidence == "qos" ? "the run's QoS aggregate" : "a seeded population and the run's uptime")"),
                ("rewards: nodes / measured / with sessions", "\(rw.nodes) / \(rw.measuredNodes) / \(rw.nodesWithSessions)"),
                ("rewards: synthetic sessions / participants / data supplied", "\(rw.sessions) / \(fmt(rw.participants, 0)) / \(fmt(rw.dataSuppliedMB, 0)) MB"),
                ("rewards: R per node (mean / p50 / p99 / max), total", "\(fmt(rw.reward.mean)) / \(fmt(rw.reward.p50)) / \(fmt(rw.reward.p99)) / \(fmt(rw.reward.max)), \(fmt(rw.totalReward, 0))"),
                ("rewards: unit reward r (mean / p50 / max), mean A", "\(fmt(rw.unitReward.mean, 4)) / \(fmt(rw.unitReward.p50, 4)) / \(fmt(rw.unitReward.max, 4)), \(fmt(rw.availabilityMean, 4))"),
                ("rewards: mean R by V (fifths)", rw.byQuality.map { "\(fmt($0.lo, 1))–\(fmt($0.hi, 1)): \(fmt($0.meanReward))" }.joined(separator: ", ")),
            ]
            qosCharts.append(histogram(id: "chart-rewards-histogram", title: "Rewards: distribution of R over the \(rw.nodes - rw.zeroRewardNodes) nodes paid (\(rw.zeroRewardNodes) more earned 0)",
                                       bins: rw.histogram.map { ($0.lo, $0.hi, $0.nodes) }, xLabel: "reward R (r × MB supplied)", yLabel: "nodes"))
            qosCharts.append(scatter(id: "chart-rewards-scatter", title: "Rewards: R against V (measured nodes)",
                                     points: rw.scatter.map { ($0.v, $0.reward) }, xMax: 1, xLabel: "QoS score V", yLabel: "reward R"))
        }
        let table = rows.map { "<tr><th>\(escape($0.0))</th><td>\(escape($0.1))</td></tr>" }.joined(separator: "\n")
        let bandwidth = r.bandwidthSorted.enumerated().map { (Double($0.offset) / Double(max(1, r.bandwidthSorted.count - 1)), $0.element / 1000) }
        let charts = [
            chart(id: "chart-convergence", title: "Convergence: share of peers holding an update, by time since publication",
                  points: r.convergenceCurve.map { ($0.t, $0.share) }, xLabel: "seconds since publication", yLabel: "share of peers", yMax: 1),
            chart(id: "chart-latency-cdf", title: "Delivery latency CDF (update live on a peer)",
                  points: r.latencyCDF.map { ($0.t, $0.share) }, xLabel: "seconds", yLabel: "cumulative share", yMax: 1),
            chart(id: "chart-bandwidth", title: "Bandwidth per peer (sent), sorted",
                  points: bandwidth, xLabel: "peers, by rank (0 = lowest, 1 = highest)", yLabel: "kB/s", yMax: nil),
            chart(id: "chart-agreement", title: "Table agreement over time (settled tables, majority fingerprint)",
                  points: r.agreementSeries.map { ($0.t, $0.share) }, xLabel: "virtual seconds", yLabel: "share of peers", yMax: 1),
        ].joined(separator: "\n") + qosCharts.joined(separator: "\n")
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>drtc sim — \(escape(r.scenario)), \(r.peers) peers, seed \(r.seed)</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2733; background: #ffffff; }
            h1 { font-size: 20px; margin: 0 0 12px; }
            table { border-collapse: collapse; margin-bottom: 20px; }
            th { text-align: left; font-weight: 500; padding: 3px 16px 3px 0; color: #4a5866; }
            td { padding: 3px 0; font-variant-numeric: tabular-nums; }
            .charts { display: grid; grid-template-columns: repeat(2, 560px); gap: 20px; }
            figure { margin: 0; }
            figcaption { font-weight: 600; margin-bottom: 4px; }
            svg.chart { background: #f7f9fb; border: 1px solid #d8dee4; }
            svg .grid { stroke: #dde3e9; stroke-width: 1; }
            svg .axis { stroke: #5b6875; stroke-width: 1; }
            svg .series { fill: none; stroke: #1f6feb; stroke-width: 2.5; }
            svg .area { fill: #1f6feb; fill-opacity: 0.12; stroke: none; }
            svg .bar { fill: #1f6feb; fill-opacity: 0.75; }
            svg .dot { fill: #1f6feb; fill-opacity: 0.35; }
            svg text { font-size: 11px; fill: #4a5866; }
            </style></head><body>
            <h1>drtc sim: \(escape(r.scenario)), \(r.peers) peers, seed \(r.seed)</h1>
            <table>
            \(table)
            </table>
            <div class="charts">
            \(charts)
            </div>
            </body></html>

            """
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    static func fmt(_ v: Double, _ decimals: Int = 2) -> String {
        guard v.isFinite else { return "∞" }
        if v < 0 { return v == -1 ? "never" : "-" + fmt(-v, decimals) }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let n = Int((v * scale).rounded())
        let whole = n / Int(scale)
        guard decimals > 0 else { return String(whole) }
        var frac = String(n % Int(scale))
        frac = String(repeating: "0", count: decimals - frac.count) + frac
        return "\(whole).\(frac)"
    }

    /// A line chart with axes, grid and tick labels.
    static func chart(id: String, title: String, points: [(Double, Double)], xLabel: String, yLabel: String, yMax: Double?) -> String {
        let xMax = max(points.map(\.0).max() ?? 1, 1e-9)
        let yTop = yMax ?? max((points.map(\.1).max() ?? 1) * 1.1, 1e-9)
        return frame(id: id, title: title, xMax: xMax, yTop: yTop, xLabel: xLabel, yLabel: yLabel) { x, y, base in
            guard !points.isEmpty else { return "" }
            let line = points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f1(x($0.element.0))),\(f1(y($0.element.1)))" }.joined(separator: " ")
            return "<path class=\"area\" d=\"\(line) L\(f1(x(points.last!.0))),\(f1(base)) L\(f1(x(points[0].0))),\(f1(base)) Z\"/>"
                + "<path class=\"series\" d=\"\(line)\"/>"
        }
    }

    /// A histogram: one bar per bin, from its lower to its upper edge.
    static func histogram(id: String, title: String, bins: [(lo: Double, hi: Double, count: Int)], xLabel: String, yLabel: String) -> String {
        let xMax = max(bins.map(\.hi).max() ?? 1, 1e-9)
        // A multiple of 5, so that the six ticks are whole numbers of nodes.
        let yTop = max(5, (Double(bins.map(\.count).max() ?? 1) * 1.1 / 5).rounded(.up) * 5)
        return frame(id: id, title: title, xMax: xMax, yTop: yTop, xLabel: xLabel, yLabel: yLabel) { x, y, base in
            bins.map { b in
                let top = y(Double(b.count))
                return "<rect class=\"bar\" x=\"\(f1(x(b.lo) + 0.5))\" y=\"\(f1(top))\" width=\"\(f1(max(0.5, x(b.hi) - x(b.lo) - 1)))\" height=\"\(f1(base - top))\"/>"
            }.joined()
        }
    }

    /// A scatter plot: one dot per point.
    static func scatter(id: String, title: String, points: [(Double, Double)], xMax: Double, xLabel: String, yLabel: String) -> String {
        let yTop = max((points.map(\.1).max() ?? 1) * 1.1, 1e-9)
        return frame(id: id, title: title, xMax: xMax, yTop: yTop, xLabel: xLabel, yLabel: yLabel) { x, y, _ in
            points.map { "<circle class=\"dot\" cx=\"\(f1(x($0.0)))\" cy=\"\(f1(y($0.1)))\" r=\"2\"/>" }.joined()
        }
    }

    /// The frame every chart shares (grid, tick labels, axes, axis labels) around its marks;
    /// `marks` gets the x and y mappings and the y of the x axis.
    static func frame(id: String, title: String, xMax: Double, yTop: Double, xLabel: String, yLabel: String,
                      marks: (_ x: (Double) -> Double, _ y: (Double) -> Double, _ base: Double) -> String) -> String {
        let w = 560.0, h = 320.0, left = 56.0, right = 16.0, top = 14.0, bottom = 44.0
        let pw = w - left - right, ph = h - top - bottom
        func x(_ v: Double) -> Double { left + v / xMax * pw }
        func y(_ v: Double) -> Double { top + ph - min(max(v / yTop, 0), 1) * ph }
        var svg = "<figure><figcaption>\(escape(title))</figcaption>"
        svg += "<svg id=\"\(id)\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\">"
        for i in 0...5 {
            let fy = Double(i) / 5
            let gy = top + ph - fy * ph
            svg += "<line class=\"grid\" x1=\"\(f1(left))\" y1=\"\(f1(gy))\" x2=\"\(f1(left + pw))\" y2=\"\(f1(gy))\"/>"
            svg += "<text x=\"\(f1(left - 6))\" y=\"\(f1(gy + 4))\" text-anchor=\"end\">\(tick(fy * yTop))</text>"
            let gx = left + fy * pw
            svg += "<line class=\"grid\" x1=\"\(f1(gx))\" y1=\"\(f1(top))\" x2=\"\(f1(gx))\" y2=\"\(f1(top + ph))\"/>"
            svg += "<text x=\"\(f1(gx))\" y=\"\(f1(top + ph + 16))\" text-anchor=\"middle\">\(tick(fy * xMax))</text>"
        }
        svg += "<line class=\"axis\" x1=\"\(f1(left))\" y1=\"\(f1(top + ph))\" x2=\"\(f1(left + pw))\" y2=\"\(f1(top + ph))\"/>"
        svg += "<line class=\"axis\" x1=\"\(f1(left))\" y1=\"\(f1(top))\" x2=\"\(f1(left))\" y2=\"\(f1(top + ph))\"/>"
        svg += marks(x, y, top + ph)
        svg += "<text x=\"\(f1(left + pw / 2))\" y=\"\(f1(h - 8))\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        svg += "<text transform=\"translate(14,\(f1(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>"
        svg += "</svg></figure>"
        return svg
    }

    static func f1(_ v: Double) -> String { fmt(v, 1) }

    static func tick(_ v: Double) -> String {
        if v == 0 { return "0" }
        if v >= 10_000 { return fmt(v / 1000, v >= 100_000 ? 0 : 1) + "k" }
        if v >= 100 { return fmt(v, 0) }
        if v >= 1 { return fmt(v, 1) }
        return fmt(v, 2)
    }
}
