/// How urgent an image is, from its probabilities and the model's operating thresholds.
public enum TriageLevel: String, Codable, Sendable, CaseIterable, Comparable {
    /// No label at or above its threshold.
    case normal
    /// Some label at or above its threshold, none of them urgent.
    case abnormal
    /// An urgent label at or above its threshold: raise an alert.
    case urgent

    private var rank: Int {
        switch self {
        case .normal: 0
        case .abnormal: 1
        case .urgent: 2
        }
    }

    public static func < (a: TriageLevel, b: TriageLevel) -> Bool { a.rank < b.rank }
}

/// A model's operating points: per-label thresholds and which labels are urgent. Carried in
/// the manifest (`ModelManifest.triage`); thresholds are chosen on validation data, for example
/// for a sensitivity target.
public struct TriagePolicy: Codable, Sendable, Equatable {
    /// Probability at or above which a label counts as found. Labels not listed use
    /// `defaultThreshold`.
    public var thresholds: [String: Float]
    public var defaultThreshold: Float
    /// Labels whose finding makes an image urgent.
    public var urgent: [String]
    /// Per-site thresholds (site → label → threshold), chosen on each site's held-out images;
    /// an image of a site listed here uses them before `thresholds`.
    public var siteThresholds: [String: [String: Float]]?

    public init(thresholds: [String: Float] = [:], defaultThreshold: Float = 0.5, urgent: [String],
                siteThresholds: [String: [String: Float]]? = nil) {
        self.thresholds = thresholds
        self.defaultThreshold = defaultThreshold
        self.urgent = urgent
        self.siteThresholds = siteThresholds
    }

    /// Findings that need a reader now: pneumothorax, and the fluid and consolidation findings
    /// that go with acute pneumonia or heart failure.
    public static let defaultUrgent = ["Pneumothorax", "Pneumonia", "Effusion", "Edema", "Consolidation"]

    /// The default policy for a label set: threshold 0.5, urgent labels those of
    /// `defaultUrgent` the model predicts.
    public static func standard(labels: [String]) -> TriagePolicy {
        TriagePolicy(urgent: labels.filter(defaultUrgent.contains))
    }

    /// The threshold of `label` for an image of `site` (nil: no site): the site's own when it
    /// has one, else the label's, else the default.
    public func threshold(for label: String, site: String? = nil) -> Float {
        site.flatMap { siteThresholds?[$0]?[label] } ?? thresholds[label] ?? defaultThreshold
    }

    /// The labels at or above threshold (in the model's order) for an image of `site`, and the
    /// level they make.
    public func assess(labels: [String], probabilities: [Float], site: String? = nil) -> (findings: [String], level: TriageLevel) {
        precondition(labels.count == probabilities.count)
        let findings = zip(labels, probabilities).filter { $0.1 >= threshold(for: $0.0, site: site) }.map(\.0)
        let level: TriageLevel = findings.contains(where: urgent.contains) ? .urgent : findings.isEmpty ? .normal : .abnormal
        return (findings, level)
    }

    /// Nil when consistent with `labels`; otherwise what is wrong.
    public func problem(labels: [String]) -> String? {
        let perSite = (siteThresholds ?? [:]).values
        if let unknown = (Array(thresholds.keys) + urgent + perSite.flatMap(\.keys)).first(where: { !labels.contains($0) }) {
            return "triage names \(unknown), which is not one of the model's labels"
        }
        if let site = siteThresholds?.keys.first(where: { ImageMetadata.validSite($0) == nil }) {
            return "site \"\(site.prefix(80))\" in the per-site thresholds is not a site name"
        }
        if (thresholds.values + [defaultThreshold] + perSite.flatMap(\.values)).contains(where: { !($0 >= 0 && $0 <= 1) }) {
            return "thresholds must be in [0, 1]"
        }
        return nil
    }
}
