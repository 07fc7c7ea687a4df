/// Inverted dropout: in training each element is zeroed with probability p and the rest are
/// scaled by 1/(1 − p); inference is the identity. The mask comes from a seeded generator so a
/// run repeats exactly.
///
/// input (N, C, H, W) → output (N, C, H, W).
public final class Dropout: Layer {
    public let probability: Float
    private var generator: SeededGenerator
    private var mask: [Float] = []
    private let output = FloatBuffer(), dInput = FloatBuffer()
    private var trained = false

    init(probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability < 1, "dropout probability must be in [0, 1)")
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }

    public func outputShape(for s: Shape) -> Shape { s }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        precondition(x.isContiguous)
        trained = mode == .training
        guard trained, probability > 0 else { return x }
        let count = x.shape.count, keep = 1 / (1 - probability)
        mask = (0..<count).map { _ in generator.uniform() < probability ? 0 : keep }
        let y = output.view(x.shape)
        for j in 0..<count { y.data[j] = x.data[j] * mask[j] }
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        precondition(trained, "Dropout.backward without a training forward")
        guard inputGradient else { return .none }
        guard probability > 0 else { return dy }
        let dx = dInput.view(dy.shape)
        for j in 0..<dy.shape.count { dx.data[j] = dy.data[j] * mask[j] }
        return dx
    }
}
