/// The gate before triage: a candidate version may replace the serving one only if, on the
/// same held-out images, its mean AUC is no lower than the serving version's (less
/// `meanMargin`) and no label's AUC drops by more than `labelMargin`. Pure.
public struct GatePolicy: Sendable, Equatable {
    public var meanMargin: Double
    public var labelMargin: Double

    public init(meanMargin: Double = 0, labelMargin: Double = 0.02) {
        self.meanMargin = meanMargin
        self.labelMargin = labelMargin
    }

    /// Whether to promote, and why, from both versions' figures (`auc.mean`, `auc.<label>`)
    /// on the same images. Held when either mean AUC is missing or not a number in [0, 1].
    public func decide(candidate: [String: Double], serving: [String: Double], labels: [String]) -> (promote: Bool, reason: String) {
        guard let mean = candidate["auc.mean"], (0...1).contains(mean) else {
            return (false, "the candidate has no finite mean AUC on the held-out window (no label with both classes, or its scores are not finite)")
        }
        guard let servingMean = serving["auc.mean"], (0...1).contains(servingMean) else {
            return (false, "the serving version has no finite mean AUC on the same window; nothing to compare with")
        }
        if mean < servingMean - meanMargin {
            return (false, String(format: "mean AUC %.4f is below the serving version's %.4f", mean, servingMean))
        }
        for label in labels {
            guard let new = candidate["auc.\(label)"], let old = serving["auc.\(label)"] else { continue }
            guard new.isFinite, old.isFinite else { return (false, "\(label) AUC is not a finite number") }
            if new < old - labelMargin {
                return (false, String(format: "%@ AUC %.4f dropped more than %.3f from %.4f", label, new, labelMargin, old))
            }
        }
        return (true, String(format: "mean AUC %.4f vs the serving version's %.4f, no label dropped more than %.3f", mean, servingMean, labelMargin))
    }
}
