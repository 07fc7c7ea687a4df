/// Max pooling over KxK windows with stride and zero-free padding (padded positions never win),
/// as PyTorch's MaxPool2d.
///
/// input (N, C, H, W), NCHW or channel-blocked → output (N, C, OH, OW) in the input's layout;
/// the winning input index of each output is kept for backward.
public final class MaxPool2D: Layer {
    public let kernelSize: Int, stride: Int, padding: Int
    private var inputShape: Shape?
    private let output = FloatBuffer(), dInput = FloatBuffer(), convertedDOutput = FloatBuffer()
    /// The training input's channel block (its layout is the output's and the input gradient's).
    private var inputBlock = 1
    /// Per output element, the index of the winning input within its plane (training only).
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var argmaxCapacity = 0

    init(kernelSize: Int, stride: Int, padding: Int = 0) {
        precondition(padding * 2 <= kernelSize, "padding must be at most half the kernel")
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
    }

    func geometry(_ s: Shape) -> ConvGeometry {
        ConvGeometry(channels: s.c, height: s.h, width: s.w, kernelH: kernelSize, kernelW: kernelSize,
                     stride: stride, padding: padding)
    }

    deinit { argmax.deallocate() }

    public func outputShape(for s: Shape) -> Shape {
        let g = geometry(s)
        precondition(g.outHeight > 0 && g.outWidth > 0, "MaxPool2D: input \(s) smaller than the window")
        return Shape(n: s.n, c: s.c, h: g.outHeight, w: g.outWidth)
    }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        precondition(x.isContiguous)
        let s = x.shape, os = outputShape(for: s)
        let y = Activation(data: output.reserve(os.count), shape: os, channelBlock: x.channelBlock)
        let training = mode == .training
        if training && os.count > argmaxCapacity {
            argmax.deallocate()
            argmax = .allocate(capacity: os.count)
            argmaxCapacity = os.count
        }
        let winners = argmax
        inputBlock = x.channelBlock
        guard x.isPlain else {
            BlockedChannelKernels.maxPool(x, y, geometry(s), winners: training ? winners : nil)
            inputShape = training ? s : nil
            return y
        }
        let simple = kernelSize == 2 && stride == 2 && padding == 0
        Parallel.forEach(s.n * s.c, costPerItem: os.plane * kernelSize * kernelSize) { planeIndex in
                let src = x.data + planeIndex * s.plane, dst = y.data + planeIndex * os.plane
                if simple {
                    // 2x2, stride 2: the common case, without window bookkeeping or branches.
                    for oy in 0..<os.h {
                        let top = src + 2 * oy * s.w, bottom = top + s.w, out = dst + oy * os.w
                        if !training {
                            for ox in 0..<os.w {
                                out[ox] = max(max(top[2 * ox], top[2 * ox + 1]), max(bottom[2 * ox], bottom[2 * ox + 1]))
                            }
                            continue
                        }
                        let win = winners + planeIndex * os.plane + oy * os.w
                        let rowStart = Int32(truncatingIfNeeded: 2 * oy * s.w), width = Int32(truncatingIfNeeded: s.w)
                        for ox in 0..<os.w {
                            let a = top[2 * ox], b = top[2 * ox + 1], c = bottom[2 * ox], d = bottom[2 * ox + 1]
                            var best = a, at: Int32 = 0
                            at = b > best ? 1 : at; best = max(best, b)
                            at = c > best ? width : at; best = max(best, c)
                            at = d > best ? width &+ 1 : at; best = max(best, d)
                            out[ox] = best
                            win[ox] = rowStart &+ Int32(truncatingIfNeeded: 2 * ox) &+ at
                        }
                    }
                    return
                }
                for oy in 0..<os.h {
                    let y0 = max(0, oy * stride - padding), y1 = min(s.h, oy * stride - padding + kernelSize)
                    for ox in 0..<os.w {
                        let x0 = max(0, ox * stride - padding), x1 = min(s.w, ox * stride - padding + kernelSize)
                        // The first maximum in row-major order wins (NaN never does), with
                        // selects rather than branches: which element wins is data-dependent.
                        var best = -Float.infinity, bestIndex = y0 * s.w + x0
                        for iy in y0..<y1 {
                            for ix in x0..<x1 {
                                let v = src[iy * s.w + ix], wins = v > best
                                best = wins ? v : best
                                bestIndex = wins ? iy * s.w + ix : bestIndex
                            }
                        }
                        dst[oy * os.w + ox] = best
                        if training { winners[planeIndex * os.plane + oy * os.w + ox] = Int32(bestIndex) }
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
        let winners = argmax
        guard inputBlock == 1 else {
            let dx = Activation(data: dInput.reserve(s.count), shape: s, channelBlock: inputBlock)
            BlockedChannelKernels.maxPoolBackward(dy.laidOut(inputBlock, using: convertedDOutput), dx, winners: winners)
            return dx
        }
        let dy = dy.plain(using: convertedDOutput)
        let dx = dInput.zeroedView(s)
        Parallel.forEach(s.n * s.c, costPerItem: s.plane) { planeIndex in
            let g = dy.data + planeIndex * os.plane, d = dx.data + planeIndex * s.plane
            for j in 0..<os.plane { d[Int(winners[planeIndex * os.plane + j])] += g[j] }
        }
        return dx
    }
}
