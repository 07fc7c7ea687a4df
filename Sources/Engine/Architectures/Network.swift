import Foundation

/// A built architecture with its parameters, ready to infer or train.
///
/// Input (N, C, H, W) → logits (N, labels, 1, 1); `probabilities` applies the sigmoid.
/// Stages that hold no trainable parameter run in inference mode even while training (frozen
/// features use their running statistics) and are skipped by backward.
public final class Network {
    public let architecture: Architecture
    public let labelCount: Int
    public let inputChannels: Int
    public let store: ParameterStore
    let stages: [Layer]
    let head: Dense
    /// Dropout on the pooled features before the head (training only; off until set).
    let headDropout: Dropout
    private var firstTrainableStage = 0
    private let inputCopy = FloatBuffer()
    /// The stages' layers in order, with `Sequential`s opened (what an inference graph covers).
    private let flatLayers: [Layer]
    /// Whole-network inference through oneDNN, per batch shape.
    let inferenceGraphs = InferenceGraphs()
    /// The frozen stages' layers, opened, and their graphs: training below `.all` runs them
    /// as inference.
    private var frozenLayers: [Layer] = []
    let frozenGraphs = InferenceGraphs()
    /// Whether inference and frozen stages may run as graphs (tests compare with layer by layer).
    var usesInferenceGraphs = true

    /// The most outputs a head may have (ImageNet's 1000 with room to spare).
    public static let maxLabels = 10_000
    /// The most input channels (gray, RGB, RGBA).
    public static let maxInputChannels = 4
    /// The longest input side a network is built for (memory grows with its square).
    public static let maxInputSide = 1024

    /// Builds `architecture` with a head of `labels` outputs and standard initialisation
    /// (torchvision's: Kaiming-normal fan-out convolutions, unit batch norms, uniform dense
    /// weights with zero bias), drawn from `seed`.
    public init(architecture: Architecture, labels: Int, inputChannels: Int = 3, seed: UInt64 = 0) {
        precondition(labels > 0 && inputChannels > 0)
        self.architecture = architecture
        self.labelCount = labels
        self.inputChannels = inputChannels
        store = ParameterStore()
        let layout = architecture.build(labels: labels, inputChannels: inputChannels, store: store)
        stages = layout.stages
        head = layout.head
        headDropout = layout.headDropout
        flatLayers = stages.flatMap(Self.opened)
        store.allocate()
        initialize(seed: seed)
    }

    public var parameters: [Parameter] { store.parameters }
    public var buffers: [StateBuffer] { stages.flatMap(\.buffers) }

    /// Re-draws every parameter and resets the running statistics.
    public func initialize(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for p in parameters {
            let v = p.value
            switch (p.shape.count, p.name.hasSuffix(".bias")) {
            case (4, _): // convolution: N(0, 2 / fan_out)
                let std = (2 / Float(p.shape[0] * p.shape[2] * p.shape[3])).squareRoot()
                for i in 0..<p.count { v[i] = rng.normal() * std }
            case (2, _): // dense weight: U(−1/√in, 1/√in)
                let bound = 1 / Float(p.shape[1]).squareRoot()
                for i in 0..<p.count { v[i] = (rng.uniform() * 2 - 1) * bound }
            case (_, true):
                v.update(repeating: 0, count: p.count)
            default: // batch-norm weight
                v.update(repeating: 1, count: p.count)
            }
        }
        for b in buffers {
            switch b.values {
            case .float32(let f): b.values = .float32(.init(repeating: b.name.hasSuffix("running_var") ? 1 : 0, count: f.count))
            case .int64: b.values = .int64([0])
            }
        }
    }

    /// The float state buffers (batch-norm running means and variances), concatenated in
    /// `buffers` order: what training changes besides the parameters. Integer buffers
    /// (num_batches_tracked) are not included.
    public var floatState: [Float] {
        get { buffers.flatMap(\.floats) }
        set {
            var offset = 0
            for b in buffers {
                guard case .float32(let f) = b.values else { continue }
                precondition(offset + f.count <= newValue.count, "float state of \(newValue.count) values is too short")
                b.values = .float32(Array(newValue[offset..<(offset + f.count)]))
                offset += f.count
            }
            precondition(offset == newValue.count, "float state has \(newValue.count) values, the network \(offset)")
        }
    }

    /// Chooses what trains; everything else is frozen.
    public func setTrainable(_ scope: TrainableScope) {
        let headStage = stages.count - 1
        switch scope {
        case .all: firstTrainableStage = 0
        case .head: firstTrainableStage = headStage
        case .lastStages(let k): firstTrainableStage = max(0, headStage - k)
        }
        for (index, stage) in stages.enumerated() {
            for p in stage.parameters { p.isTrainable = index >= firstTrainableStage }
        }
        frozenLayers = stages[..<firstTrainableStage].flatMap(Self.opened)
        frozenGraphs.removeAll()
    }

