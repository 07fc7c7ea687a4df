public import Foundation

/// Brings the weights of an ONNX ResNet/DenseNet/small CNN (for example a CheXNet-style model
/// exported from PyTorch) into a `Network`.
///
/// Exporters rename initializers (`onnx::Conv_497`) and fold each batch norm that follows a
/// convolution into the convolution's weight and bias, so weights are matched by structure,
/// not by name: the graph's Conv, BatchNormalization and Gemm/MatMul nodes, in order, against
/// the network's convolutions, batch norms and dense head, shapes checked at every step. A
/// folded batch norm becomes the identity normalisation plus the folded bias, which computes
/// the same function.
public enum ONNXImporter {
    public struct Result {
        public var network: Network
        /// Labels the file's head predicts.
        public var headOutputs: Int
        /// Batch norms that the exporter had folded into the preceding convolution.
        public var foldedBatchNorms: Int
        public var keptFreshHead: Bool
    }

    private enum Unit {
        case conv(weight: NamedTensor, bias: NamedTensor?)
        case batchNorm(scale: NamedTensor, bias: NamedTensor, mean: NamedTensor, variance: NamedTensor, epsilon: Float)
        case dense(weight: NamedTensor, bias: NamedTensor?) // weight (out, in)
    }

    /// Imports `data` (an ONNX ModelProto). With `architecture` nil, each known architecture
    /// is tried. With `labels` nil the file's head size is used; a different count keeps a
    /// freshly initialised head of that size.
    public static func importModel(_ data: Data, architecture: Architecture? = nil, labels: Int? = nil,
                                   seed: UInt64 = 0) throws -> Result {
        let graph = try ONNXGraph(data)
        let units = try weightUnits(graph)
        guard case .dense(let headWeight, _)? = units.last else {
            throw EngineError.incompatible("the ONNX graph does not end in a dense (Gemm/MatMul) head")
        }
        let headOutputs = headWeight.shape[0]  // dense weights are 2-D (checked when read)
        let inputChannels = units.first.flatMap { if case .conv(let w, _) = $0 { w.shape[1] } else { nil } } ?? 3
        guard (1...Network.maxLabels).contains(labels ?? headOutputs) else {
            throw EngineError.incompatible("the head has \(labels ?? headOutputs) outputs; at most \(Network.maxLabels)")
        }
        guard (1...Network.maxInputChannels).contains(inputChannels) else {
            throw EngineError.incompatible("the first convolution takes \(inputChannels) channels; at most \(Network.maxInputChannels)")
        }
        var failures: [String] = []
        for candidate in architecture.map({ [$0] }) ?? Architecture.allCases {
            let network = Network(architecture: candidate, labels: labels ?? headOutputs, inputChannels: inputChannels, seed: seed)
            do {
                let (folded, freshHead) = try assign(units, to: network)
                return Result(network: network, headOutputs: headOutputs, foldedBatchNorms: folded, keptFreshHead: freshHead)
            } catch {
                failures.append("\(candidate.rawValue): \(error)")
            }
        }
        throw EngineError.incompatible("the ONNX graph matches no known architecture (\(failures.joined(separator: "; ")))")
    }

    private static func weightUnits(_ graph: ONNXGraph) throws -> [Unit] {
        /// The stored weight named by input `index` of `node`.
        func constant(_ node: ONNXGraph.Node, _ index: Int) throws -> NamedTensor {
            guard index < node.inputs.count else {
                throw EngineError.malformed("a \(node.opType) node has \(node.inputs.count) inputs; input \(index) is missing")
            }
            guard let t = graph.constants[node.inputs[index]] else {
                throw EngineError.unsupported("\(node.opType) input \(node.inputs[index]) is computed, not a stored weight")
            }
            return t
        }
        func optional(_ node: ONNXGraph.Node, _ index: Int) throws -> NamedTensor? {
            index < node.inputs.count && !node.inputs[index].isEmpty ? try constant(node, index) : nil
        }
        var units: [Unit] = []
        var pendingMatMul: NamedTensor?
        for node in graph.nodes {
            switch node.opType {
            case "Conv":
                guard node.intAttributes["group"] ?? 1 == 1 else { throw EngineError.unsupported("grouped convolutions") }
                let weight = try constant(node, 1)
                guard weight.shape.count == 4 else { throw EngineError.malformed("Conv weight \(weight.name) is \(weight.shape), not 4-D") }
                units.append(.conv(weight: weight, bias: try optional(node, 2)))
            case "BatchNormalization":
                units.append(.batchNorm(scale: try constant(node, 1), bias: try constant(node, 2),
                                        mean: try constant(node, 3), variance: try constant(node, 4),
                                        epsilon: node.floatAttributes["epsilon"] ?? 1e-5))
            case "Gemm":
                var w = try constant(node, 1)
                guard w.shape.count == 2 else { throw EngineError.malformed("Gemm weight \(w.name) is \(w.shape), not 2-D") }
                if node.intAttributes["transB"] ?? 0 == 0 { w = transpose(w) }
                units.append(.dense(weight: w, bias: try optional(node, 2)))
            case "MatMul":
                if node.inputs.count > 1, let w = graph.constants[node.inputs[1]], w.shape.count == 2 { pendingMatMul = transpose(w) }
            case "Add":
                if let w = pendingMatMul {
                    let b = node.inputs.dropFirst().first.flatMap { graph.constants[$0] } ?? node.inputs.first.flatMap { graph.constants[$0] }
                    units.append(.dense(weight: w, bias: b))
                    pendingMatMul = nil
                }
            default: continue
            }
        }
        if let w = pendingMatMul { units.append(.dense(weight: w, bias: nil)) }
        return units
    }

