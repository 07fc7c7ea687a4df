import Foundation

/// Sigmoid + binary cross-entropy over L independent labels, averaged over N·L, with an
/// optional weight on each label's positive term (PyTorch's BCEWithLogitsLoss(pos_weight)):
///
///   loss = mean over n, l of  −[ w_l · y · log σ(z) + (1 − y) · log(1 − σ(z)) ]
///
/// computed from the logits z through softplus so that large |z| neither overflows nor loses
/// precision. Rare findings get w_l > 1 (for example negatives/positives in the training set).
public final class SigmoidCrossEntropy {
    public let labels: Int
    public let positiveWeights: [Float]
    private var logits: Activation?
    private var targets: [Float] = []
    private let dLogits = FloatBuffer()

    public init(labels: Int, positiveWeights: [Float]? = nil) {
        precondition(positiveWeights == nil || positiveWeights!.count == labels,
                     "one positive weight per label")
        self.labels = labels
        self.positiveWeights = positiveWeights ?? .init(repeating: 1, count: labels)
    }

    /// Class-balanced positive weights from one batch: for each label, the batch's negatives
    /// over its positives (targets N·L, row-major; a target of 0.5 or more is a positive),
    /// kept within `range`, and 1 where the batch has no positive or no negative of the label.
    /// A function of the batch alone, so a replayed batch is weighted the same.
    public static func batchBalancedWeights(targets: [Float], labels: Int, range: ClosedRange<Float> = 0.1...10) -> [Float] {
        guard labels > 0 else { return [] }
        var positives = [Int](repeating: 0, count: labels), negatives = positives
        for (i, y) in targets.enumerated() {
            if y >= 0.5 { positives[i % labels] += 1 } else { negatives[i % labels] += 1 }
        }
        return zip(positives, negatives).map { (p: Int, n: Int) -> Float in
            guard p > 0, n > 0 else { return 1 }
            let ratio = Float(n) / Float(p)
            return min(max(ratio, range.lowerBound), range.upperBound)
        }
    }

    /// logits (N, L, 1, 1); targets N·L values in [0, 1], row-major → the mean loss.
    public func forward(_ z: Activation, targets: [Float]) -> Float {
        precondition(z.shape.perImage == labels && targets.count == z.shape.n * labels,
                     "SigmoidCrossEntropy: \(z.shape) logits for \(targets.count) targets")
        var total = 0.0
        for i in 0..<targets.count {
            let x = z.data[i], y = targets[i], w = positiveWeights[i % labels]
            total += Double(w * y * softplus(-x) + (1 - y) * softplus(x))
        }
        logits = z
        self.targets = targets
        return Float(total / Double(targets.count))
    }

    /// ∂loss/∂logits: (w·y + 1 − y)·σ(z) − w·y, over N·L.
    public func backward() -> Activation {
        guard let z = logits else { preconditionFailure("SigmoidCrossEntropy.backward without forward") }
        let g = dLogits.view(z.shape)
        let scale = 1 / Float(targets.count)
        for i in 0..<targets.count {
            let y = targets[i], w = positiveWeights[i % labels], p = sigmoid(z.data[i])
            g.data[i] = ((w * y + 1 - y) * p - w * y) * scale
        }
        return g
    }
}

/// log(1 + eˣ) without overflow.
@inline(__always) func softplus(_ x: Float) -> Float {
    x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
}

/// 1 / (1 + e⁻ˣ) without overflow.
@inline(__always) public func sigmoid(_ x: Float) -> Float {
    x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
}
