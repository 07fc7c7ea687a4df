/// A layer that holds weights, in the order a forward pass runs them: what an ONNX graph's
/// Conv, BatchNormalization and Gemm nodes are matched against.
enum WeightUnit {
    case conv(Conv2D)
    case batchNorm(BatchNorm2D)
    case dense(Dense)
}

extension Network {
    /// The weight-holding layers in execution order (a residual block's main path, then its
    /// shortcut, as torchvision runs them).
    var weightUnits: [WeightUnit] {
        var units: [WeightUnit] = []
        func visit(_ layer: Layer) {
            switch layer {
            case let s as Sequential: s.layers.forEach(visit)
            case let b as ResidualBlock: visit(b.main); if let s = b.shortcut { visit(s) }
            case let b as DenseBlock: b.layers.forEach(visit)
            case let c as Conv2D: units.append(.conv(c))
            case let n as BatchNorm2D: units.append(.batchNorm(n))
            case let d as Dense: units.append(.dense(d))
            default: break
            }
        }
        stages.forEach(visit)
        return units
    }
}
