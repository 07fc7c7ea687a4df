/// A ResNet block: y = relu(main(x) + shortcut(x)), where the shortcut is the identity or a
/// strided 1x1 convolution and batch norm (`downsample`) when the shape changes. The main path
/// is conv-bn-relu-conv-bn for a basic block (ResNet-18/34) or 1x1, 3x3, 1x1 convolutions
/// with batch norms for a bottleneck (ResNet-50), as torchvision builds them.
///
/// input (N, C, H, W) → output (N, OC, H/stride, W/stride).
public final class ResidualBlock: Layer {
    let main: Sequential
    let shortcut: Sequential?
    private let add = ResidualAdd()
    private let relu = ReLU()
    private let converted = FloatBuffer()

    init(main: [Layer], shortcut: [Layer]?) {
        self.main = Sequential(main)
        self.shortcut = shortcut.map(Sequential.init)
    }

    public var parameters: [Parameter] { main.parameters + (shortcut?.parameters ?? []) }
    public var buffers: [StateBuffer] { main.buffers + (shortcut?.buffers ?? []) }

    public func outputShape(for s: Shape) -> Shape { main.outputShape(for: s) }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        let h = main.forward(x, mode: mode)
        let identity = shortcut?.forward(x, mode: mode) ?? x
        // The ReLU is applied in the add's pass; in training the ReLU layer keeps its output
        // for backward.
        let y = add.forward(h, identity, relu: true)
        if mode == .training { relu.record(output: y) }
        return y
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        let dSum = relu.backward(dy, inputGradient: true)
        let dMain = main.backward(dSum, inputGradient: inputGradient)
        guard inputGradient else {
            _ = shortcut?.backward(dSum, inputGradient: false)
            return .none
        }
        let dShortcut = (shortcut?.backward(dSum, inputGradient: true) ?? dSum).laidOut(dMain.channelBlock, using: converted)
        // dMain is the first convolution's own input-gradient buffer: add into it in place.
        let per = dMain.shape.perImage
        Parallel.forEach(dMain.shape.n, costPerItem: per) { i in
            Vectorized.add(dMain.image(i), dShortcut.image(i), count: per)
        }
        return dMain
    }
}
