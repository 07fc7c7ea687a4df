public import Wire

/// Chooses a label's triage threshold on held-out images for a target sensitivity: the
/// highest threshold at which at least `sensitivity` of the positive images score at or above
/// it. With fewer than `minimumPositives` positives the estimate means little, so the current
/// threshold stays and the reason says why. Pure.
public struct OperatingPointChooser: Sendable {
    public var sensitivity: Double
    public var minimumPositives: Int

    public init(sensitivity: Double = 0.95, minimumPositives: Int = 10) {
        self.sensitivity = sensitivity
        self.minimumPositives = minimumPositives
    }

    /// The operating point for scores of positive and negative images (finite numbers).
    public func choose(positives: [Float], negatives: [Float], current: Float) -> OperatingPoint {
        guard positives.count >= max(1, minimumPositives) else {
            return OperatingPoint(threshold: current, chosen: false, sensitivity: Self.rate(positives, atOrAbove: current),
                                  specificity: Self.rate(negatives, below: current), positives: positives.count, negatives: negatives.count,
                                  reason: "\(positives.count) positive images in the window, \(minimumPositives) needed; the threshold \(current) stays")
        }
        // The k-th highest positive score, k the fewest positives that reach the target.
        let needed = min(positives.count, max(1, Int((sensitivity * Double(positives.count)).rounded(.up))))
        let threshold = positives.sorted(by: >)[needed - 1]
        return OperatingPoint(threshold: threshold, chosen: true, sensitivity: Self.rate(positives, atOrAbove: threshold),
                              specificity: Self.rate(negatives, below: threshold), positives: positives.count, negatives: negatives.count)
    }

    static func rate(_ scores: [Float], atOrAbove t: Float) -> Double? {
        scores.isEmpty ? nil : Double(scores.filter { $0 >= t }.count) / Double(scores.count)
    }

    static func rate(_ scores: [Float], below t: Float) -> Double? {
        scores.isEmpty ? nil : Double(scores.filter { $0 < t }.count) / Double(scores.count)
    }
}
