/// Layers applied one after another; backward runs them in reverse. The named stages of an
/// architecture (ResNet's `layer1`…, DenseNet's blocks) are Sequentials.
public final class Sequential: Layer {
    public let layers: [Layer]

    init(_ layers: [Layer]) { self.layers = layers }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
    public var buffers: [StateBuffer] { layers.flatMap(\.buffers) }

    public func outputShape(for s: Shape) -> Shape {
        layers.reduce(s) { $1.outputShape(for: $0) }
    }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        guard mode == .inference else { return layers.reduce(x) { $1.forward($0, mode: mode) } }
        // Inference applies a batch norm (and a ReLU) as the preceding convolution writes its output.
        var a = x, index = 0
        func isReLU(_ i: Int) -> Bool { i < layers.count && layers[i] is ReLU }
        while index < layers.count {
            switch (layers[index], index + 1 < layers.count ? layers[index + 1] : nil) {
            case (let conv as Conv2D, let bn as BatchNorm2D):
                let (scale, shift) = bn.inferenceAffine()
                a = conv.forward(a, mode: .inference, epilogue: .init(scale: scale, shift: shift, relu: bn.relu || isReLU(index + 2)))
                index += isReLU(index + 2) ? 3 : 2
            default:
                a = layers[index].forward(a, mode: .inference)
                index += 1
            }
        }
        return a
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        var g = dy
        for (index, layer) in layers.enumerated().reversed() {
            g = layer.backward(g, inputGradient: index > 0 || inputGradient)
        }
        return g
    }
}
