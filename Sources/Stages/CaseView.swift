import Foundation
public import Wire

/// How `xray alerts` shows a case to a reading room or a pager bridge: one line each,
/// image id, level, findings with probabilities, age of the image.
public enum CaseView {
    public static func line(_ alert: Alert, now: Int64) -> String {
        let findings = alert.urgentFindings.map { "\($0.label) \(percent($0.probability)) (≥\(percent($0.threshold)))" }
        let others = alert.findings.filter { f in !alert.urgentFindings.contains { $0.label == f } }
        return "URGENT   \(alert.imageId)  " + findings.joined(separator: ", ")
            + (others.isEmpty ? "" : "; also \(others.joined(separator: ", "))")
            + "  · \(age(alert.times, now: now))" + details(source: alert.source, patient: alert.patientId, version: alert.modelVersion)
    }

    public static func line(_ p: Prediction, now: Int64) -> String {
        let level = p.triage.rawValue.uppercased().padding(toLength: 8, withPad: " ", startingAt: 0)
        let found = p.findings.compactMap { label in p.probability(of: label).map { "\(label) \(percent($0))" } }
        let top = p.probabilities.max { $0.probability < $1.probability }.map { "top \($0.label) \(percent($0.probability))" } ?? ""
        return "\(level) \(p.imageId)  " + (found.isEmpty ? "no finding (\(top))" : found.joined(separator: ", "))
            + "  · \(age(p.times, now: now))" + details(source: p.source, patient: p.patientId, version: p.modelVersion)
    }

    /// "acquired 1.2 s ago, scored in 310 ms (decode 90, preprocess 40, score 180)"; for DICOM
    /// from the gateway the latency runs from receipt ("acquired 3 d ago, received 2.1 s ago,
    /// scored in 310 ms (...)"), since a study can be sent long after it was taken.
    static func age(_ t: StageTimes, now: Int64) -> String {
        guard let start = t.received ?? t.acquired else { return "scored \(duration(elapsed(from: t.scored, to: now))) ago" }
        var steps: [String] = []
        var last = start
        for (name, time) in [("decode", t.decoded), ("preprocess", t.preprocessed), ("score", Optional(t.scored))] {
            if let time { steps.append("\(name) \(elapsed(from: last, to: time))"); last = time }
        }
        var ages: [String] = []
        if let acquired = t.acquired { ages.append("acquired \(duration(elapsed(from: acquired, to: now))) ago") }
        if let received = t.received { ages.append("received \(duration(elapsed(from: received, to: now))) ago") }
        return ages.joined(separator: ", ") + ", scored in \(elapsed(from: start, to: t.scored)) ms (\(steps.joined(separator: ", ")))"
    }

    static func details(source: String?, patient: String?, version: String) -> String {
        var parts = ["model \(version)"]
        if let patient { parts.insert("patient \(patient)", at: 0) }
        if let source { parts.insert("from \(source)", at: 0) }
        return "  · " + parts.joined(separator: ", ")
    }

    static func percent(_ p: Float) -> String { String(format: "%.0f%%", p * 100) }

    static func duration(_ ms: Int64) -> String {
        ms < 1000 ? "\(ms) ms" : ms < 120_000 ? String(format: "%.1f s", Double(ms) / 1000)
            : ms < 172_800_000 ? "\(ms / 60_000) min" : "\(ms / 86_400_000) d"
    }
}

/// `to - from` in milliseconds, saturating: the times come from record headers and JSON
/// anyone can write, so their difference must not trap.
func elapsed(from start: Int64, to end: Int64) -> Int64 {
    let (difference, overflow) = end.subtractingReportingOverflow(start)
    return overflow ? (end > start ? .max : .min) : difference
}
