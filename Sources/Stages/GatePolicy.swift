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

    /// Whether to promote, and why, from both versions' figures (`auc.mean`, `auc.<label>`).
    public func decide(candidate: [String: Double], serving: [String: Double]?, labels: [String]) -> (promote: Bool, reason: String) {
        guard let serving else { return (true, "no version serves yet") }
        guard let mean = candidate["auc.mean"] else { return (false, "the held-out window has no label with both classes; nothing to compare") }
        let servingMean = serving["auc.mean"] ?? 0
        if mean < servingMean - meanMargin {
            return (false, String(format: "mean AUC %.4f is below the serving version's %.4f", mean, servingMean))
        }
        for label in labels {
            guard let new = candidate["auc.\(label)"], let old = serving["auc.\(label)"] else { continue }
            if new < old - labelMargin {
                return (false, String(format: "%@ AUC %.4f dropped more than %.3f from %.4f", label, new, labelMargin, old))
            }
        }
        return (true, String(format: "mean AUC %.4f vs the serving version's %.4f, no label dropped more than %.3f", mean, servingMean, labelMargin))
    }
}
