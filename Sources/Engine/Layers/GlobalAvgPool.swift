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
        precondition(x.isContiguous)
        let s = x.shape
        let y = output.view(outputShape(for: s))
        let scale = 1 / Float(s.plane)
        inputShape = mode == .training ? s : nil
        inputBlock = x.channelBlock
        if !x.isPlain {
            // (N, C, 1, 1) is the same in either layout, so the output is NCHW.
            let b = x.channelBlock
            for i in 0..<s.n {
                for c in 0..<s.c {
                    let run = x.image(i) + (c / b) * s.plane * b + c % b
                    var sum: Float = 0
                    for p in 0..<s.plane { sum += run[p * b] }
                    y.image(i)[c] = sum * scale
                }
            }
            return y
        }
        for p in 0..<(s.n * s.c) {
            let src = x.data + p * s.plane
            var sum: Float = 0
            for j in 0..<s.plane { sum += src[j] }
            y.data[p] = sum * scale
        }
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let s = inputShape else { preconditionFailure("GlobalAvgPool.backward without a training forward") }
        guard inputGradient else { return .none }
        let dx = Activation(data: dInput.reserve(s.count), shape: s, channelBlock: inputBlock)
        let scale = 1 / Float(s.plane)
        if !dx.isPlain {
            let b = inputBlock
            for i in 0..<s.n {
                for c in 0..<s.c {
                    let run = dx.image(i) + (c / b) * s.plane * b + c % b, value = dy.image(i)[c] * scale
                    for p in 0..<s.plane { run[p * b] = value }
                }
            }
            return dx
        }
        for p in 0..<(s.n * s.c) {
            (dx.data + p * s.plane).update(repeating: dy.data[p] * scale, count: s.plane)
        }
        return dx
    }
}
