import Testing
@testable import Engine

/// The fast paths (im2col + sgemm, per image and batched; oneDNN; sgemm for dense layers) against
/// direct loops written from the definitions. Tolerance: 1e-4 absolute or relative.
@Suite("Fast kernels against naive ones")
struct NaiveKernelTests {
    /// Direct convolution: y[n][o][i][j] = b[o] + Σ_c,u,v w[o][c][u][v] · x[n][c][i·s+u−p][j·s+v−p].
    func naiveConvolution(_ x: [Float], _ s: Shape, _ w: [Float], _ b: [Float]?, oc: Int, k: Int, stride: Int, padding: Int) -> [Float] {
        let oh = (s.h + 2 * padding - k) / stride + 1, ow = (s.w + 2 * padding - k) / stride + 1
        var y = [Float](repeating: 0, count: s.n * oc * oh * ow)
        for n in 0..<s.n { for o in 0..<oc { for i in 0..<oh { for j in 0..<ow {
            var sum: Float = b?[o] ?? 0
            for c in 0..<s.c { for u in 0..<k { for v in 0..<k {
                let iy = i * stride - padding + u, ix = j * stride - padding + v
                guard iy >= 0, iy < s.h, ix >= 0, ix < s.w else { continue }
                sum += w[((o * s.c + c) * k + u) * k + v] * x[((n * s.c + c) * s.h + iy) * s.w + ix]
            } } }
            y[((n * oc + o) * oh + i) * ow + j] = sum
        } } } }
        return y
    }

    /// The adjoint of the direct convolution, for dx and dW.
    func naiveConvolutionBackward(_ x: [Float], _ s: Shape, _ w: [Float], _ dy: [Float], oc: Int, k: Int, stride: Int, padding: Int)
        -> (dx: [Float], dw: [Float]) {
        let oh = (s.h + 2 * padding - k) / stride + 1, ow = (s.w + 2 * padding - k) / stride + 1
        var dx = [Float](repeating: 0, count: x.count), dw = [Float](repeating: 0, count: w.count)
        for n in 0..<s.n { for o in 0..<oc { for i in 0..<oh { for j in 0..<ow {
            let g = dy[((n * oc + o) * oh + i) * ow + j]
            for c in 0..<s.c { for u in 0..<k { for v in 0..<k {
                let iy = i * stride - padding + u, ix = j * stride - padding + v
                guard iy >= 0, iy < s.h, ix >= 0, ix < s.w else { continue }
                let xi = ((n * s.c + c) * s.h + iy) * s.w + ix, wi = ((o * s.c + c) * k + u) * k + v
                dw[wi] += g * x[xi]
                dx[xi] += g * w[wi]
            } } }
        } } } }
        return (dx, dw)
    }

    /// The ways a convolution is computed in training.
    enum ConvolutionPath: CaseIterable {
        /// im2col and one product per image; im2col over the batch and one product; oneDNN.
        case im2colPerImage, im2colBatched, oneDNN
    }

    @Test("convolution in training: im2col + sgemm and oneDNN against direct loops",
          arguments: [(3, 1, 1), (3, 2, 1), (7, 2, 3), (1, 1, 0), (1, 2, 0), (5, 3, 2)], ConvolutionPath.allCases)
    func convolution(geometry: (Int, Int, Int), path: ConvolutionPath) {
        let (k, stride, padding) = geometry
        let s = Shape(n: 3, c: 5, h: 13, w: 11), oc = 6
        let store = ParameterStore()
        let conv = Conv2D("conv", store, inChannels: s.c, outChannels: oc, kernelSize: k, stride: stride, padding: padding, bias: true)
        conv.batchedPlaneLimit = path == .im2colBatched ? 1 << 30 : 0
        conv.usesOneDNN = path == .oneDNN
        store.allocate()
        let w = randomValues(conv.weight.count, seed: 1), b = randomValues(oc, seed: 2), x = randomValues(s.count, seed: 3)
        set(conv.weight, w); set(conv.bias!, b)
        let input = Batch(x, s)
        let y = input.with { conv.forward($0, mode: .training).values }
        expectClose(y, naiveConvolution(x, s, w, b, oc: oc, k: k, stride: stride, padding: padding), absolute: 1e-4, relative: 1e-4,
                    "conv \(k)/\(stride)/\(padding) forward")
        let dy = Batch(randomValues(y.count, seed: 4), conv.outputShape(for: s))
        store.zeroGradients()
        let dx = dy.with { conv.backward($0, inputGradient: true).values }
        let naive = naiveConvolutionBackward(x, s, w, dy.activation.values, oc: oc, k: k, stride: stride, padding: padding)
        expectClose(dx, naive.dx, absolute: 1e-4, relative: 1e-4, "conv \(k)/\(stride)/\(padding) dx")
        expectClose(gradient(conv.weight), naive.dw, absolute: 1e-4, relative: 1e-4, "conv \(k)/\(stride)/\(padding) dW")
        let dyValues = dy.activation.values
        expectClose(gradient(conv.bias!), (0..<oc).map { o in
            (0..<s.n).reduce(Float(0)) { sum, i in
                let plane = dyValues.count / (s.n * oc)
                return sum + dyValues[(i * oc + o) * plane ..< (i * oc + o + 1) * plane].reduce(0, +)
            }
        }, absolute: 1e-4, relative: 1e-4, "conv \(k)/\(stride)/\(padding) db")
        #expect(conv.plans.failure == nil)
        withExtendedLifetime(input) {}
    }

    @Test func denseAgainstLoops() {
        let store = ParameterStore()
        let dense = Dense("fc", store, inFeatures: 9, outFeatures: 4)
        store.allocate()
        let w = randomValues(36, seed: 5), b = randomValues(4, seed: 6), x = randomValues(27, seed: 7)
        set(dense.weight, w); set(dense.bias, b)
        let y = Batch(x, Shape(n: 3, c: 9)).with { dense.forward($0, mode: .inference).values }
        var expected = [Float](repeating: 0, count: 12)
        for n in 0..<3 { for o in 0..<4 {
            expected[n * 4 + o] = b[o] + (0..<9).reduce(Float(0)) { $0 + w[o * 9 + $1] * x[n * 9 + $1] }
        } }
        expectClose(y, expected, absolute: 1e-5, "dense forward")
    }
}
