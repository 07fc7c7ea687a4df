/// Inverted dropout: in training each element is zeroed with probability p and the rest are
/// scaled by 1/(1 − p); inference is the identity. The mask comes from a seeded generator so a
/// run repeats exactly.
///
/// input (N, C, H, W) → output (N, C, H, W).
public final class Dropout: Layer {
    /// The largest probability `configure` takes.
    public static let maxProbability: Float = 0.9
    public private(set) var probability: Float
    private var generator: SeededGenerator
    private var mask: [Float] = []
    private let output = FloatBuffer(), dInput = FloatBuffer(), convertedDOutput = FloatBuffer()
    private var inputBlock = 1
    private var trained = false

    /// A probability outside [0, `maxProbability`] (or not a number) is taken as 0.
    init(probability: Float, seed: UInt64) {
        self.probability = Self.valid(probability)
        generator = SeededGenerator(seed: seed)
    }

    /// Sets the probability and starts the masks over from `seed`: a batch trained again with
    /// the same seed drops the same elements. Out of range (or NaN) means 0.
    public func configure(probability: Float, seed: UInt64) {
        self.probability = Self.valid(probability)
        generator = SeededGenerator(seed: seed)
    }

    private static func valid(_ p: Float) -> Float { p >= 0 && p <= maxProbability ? p : 0 }

    public func outputShape(for s: Shape) -> Shape { s }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        precondition(x.isContiguous)
        trained = mode == .training
        inputBlock = x.channelBlock
        guard trained, probability > 0 else { return x }
        let count = x.shape.count, keep = 1 / (1 - probability)
        mask = (0..<count).map { _ in generator.uniform() < probability ? 0 : keep }
        let y = Activation(data: output.reserve(x.shape.count), shape: x.shape, channelBlock: x.channelBlock)
        for j in 0..<count { y.data[j] = x.data[j] * mask[j] }
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        precondition(trained, "Dropout.backward without a training forward")
        guard inputGradient else { return .none }
        // The mask is per element of the input's layout.
        let dy = dy.laidOut(inputBlock, using: convertedDOutput)
        guard probability > 0 else { return dy }
        let dx = Activation(data: dInput.reserve(dy.shape.count), shape: dy.shape, channelBlock: inputBlock)
        for j in 0..<dy.shape.count { dx.data[j] = dy.data[j] * mask[j] }
        return dx
    }
}
