/// Reads sample values out of Prometheus text exposition (what a stage's `/metrics` serves).
public enum PrometheusText {
    /// The sum of the samples of metric `name` (every label set), or nil when there is none.
    public static func sum(of name: String, in text: String) -> Double? {
        var total: Double?
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let rest = line.dropFirst(name.count)
            guard let next = rest.first, next == " " || next == "{" else { continue }  // not a longer name
            guard let valueText = rest.split(separator: " ").last, let value = Double(valueText), value.isFinite else { continue }
            total = (total ?? 0) + value
        }
        return total
    }
}