    /// A 2-D tensor transposed (callers check the rank).
    private static func transpose(_ t: NamedTensor) -> NamedTensor {
        let rows = t.shape[0], cols = t.shape[1], v = t.floats
        var out = [Float](repeating: 0, count: v.count)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = v[r * cols + c] } }
        return NamedTensor(name: t.name, shape: [cols, rows], floats: out)
    }

    /// Copies `units` into the network in order; returns (folded batch norms, kept fresh head).
    private static func assign(_ units: [Unit], to network: Network) throws -> (Int, Bool) {
        let targets = network.weightUnits
        var source = units.makeIterator()
        var pendingFoldedBias: NamedTensor?
        var folded = 0, freshHead = false
        func set(_ p: Parameter, _ t: NamedTensor) throws {
            guard t.shape == p.shape || (t.values.count == p.count && p.shape.count == 1) else {
                throw EngineError.incompatible("\(p.name) is \(p.shape), the ONNX tensor is \(t.shape)")
            }
            _ = UnsafeMutableBufferPointer(start: p.value, count: p.count).update(fromContentsOf: t.floats)
        }
        for target in targets {
            switch target {
            case .conv(let conv):
                guard case .conv(let w, let b)? = source.next() else { throw EngineError.incompatible("expected a Conv for \(conv.weight.name)") }
                try set(conv.weight, w)
                switch (b, conv.bias) {
                case (let b?, let bias?): try set(bias, b)
                case (let b?, nil): pendingFoldedBias = b // a batch norm was folded into this Conv
                case (nil, let bias?): bias.value.update(repeating: 0, count: bias.count)
                case (nil, nil): pendingFoldedBias = nil
                }
            case .batchNorm(let bn):
                if let foldedBias = pendingFoldedBias {
                    bn.weight.value.update(repeating: 1, count: bn.channels)
                    try set(bn.bias, foldedBias)
                    bn.runningMean.floats = .init(repeating: 0, count: bn.channels)
                    bn.runningVar.floats = .init(repeating: 1 - bn.epsilon, count: bn.channels)
                    pendingFoldedBias = nil
                    folded += 1
                    continue
                }
                guard case .batchNorm(let scale, let bias, let mean, let variance, let epsilon)? = source.next() else {
                    throw EngineError.incompatible("expected a BatchNormalization for \(bn.weight.name)")
                }
                guard abs(epsilon - bn.epsilon) < 1e-9 else { throw EngineError.unsupported("batch-norm epsilon \(epsilon)") }
                try set(bn.weight, scale); try set(bn.bias, bias)
                guard mean.count == bn.channels, variance.count == bn.channels else {
                    throw EngineError.incompatible("\(bn.weight.name) has \(bn.channels) channels, the ONNX node \(mean.count)")
                }
                bn.runningMean.floats = mean.floats
                bn.runningVar.floats = variance.floats
            case .dense(let dense):
                guard case .dense(let w, let b)? = source.next() else { throw EngineError.incompatible("expected a Gemm for \(dense.weight.name)") }
                guard w.shape[1] == dense.inFeatures else {
                    throw EngineError.incompatible("\(dense.weight.name) takes \(dense.inFeatures) features, the ONNX head \(w.shape[1])")
                }
                if w.shape[0] == dense.outFeatures {
                    try set(dense.weight, w)
                    if let b { try set(dense.bias, b) } else { dense.bias.value.update(repeating: 0, count: dense.outFeatures) }
                } else {
                    freshHead = true
                }
            }
        }
        if source.next() != nil { throw EngineError.incompatible("the ONNX graph has weight layers left over") }
        return (folded, freshHead)
    }
}

private extension NamedTensor {
    var count: Int { values.count }
}
