/// Concatenation along the channel axis: inputs (N, C₁, H, W) … (N, Cₖ, H, W) → output
/// (N, C₁ + … + Cₖ, H, W); backward splits ∂loss/∂output back into the inputs' shapes.
///
/// DenseNet's blocks avoid the repeated copies this would cost by writing each layer's
/// output straight into a shared channel-sliced buffer (`DenseBlock`), which is the same
/// operation done in place.
public final class ChannelConcat {
    private var inputShapes: [Shape] = []
    private let output = FloatBuffer()
    private var dInputs: [FloatBuffer] = []

    init() {}

    public func forward(_ inputs: [Activation]) -> Activation {
        precondition(!inputs.isEmpty)
        let first = inputs[0].shape
        for x in inputs {
            precondition(x.shape.n == first.n && x.shape.h == first.h && x.shape.w == first.w,
                         "ChannelConcat: \(x.shape) does not match \(first)")
        }
        let channels = inputs.reduce(0) { $0 + $1.shape.c }
        let y = output.view(Shape(n: first.n, c: channels, h: first.h, w: first.w))
        var offset = 0
        for x in inputs {
            // Into its channels of every image, from either layout.
            ChannelBlocks.copy(x, to: Activation(data: y.data + offset, shape: x.shape, imageStride: y.shape.perImage))
            offset += x.shape.perImage
        }
        inputShapes = inputs.map(\.shape)
        return y
    }

    public func backward(_ dy: Activation) -> [Activation] {
        precondition(!inputShapes.isEmpty, "ChannelConcat.backward without a forward")
        while dInputs.count < inputShapes.count { dInputs.append(FloatBuffer()) }
        let views = zip(dInputs, inputShapes).map { $0.view($1) }
        for i in 0..<dy.shape.n {
            var offset = 0
            for v in views {
                v.image(i).update(from: dy.image(i) + offset, count: v.shape.perImage)
                offset += v.shape.perImage
            }
        }
        return views
    }
}
