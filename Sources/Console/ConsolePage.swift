public import Foundation
import Wire

/// The console's HTML: the page (style and a 13-line script that reloads the panel every two
/// seconds, both served inline) and the panel itself, rendered from a `ConsoleModel`.
public enum ConsolePage {
    /// The whole page, with the panel as it is now (so it shows without script too).
    public static func page(_ model: ConsoleModel, brokers: String, now: Date = Date()) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>XRayStream console</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>\(style)</style></head>
        <body data-refreshes="0">
        <header><h1>XRayStream console</h1><span class="muted">brokers \(HTML.escape(brokers)) · topics \(HTML.escape(model.topics.prefix.isEmpty ? "xray.*" : model.topics.prefix + "xray.*")) · refreshed every 2 s</span></header>
        <main id="panel">\(panel(model, now: now))</main>
        <script>\(script)</script>
        </body></html>
        """
    }

    /// The part that refreshes: flow, latency, worklist, model, dead letters.
    public static func panel(_ model: ConsoleModel, now: Date = Date()) -> String {
        var html = "<p class=\"muted\" id=\"updated\" data-predictions=\"\(model.predictions)\">updated \(clock(now)) · \(model.predictions) predictions read"
        html += model.triageCounts.isEmpty ? "" : " (" + TriageLevel.allCases.reversed().map { "\(model.triageCounts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ") + ")"
        html += "</p>"
        for (source, problem) in model.problems.sorted(by: { $0.key < $1.key }) {
            html += "<p class=\"problem\">\(HTML.escape(source)): \(HTML.escape(problem))</p>"
        }
        html += "<div class=\"grid\">"
        html += flow(model) + latency(model) + modelSection(model) + deadLetters(model)
        html += "</div>" + worklist(model, now: now)
        return html
    }

    static func flow(_ model: ConsoleModel) -> String {
        var html = "<section id=\"flow\"><h2>Flow</h2><table><tr><th>topic</th><th>partitions</th><th>records</th><th>in/s</th></tr>"
        for t in model.flow.topics {
            html += "<tr><td>\(HTML.escape(t.topic))</td><td class=\"n\">\(t.partitions)</td><td class=\"n\">\(t.records)</td><td class=\"n rate\">\(String(format: "%.1f", t.inPerSecond))</td></tr>"
        }
        html += "</table><table><tr><th>consumer group</th><th>instances</th><th>out/s</th><th>lag</th></tr>"
        for g in model.flow.groups {
            html += "<tr class=\"group\" data-group=\"\(HTML.escape(g.group))\"><td>\(HTML.escape(g.group))<br><span class=\"muted\">\(HTML.escape(g.state)) · \(HTML.escape(g.topics.joined(separator: ", ")))</span></td>"
            html += "<td class=\"n\" title=\"\(HTML.escape(g.instances.joined(separator: "\n")))\">\(g.instances.count)</td>"
            html += "<td class=\"n rate\">\(String(format: "%.1f", g.outPerSecond))</td><td class=\"n lag\">\(g.lag)</td></tr>"
        }
        html += "</table>"
        let start = model.flow.lagHistory.values.flatMap { $0.map(\.at) }.min() ?? 0
        let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
        let series = model.flow.lagHistory.keys.sorted().enumerated().map { i, group in
            SVGPlot.Series(name: shortGroup(group, prefix: model.topics.prefix), color: palette[i % palette.count],
                           points: (model.flow.lagHistory[group] ?? []).map { ($0.at - start, Double($0.lag)) })
        }
        let most = series.flatMap { $0.points.map(\.y) }.max() ?? 0
        html += SVGPlot(title: "lag (records)", xLabel: "seconds", series: series, yRange: 0...max(1, most)).svg
        return html + "</section>"
    }

    static func latency(_ model: ConsoleModel) -> String {
        var html = "<section id=\"latency\"><h2>Latency (ms, last \(Int(model.latency.seconds / 60)) min)</h2>"
        html += "<table><tr><th>hop</th><th>n</th><th>p50</th><th>p95</th><th>p99</th></tr>"
        for f in model.latency.figures {
            let ms = [f.p50, f.p95, f.p99].map { "<td class=\"n\">" + String(format: "%.0f", $0) + "</td>" }.joined()
            html += "<tr><td>\(HTML.escape(f.hop))</td><td class=\"n\">\(f.count)</td>\(ms)</tr>"
        }
        html += "</table>"
        let entries = model.latency.entries
        let first = entries.first?.scored ?? 0
        let points = entries.compactMap { e in e.hops[.arrivalToScored].map { (x: (Double(e.scored) - Double(first)) / 1000, y: $0) } }
        html += SVGPlot(title: "arrival → predicted per image (ms)", xLabel: "seconds",
                        series: [.init(name: "latency", color: "#1f77b4", points: points, line: false)]).svg
        return html + "</section>"
    }

    static func modelSection(_ model: ConsoleModel) -> String {
        var html = "<section id=\"model\"><h2>Model</h2>"
        html += "<p>serving <b id=\"serving\">\(HTML.escape(model.registry?.serving ?? "none yet"))</b></p>"
        let promoted = model.timeline.enumerated().filter { $0.element.promoted }.compactMap { i, p in p.meanAUC.map { (Double(i + 1), $0) } }
        let held = model.timeline.enumerated().filter { !$0.element.promoted }.compactMap { i, p in p.meanAUC.map { (Double(i + 1), $0) } }
        let lowest = model.timeline.compactMap(\.meanAUC).min() ?? 0.5
        html += SVGPlot(title: "held-out mean AUC per gated version", xLabel: "decision",
                        series: [.init(name: "promoted", color: "#2ca02c", points: promoted, line: false),
                                 .init(name: "held", color: "#999", points: held, line: false)], yRange: min(0.5, lowest)...1).svg
        let t0 = model.training.first?.at ?? 0
        html += SVGPlot(title: "training loss (aggregator)", xLabel: "seconds",
                        series: [.init(name: "loss", color: "#d62728", points: model.training.compactMap { p in p.loss.map { (p.at - t0, $0) } })]).svg
        html += SVGPlot(title: "learning rate", xLabel: "seconds",
                        series: [.init(name: "lr", color: "#9467bd", points: model.training.compactMap { p in p.learningRate.map { (p.at - t0, $0) } })]).svg
        html += "<table><tr><th>gate decision</th><th>AUC</th><th></th></tr>"
        for p in model.timeline.suffix(8).reversed() {
            html += "<tr><td>\(HTML.escape(p.version))<br><span class=\"muted\">\(HTML.escape(p.decidedAt))</span></td><td class=\"n\">\(p.meanAUC.map { String(format: "%.4f", $0) } ?? "–")</td>"
            html += "<td class=\"\(p.promoted ? "ok" : "muted")\" title=\"\(HTML.escape(p.reason))\">\(p.promoted ? "promoted" : "held")</td></tr>"
        }
        html += "</table><table><tr><th>registry (published, promoted, newest trained)</th><th>kind</th><th>AUC</th></tr>"
        for e in (model.registry?.entries ?? []).suffix(10).reversed() {
            html += "<tr\(e.serving ? " class=\"serving\"" : "")><td>\(HTML.escape(e.version))\(e.serving ? " ◀ serving" : "")</td><td>\(e.kind.rawValue)</td><td class=\"n\">\(e.meanAUC.map { String(format: "%.4f", $0) } ?? "–")</td></tr>"
        }
        return html + "</table></section>"
    }

    static func deadLetters(_ model: ConsoleModel) -> String {
        var html = "<section id=\"deadletters\"><h2>Dead letters</h2><table><tr><th>stage</th><th>reason</th><th>records</th></tr>"
        for (stage, reasons) in model.deadLetters.sorted(by: { $0.key < $1.key }) {
            for (reason, count) in reasons.sorted(by: { $0.key < $1.key }) {
                html += "<tr class=\"dead\"><td>\(HTML.escape(stage))</td><td>\(HTML.escape(reason))</td><td class=\"n\">\(count)</td></tr>"
            }
        }
        html += "</table><ul class=\"recent\">"
        for d in model.recentDeadLetters.prefix(8) {
            html += "<li><span class=\"muted\">\(clock(Date(timeIntervalSince1970: Double(d.at) / 1000)))</span> \(HTML.escape(d.key)): \(HTML.escape(d.reason))</li>"
        }
        return html + "</ul></section>"
    }

    static func worklist(_ model: ConsoleModel, now: Date) -> String {
        var html = "<section id=\"worklist\"><h2>Worklist: urgent cases, newest first</h2>"
        html += "<table><tr><th>scored</th><th>image</th><th>findings (probability / threshold)</th><th>ground truth</th><th>site · source</th><th>model</th></tr>"
        for item in model.worklist {
            let a = item.alert
            let findings = a.urgentFindings.map { "\(HTML.escape($0.label)) \(percent($0.probability)) / \(percent($0.threshold))" }
            let truth = item.truth.map { $0.isEmpty ? "no finding" : $0.joined(separator: ", ") }
            let correct = item.truth.map { t in a.urgentFindings.contains { t.contains($0.label) } }
            html += "<tr class=\"case\"><td>\(clock(Date(timeIntervalSince1970: Double(a.times.scored) / 1000)))</td><td>\(HTML.escape(a.imageId))</td>"
            html += "<td>\(findings.joined(separator: "<br>"))</td>"
            html += "<td class=\"\(correct == true ? "ok" : correct == false ? "bad" : "muted")\">\(HTML.escape(truth ?? "–"))</td>"
            html += "<td>\(HTML.escape([a.site, a.source].compactMap { $0 }.joined(separator: " · ")))</td><td>\(HTML.escape(a.modelVersion))</td></tr>"
        }
        return html + "</table></section>"
    }

    /// A probability as a whole percentage; what a record says is shown, never trusted to be in 0...1.
    static func percent(_ p: Float) -> String {
        p.isFinite ? String(format: "%.0f%%", Double(p) * 100) : "?"
    }

    /// A group's name without the deployment's prefix (the stage's name, as a rule).
    static func shortGroup(_ group: String, prefix: String) -> String {
        !prefix.isEmpty && group.hasPrefix(prefix) ? String(group.dropFirst(prefix.count)) : group
    }

    static func clock(_ date: Date) -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }

    static let style = """
        body{font:13px system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
        header{background:#123;color:#fff;padding:8px 16px}header h1{display:inline;font-size:18px;margin-right:12px}
        header .muted{color:#bcd}main{padding:8px 16px}
        .grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:12px}
        section{background:#fff;border:1px solid #ddd;border-radius:4px;padding:8px 12px}
        h2{font-size:15px;margin:4px 0 8px}table{border-collapse:collapse;margin-bottom:8px;width:100%}
        th,td{text-align:left;padding:2px 6px;border-bottom:1px solid #eee;vertical-align:top}
        td.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#888}
        .ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}.problem{color:#c62828}
        tr.serving td{background:#eef8ee}svg.plot{display:block;margin:4px 0}
        .plot-title{font-size:12px;fill:#333}.plot-axis,.plot-legend,.plot-empty{font-size:10px;fill:#666}
        .plot-legend{font-weight:bold}ul.recent{margin:0;padding-left:16px}
        """

    static let script = """
        (function () {
          var n = 0;
          function refresh() {
            fetch('/panel', {cache: 'no-store'}).then(function (r) {
              if (!r.ok) throw new Error(r.status);
              return r.text();
            }).then(function (html) {
              document.getElementById('panel').innerHTML = html;
              document.body.dataset.refreshes = String(++n);
            }).catch(function () {}).finally(function () { setTimeout(refresh, 2000); });
          }
          setTimeout(refresh, 2000);
        })();
        """
}