    /// Dropout before the head in training: each pooled feature zeroed with `probability`
    /// (0 turns it off; more than `Dropout.maxProbability` is taken as 0), the masks drawn
    /// from `seed` from the next forward on, so a batch trained again with the same seed
    /// computes the same gradient. Inference never drops.
    public func setHeadDropout(probability: Float, seed: UInt64) {
        headDropout.configure(probability: probability, seed: seed)
    }

    /// `layer`'s layers in order with every `Sequential` opened.
    private static func opened(_ layer: Layer) -> [Layer] {
        (layer as? Sequential)?.layers.flatMap(opened) ?? [layer]
    }

    /// Parameters that currently train.
    public var trainableParameters: [Parameter] { parameters.filter(\.isTrainable) }

    public func outputShape(for s: Shape) -> Shape {
        stages.reduce(s) { $1.outputShape(for: $0) }
    }

    /// Logits for a batch. The returned view is valid until the next forward. Inference runs
    /// through oneDNN as one graph where it can (`InferenceGraph`), and so do the frozen stages
    /// in training, unless a convolution is set to compute itself (`Conv2D.usesOneDNN`, for tests).
    public func forward(_ x: Activation, mode: Mode) -> Activation {
        precondition(x.shape.c == inputChannels, "the network takes \(inputChannels) channels, got \(x.shape.c)")
        let graphs = usesInferenceGraphs && convolutions.allSatisfy(\.usesOneDNN)
        if mode == .inference, graphs, let y = inferenceGraphs.forward(x, layers: flatLayers) {
            return y
        }
        var a = x, first = 0
        if mode == .training, graphs, firstTrainableStage > 0, let y = frozenGraphs.forward(x, layers: frozenLayers) {
            a = y
            first = firstTrainableStage
        }
        for (index, stage) in stages.enumerated() where index >= first {
            a = stage.forward(a, mode: mode == .training && index >= firstTrainableStage ? .training : .inference)
        }
        return a
    }

    /// Backward from ∂loss/∂logits through the trainable stages, accumulating gradients.
    public func backward(_ dLogits: Activation) {
        var g = dLogits
        for index in stride(from: stages.count - 1, through: firstTrainableStage, by: -1) {
            g = stages[index].backward(g, inputGradient: index > firstTrainableStage)
        }
    }

    /// Per-label probabilities for a batch given as N·C·H·W floats, row-major.
    public func probabilities(batch: [Float], shape: Shape) -> [[Float]] {
        precondition(batch.count == shape.count, "batch of \(batch.count) floats for shape \(shape)")
        let x = inputCopy.view(shape)
        _ = UnsafeMutableBufferPointer(start: x.data, count: batch.count).update(fromContentsOf: batch)
        let logits = forward(x, mode: .inference)
        return (0..<shape.n).map { i in (0..<labelCount).map { sigmoid(logits.data[i * labelCount + $0]) } }
    }

    /// Every convolution layer, in forward order.
    var convolutions: [Conv2D] {
        func walk(_ layer: Layer) -> [Conv2D] {
            switch layer {
            case let conv as Conv2D: return [conv]
            case let seq as Sequential: return seq.layers.flatMap(walk)
            case let block as ResidualBlock: return walk(block.main) + (block.shortcut.map(walk) ?? [])
            case let block as DenseBlock: return block.layers.flatMap(walk)
            default: return []
            }
        }
        return stages.flatMap(walk)
    }

    /// Multiply-accumulate operations of one forward pass for one image of (C, H, W), doubled:
    /// the conventional FLOP count.
    public func forwardFLOPs(height: Int, width: Int) -> Double {
        var flops = 0.0
        var shape = Shape(n: 1, c: inputChannels, h: height, w: width)
        func visit(_ layer: Layer, _ s: Shape) -> Shape {
            switch layer {
            case let seq as Sequential:
                return seq.layers.reduce(s) { visit($1, $0) }
            case let block as ResidualBlock:
                let out = visit(block.main, s)
                if let shortcut = block.shortcut { _ = visit(shortcut, s) }
                return out
            case let block as DenseBlock:
                for (i, layer) in block.layers.enumerated() {
                    _ = visit(layer, Shape(n: 1, c: block.inputChannels + i * block.growth, h: s.h, w: s.w))
                }
                return block.outputShape(for: s)
            case let conv as Conv2D:
                let out = conv.outputShape(for: s)
                flops += 2 * Double(out.count) * Double(conv.inChannels * conv.kernelSize * conv.kernelSize)
                return out
            case let dense as Dense:
                flops += 2 * Double(dense.inFeatures * dense.outFeatures)
                return dense.outputShape(for: s)
            default:
                return layer.outputShape(for: s)
            }
        }
        for stage in stages { shape = visit(stage, shape) }
        return flops
    }
}
