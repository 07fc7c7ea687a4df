/// The residual connection's sum, y = a + b, of two batches of one shape. Its backward passes
/// ∂loss/∂y unchanged to both inputs, so it keeps no state.
public final class ResidualAdd {
    private let output = FloatBuffer(), converted = FloatBuffer()

    init() {}

    /// a (N, C, H, W) + b (N, C, H, W) → (N, C, H, W); with `relu`, max(a + b, 0) in the
    /// same pass.
    /// The output is in `a`'s layout (`b` is converted to it if need be).
    public func forward(_ a: Activation, _ b: Activation, relu: Bool = false) -> Activation {
        precondition(a.shape == b.shape && a.isContiguous && b.isContiguous,
                     "ResidualAdd: shapes \(a.shape) and \(b.shape) differ")
        let b = b.laidOut(a.channelBlock, using: converted)
        let y = Activation(data: output.reserve(a.shape.count), shape: a.shape, channelBlock: a.channelBlock)
        let per = a.shape.perImage
        Parallel.forEach(a.shape.n, costPerItem: per) { i in
            let p = a.image(i), q = b.image(i), r = y.image(i)
            if relu { for j in 0..<per { r[j] = max(p[j] + q[j], 0) } }
            else { for j in 0..<per { r[j] = p[j] + q[j] } }
        }
        return y
    }
}
