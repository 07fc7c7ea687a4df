/// Average pooling over KxK windows with a stride and no padding (DenseNet's transitions).
///
/// input (N, C, H, W) → output (N, C, (H − K)/stride + 1, (W − K)/stride + 1).
public final class AvgPool2D: Layer {
    public let kernelSize: Int, stride: Int
    private var inputShape: Shape?
    private let output = FloatBuffer(), dInput = FloatBuffer(), converted = FloatBuffer(), convertedDInput = FloatBuffer()
    private var inputBlock = 1

    init(kernelSize: Int, stride: Int) {
        self.kernelSize = kernelSize; self.stride = stride
    }

    public func outputShape(for s: Shape) -> Shape {
        let oh = (s.h - kernelSize) / stride + 1, ow = (s.w - kernelSize) / stride + 1
        precondition(s.h >= kernelSize && s.w >= kernelSize, "AvgPool2D: input \(s) smaller than the window")
        return Shape(n: s.n, c: s.c, h: oh, w: ow)
    }

    /// NCHW inside: a channel-blocked input is converted first, and its gradient back.
    public func forward(_ x: Activation, mode: Mode) -> Activation {
        inputBlock = x.channelBlock
        let x = x.plain(using: converted)
        precondition(x.isContiguous)
        let s = x.shape, os = outputShape(for: s), k = kernelSize
        let y = output.view(os)
        let scale = 1 / Float(k * k)
        Parallel.forEach(s.n * s.c, costPerItem: os.plane * k * k) { planeIndex in
            let src = x.data + planeIndex * s.plane, dst = y.data + planeIndex * os.plane
            for oy in 0..<os.h {
                for ox in 0..<os.w {
                    var sum: Float = 0
                    for ky in 0..<k {
                        let row = src + (oy * stride + ky) * s.w + ox * stride
                        for kx in 0..<k { sum += row[kx] }
                    }
                    dst[oy * os.w + ox] = sum * scale
                }
            }
        }
        inputShape = mode == .training ? s : nil
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let s = inputShape else { preconditionFailure("AvgPool2D.backward without a training forward") }
        guard inputGradient else { return .none }
        let os = outputShape(for: s), k = kernelSize
        precondition(dy.shape == os)
        let dy = dy.plain(using: converted)
        let dx = dInput.zeroedView(s)
        let scale = 1 / Float(k * k)
        for planeIndex in 0..<(s.n * s.c) {
            let g = dy.data + planeIndex * os.plane, d = dx.data + planeIndex * s.plane
            for oy in 0..<os.h {
                for ox in 0..<os.w {
                    let v = g[oy * os.w + ox] * scale
                    for ky in 0..<k {
                        let row = d + (oy * stride + ky) * s.w + ox * stride
                        for kx in 0..<k { row[kx] += v }
                    }
                }
            }
        }
        return dx.laidOut(inputBlock, using: convertedDInput)
    }
}
