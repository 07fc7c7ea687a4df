public import Wire

/// Latency of the triage path per hop, from the stage times each prediction carries, over the
/// predictions scored in the last `seconds`. Arrival is when the image reached the system:
/// `received` (by the DICOM gateway) when present, else `acquired` (the modality's time).
public struct LatencyWindow: Sendable {
    public enum Hop: String, CaseIterable, Sendable, Codable {
        case arrivalToDecoded = "arrival → decoded"
        case decodedToPreprocessed = "decoded → preprocessed"
        case preprocessedToScored = "preprocessed → scored"
        case arrivalToScored = "arrival → predicted"
    }

    public struct Figures: Sendable, Equatable, Codable {
        public var hop: String
        public var count: Int
        public var p50: Double, p95: Double, p99: Double
    }

    public var seconds: Double
    /// (scored, milliseconds per hop) of the predictions in the window, oldest first.
    public private(set) var entries: [(scored: Int64, hops: [Hop: Double])] = []

    public init(seconds: Double = 300) { self.seconds = seconds }

    public mutating func add(_ times: StageTimes) {
        var hops: [Hop: Double] = [:]
        let arrival = times.received ?? times.acquired
        // In Double: the times come from records, and a subtraction of extreme Int64s would trap.
        func span(_ from: Int64?, _ to: Int64?) -> Double? {
            guard let from, let to, to >= from else { return nil }
            return Double(to) - Double(from)
        }
        hops[.arrivalToDecoded] = span(arrival, times.decoded)
        hops[.decodedToPreprocessed] = span(times.decoded, times.preprocessed)
        hops[.preprocessedToScored] = span(times.preprocessed, times.scored)
        hops[.arrivalToScored] = span(arrival, times.scored)
        entries.append((times.scored, hops))
        let newest = entries.map(\.scored).max() ?? times.scored
        entries.removeAll { Double(newest) - Double($0.scored) > seconds * 1000 }
    }

    public var figures: [Figures] {
        Hop.allCases.compactMap { hop in
            let values = entries.compactMap { $0.hops[hop] }.sorted()
            guard !values.isEmpty else { return nil }
            return Figures(hop: hop.rawValue, count: values.count, p50: Self.percentile(values, 0.50),
                           p95: Self.percentile(values, 0.95), p99: Self.percentile(values, 0.99))
        }
    }

    /// The nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }
}
