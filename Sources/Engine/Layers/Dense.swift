/// A fully connected layer, y = x·Wᵀ + b, as PyTorch's Linear.
///
/// weight (out, in), bias (out); input (N, in, 1, 1) (any (N, C, H, W) with C·H·W = in is read
/// flat) → output (N, out, 1, 1).
public final class Dense: Layer {
    public let inFeatures: Int, outFeatures: Int
    public let weight: Parameter, bias: Parameter
    private var input: Activation?
    private let output = FloatBuffer(), dInput = FloatBuffer()
    private let converted = FloatBuffer(), convertedDInput = FloatBuffer()
    private var inputBlock = 1

    init(_ name: String, _ store: ParameterStore, inFeatures: Int, outFeatures: Int) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        weight = store.make(name + ".weight", [outFeatures, inFeatures])
        bias = store.make(name + ".bias", [outFeatures])
    }

    public var parameters: [Parameter] { [weight, bias] }

    public func outputShape(for s: Shape) -> Shape {
        precondition(s.perImage == inFeatures, "Dense \(weight.name): input has \(s.perImage) features, expected \(inFeatures)")
        return Shape(n: s.n, c: outFeatures)
    }

    /// Reads NCHW: a channel-blocked input (with more than one pixel) is converted first, and
    /// its gradient back.
    public func forward(_ x: Activation, mode: Mode) -> Activation {
        inputBlock = x.channelBlock
        let x = x.plain(using: converted)
        precondition(x.isContiguous)
        let y = output.view(outputShape(for: x.shape))
        let n = x.shape.n
        for i in 0..<n { (y.data + i * outFeatures).update(from: bias.storage, count: outFeatures) }
        // y (N, out) += x (N, in) · Wᵀ (in, out)
        BLAS.gemm(transB: true, m: n, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
                  b: weight.storage, ldb: inFeatures, beta: 1, c: y.data, ldc: outFeatures)
        input = mode == .training ? x : nil
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let x = input else { preconditionFailure("Dense.backward without a training forward") }
        let n = x.shape.n
        precondition(dy.shape == outputShape(for: x.shape))
        if weight.isTrainable {
            // dW (out, in) += dyᵀ (out, N) · x (N, in)
            BLAS.gemm(transA: true, m: outFeatures, n: inFeatures, k: n, a: dy.data, lda: outFeatures,
                      b: x.data, ldb: inFeatures, beta: 1, c: weight.gradient, ldc: inFeatures)
        }
        if bias.isTrainable {
            for i in 0..<n {
                for o in 0..<outFeatures { bias.gradient[o] += dy.data[i * outFeatures + o] }
            }
        }
        guard inputGradient else { return .none }
        // dx (N, in) = dy (N, out) · W (out, in)
        let dx = dInput.view(x.shape)
        BLAS.gemm(m: n, n: inFeatures, k: outFeatures, a: dy.data, lda: outFeatures,
                  b: weight.storage, ldb: inFeatures, beta: 0, c: dx.data, ldc: inFeatures)
        return dx.laidOut(inputBlock, using: convertedDInput)
    }
}
