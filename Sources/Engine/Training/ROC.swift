/// The receiver operating characteristic of one label: scores (probabilities) against binary
/// truth. `auc` is the probability that a random positive scores above a random negative
/// (ties count one half): the Mann–Whitney U statistic over n⁺·n⁻, the same number as
/// scikit-learn's `roc_auc_score`.
public struct ROC: Sendable, Equatable {
    /// (false-positive rate, true-positive rate) from (0, 0) to (1, 1), one point per distinct
    /// score taken as a threshold, highest first.
    public let points: [(fpr: Double, tpr: Double)]
    public let auc: Double
    public let positives: Int
    public let negatives: Int

    /// Nil when either class is missing, when the counts differ, or when a score is NaN or
    /// infinite: the AUC is undefined, and a model that gives such scores is not measured.
    public init?(scores: [Float], truth: [Bool]) {
        guard scores.count == truth.count, scores.allSatisfy(\.isFinite) else { return nil }
        let positives = truth.filter { $0 }.count, negatives = truth.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        self.positives = positives
        self.negatives = negatives
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var points: [(Double, Double)] = [(0, 0)]
        var tp = 0, fp = 0, i = 0
        var area = 0.0
        while i < order.count {
            // Every sample at this score moves the curve at once (a diagonal step for ties).
            let score = scores[order[i]]
            let (tp0, fp0) = (tp, fp)
            while i < order.count && scores[order[i]] == score {
                if truth[order[i]] { tp += 1 } else { fp += 1 }
                i += 1
            }
            area += Double(fp - fp0) * Double(tp + tp0) / 2
            points.append((Double(fp) / Double(negatives), Double(tp) / Double(positives)))
        }
        self.points = points
        auc = area / Double(positives * negatives)
    }

    public static func == (a: ROC, b: ROC) -> Bool {
        a.auc == b.auc && a.positives == b.positives && a.negatives == b.negatives
            && a.points.count == b.points.count && zip(a.points, b.points).allSatisfy { $0 == $1 }
    }

    /// The highest threshold whose sensitivity (true-positive rate) reaches `target`, with the
    /// specificity it gives: an operating point for triage.
    public static func threshold(scores: [Float], truth: [Bool], sensitivity target: Double) -> (threshold: Float, specificity: Double)? {
        guard scores.count == truth.count, scores.allSatisfy(\.isFinite) else { return nil }
        let positives = scores.indices.filter { truth[$0] }.map { scores[$0] }.sorted(by: >)
        guard !positives.isEmpty else { return nil }
        let needed = max(1, Int((target * Double(positives.count)).rounded(.up)))
        let threshold = positives[min(needed, positives.count) - 1]
        let negatives = scores.indices.filter { !truth[$0] }
        let specificity = negatives.isEmpty ? 1 : Double(negatives.filter { scores[$0] < threshold }.count) / Double(negatives.count)
        return (threshold, specificity)
    }
}
