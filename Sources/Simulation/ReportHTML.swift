/// `report.html`: one self-contained page (inline CSS and SVG, no scripts, no network) with the
/// figures of `report.json`, the run's wall time and memory, and four charts.
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
        let w = 560.0, h = 320.0, left = 56.0, right = 16.0, top = 14.0, bottom = 44.0
        let pw = w - left - right, ph = h - top - bottom
        let xMax = max(points.map(\.0).max() ?? 1, 1e-9)
        let yTop = yMax ?? max((points.map(\.1).max() ?? 1) * 1.1, 1e-9)
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
        if !points.isEmpty {
            let line = points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(f1(x($0.element.0))),\(f1(y($0.element.1)))" }.joined(separator: " ")
            svg += "<path class=\"area\" d=\"\(line) L\(f1(x(points.last!.0))),\(f1(top + ph)) L\(f1(x(points[0].0))),\(f1(top + ph)) Z\"/>"
            svg += "<path class=\"series\" d=\"\(line)\"/>"
        }
        svg += "<text x=\"\(f1(left + pw / 2))\" y=\"\(f1(h - 8))\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        svg += "<text transform=\"translate(14,\(f1(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>"
        svg += "</svg></figure>"
        return svg
    }

    static func f1(_ v: Double) -> String { fmt(v, 1) }

    static func tick(_ v: Double) -> String {
        if v == 0 { return "0" }
        if v >= 100 { return fmt(v, 0) }
        if v >= 1 { return fmt(v, 1) }
        return fmt(v, 2)
    }
}
