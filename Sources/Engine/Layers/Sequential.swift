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
        layers.reduce(x) { $1.forward($0, mode: mode) }
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        var g = dy
        for (index, layer) in layers.enumerated().reversed() {
            g = layer.backward(g, inputGradient: index > 0 || inputGradient)
        }
        return g
    }
}
