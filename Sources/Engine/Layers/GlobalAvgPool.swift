/// The mean of each channel plane: input (N, C, H, W), NCHW or channel-blocked → output
/// (N, C, 1, 1), which is NCHW (one pixel: both layouts are the same).
public final class GlobalAvgPool: Layer {
    private var inputShape: Shape?
    /// The input's channel block, which the input gradient is returned in.
    private var inputBlock = 1
    private let output = FloatBuffer(), dInput = FloatBuffer()

    init() {}

    public func outputShape(for s: Shape) -> Shape { Shape(n: s.n, c: s.c) }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        let s = x.shape
        let y = output.view(outputShape(for: s))
        let scale = 1 / Float(s.plane)
        inputShape = mode == .training ? s : nil
        inputBlock = x.channelBlock
        // (N, C, 1, 1) is the same in either layout, so the output is NCHW.
        for i in 0..<s.n {
            for c in 0..<s.c {
                var sum: Float = 0
                for p in 0..<s.plane { sum += x[i, c, p] }
                y.image(i)[c] = sum * scale
            }
        }
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let s = inputShape else { preconditionFailure("GlobalAvgPool.backward without a training forward") }
        guard inputGradient else { return .none }
        let dx = Activation(data: dInput.reserve(s.count), shape: s, channelBlock: inputBlock)
        let scale = 1 / Float(s.plane)
        for i in 0..<s.n {
            for c in 0..<s.c {
                let value = dy.image(i)[c] * scale
                for p in 0..<s.plane { dx[i, c, p] = value }
            }
        }
        return dx
    }
}
