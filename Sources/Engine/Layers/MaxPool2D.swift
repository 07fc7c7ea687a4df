/// Max pooling over KxK windows with stride and zero-free padding (padded positions never win),
/// as PyTorch's MaxPool2d.
///
/// input (N, C, H, W) → output (N, C, OH, OW); the winning input index of each output is kept
/// for backward.
public final class MaxPool2D: Layer {
    public let kernelSize: Int, stride: Int, padding: Int
    private var inputShape: Shape?
    private let output = FloatBuffer(), dInput = FloatBuffer()
    private var argmax: [Int32] = []

    init(kernelSize: Int, stride: Int, padding: Int = 0) {
        precondition(padding * 2 <= kernelSize, "padding must be at most half the kernel")
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
    }

    func geometry(_ s: Shape) -> ConvGeometry {
        ConvGeometry(channels: s.c, height: s.h, width: s.w, kernelH: kernelSize, kernelW: kernelSize,
                     stride: stride, padding: padding)
    }

    public func outputShape(for s: Shape) -> Shape {
        let g = geometry(s)
        precondition(g.outHeight > 0 && g.outWidth > 0, "MaxPool2D: input \(s) smaller than the window")
        return Shape(n: s.n, c: s.c, h: g.outHeight, w: g.outWidth)
    }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        precondition(x.isContiguous)
        let s = x.shape, os = outputShape(for: s)
        let y = output.view(os)
        let training = mode == .training
        if training { argmax = .init(repeating: 0, count: os.count) }
        argmax.withUnsafeMutableBufferPointer { winners in
            Parallel.forEach(s.n * s.c, costPerItem: os.plane * kernelSize * kernelSize) { planeIndex in
                let src = x.data + planeIndex * s.plane, dst = y.data + planeIndex * os.plane
                for oy in 0..<os.h {
                    let y0 = max(0, oy * stride - padding), y1 = min(s.h, oy * stride - padding + kernelSize)
                    for ox in 0..<os.w {
                        let x0 = max(0, ox * stride - padding), x1 = min(s.w, ox * stride - padding + kernelSize)
                        var best = -Float.infinity, bestIndex = y0 * s.w + x0
                        for iy in y0..<y1 {
                            for ix in x0..<x1 where src[iy * s.w + ix] > best {
                                best = src[iy * s.w + ix]; bestIndex = iy * s.w + ix
                            }
                        }
                        dst[oy * os.w + ox] = best
                        if training { winners[planeIndex * os.plane + oy * os.w + ox] = Int32(bestIndex) }
                    }
                }
            }
        }
        inputShape = training ? s : nil
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let s = inputShape else { preconditionFailure("MaxPool2D.backward without a training forward") }
        guard inputGradient else { return .none }
        let os = outputShape(for: s)
        precondition(dy.shape == os)
        let dx = dInput.zeroedView(s)
        for planeIndex in 0..<(s.n * s.c) {
            let g = dy.data + planeIndex * os.plane, d = dx.data + planeIndex * s.plane
            for j in 0..<os.plane { d[Int(argmax[planeIndex * os.plane + j])] += g[j] }
        }
        return dx
    }
}
