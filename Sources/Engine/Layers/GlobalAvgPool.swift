/// The mean of each channel plane: input (N, C, H, W) → output (N, C, 1, 1).
public final class GlobalAvgPool: Layer {
    private var inputShape: Shape?
    private let output = FloatBuffer(), dInput = FloatBuffer()

    init() {}

    public func outputShape(for s: Shape) -> Shape { Shape(n: s.n, c: s.c) }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        precondition(x.isContiguous)
        let s = x.shape
        let y = output.view(outputShape(for: s))
        let scale = 1 / Float(s.plane)
        for p in 0..<(s.n * s.c) {
            let src = x.data + p * s.plane
            var sum: Float = 0
            for j in 0..<s.plane { sum += src[j] }
            y.data[p] = sum * scale
        }
        inputShape = mode == .training ? s : nil
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let s = inputShape else { preconditionFailure("GlobalAvgPool.backward without a training forward") }
        guard inputGradient else { return .none }
        let dx = dInput.view(s)
        let scale = 1 / Float(s.plane)
        for p in 0..<(s.n * s.c) {
            (dx.data + p * s.plane).update(repeating: dy.data[p] * scale, count: s.plane)
        }
        return dx
    }
}
