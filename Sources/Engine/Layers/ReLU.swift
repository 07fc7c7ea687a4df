/// max(x, 0), computed in place: the output is the input's memory. Safe wherever the input
/// is consumed only by this layer (after a batch norm or a residual add), which is how the
/// architectures use it; backward needs only the output's sign.
///
/// input (N, C, H, W) → output (N, C, H, W), the same memory (so the same layout).
public final class ReLU: Layer {
    private var output: Activation?
    private let dInput = FloatBuffer(), convertedDOutput = FloatBuffer()

    init() {}

    public func outputShape(for s: Shape) -> Shape { s }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        precondition(x.isContiguous)
        let data = x.data
        Parallel.forEach(x.shape.n, costPerItem: x.shape.perImage) { i in
            let p = data + i * x.shape.perImage
            for j in 0..<x.shape.perImage { p[j] = max(p[j], 0) }
        }
        output = mode == .training ? x : nil
        return x
    }

    /// Keeps `y`, computed elsewhere as max(x, 0) in the same pass as what produced x (the
    /// residual add, whose output is contiguous), for backward, as a training forward would.
    func record(output y: Activation) {
        output = y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let y = output else { preconditionFailure("ReLU.backward without a training forward") }
        guard inputGradient else { return .none }
        precondition(dy.shape == y.shape)
        let dy = dy.laidOut(y.channelBlock, using: convertedDOutput)
        let dx = Activation(data: dInput.reserve(y.shape.count), shape: y.shape, channelBlock: y.channelBlock)
        Parallel.forEach(y.shape.n, costPerItem: y.shape.perImage) { i in
            Vectorized.reluBackward(dx.image(i), dy.image(i), y.image(i), count: y.shape.perImage)
        }
        return dx
    }
}
