import Foundation
import Testing
@testable import Engine

/// Whole networks against torchvision (PyTorch) and ONNX Runtime, on the same weights and
/// inputs, and training steps against torch.optim. Errors are printed; tolerances per check.
@Suite("Networks against PyTorch and ONNX Runtime", .enabled(if: Reference.available, "XRAY_ENGINE_REFERENCE not set: run Ops/test"))
struct NetworkReferenceTests {
    func logits(_ network: Network, _ x: NamedTensor) -> [Float] {
        Batch(x).with { network.forward($0, mode: .inference).values }
    }

    /// torchvision's state dict loads by name; inference logits agree within 2e-3 absolute
    /// (summation order differs across ~20-120 convolutions; logits are O(1)).
    @Test(arguments: [Architecture.resnet18, .densenet121])
    func torchvisionForward(architecture: Architecture) throws {
        let network = Network(architecture: architecture, labels: 14)
        let report = try network.load(try SafeTensors.read(Reference.url("\(architecture.rawValue).safetensors")).tensors)
        #expect(!report.keptFreshHead)
        #expect(report.loaded == network.parameters.count + network.buffers.count)
        let (io, _) = try Reference.load("\(architecture.rawValue)_io")
        expectClose(logits(network, io["x"]!), io["logits"]!.floats, absolute: 2e-3, "\(architecture.rawValue) logits")
    }

    @Test func resnet50StateDictNamesAndShapesMatchTorchvision() throws {
        let network = Network(architecture: .resnet50, labels: 14)
        let file = try SafeTensors.read(Reference.url("resnet50.safetensors"))
        #expect(Set(file.tensors.map(\.name)) == Set(network.stateDict().map(\.name)))
        let report = try network.load(file.tensors)
        #expect(report.loaded == file.tensors.count)
    }

    @Test func anImageNetHeadIsReplacedOnlyWhenAllowed() throws {
        let file = try SafeTensors.read(Reference.url("resnet18.safetensors"))
        let network = Network(architecture: .resnet18, labels: 1)
        #expect(throws: EngineError.self) { try network.load(file.tensors) }
        let report = try network.load(file.tensors, allowHeadMismatch: true)
        #expect(report.keptFreshHead)
    }

    /// An ONNX ResNet-18 whose exporter folded every batch norm into its convolution: logits
    /// against ONNX Runtime's within 2e-3.
    @Test func onnxWithFoldedBatchNorms() throws {
        let result = try ONNXImporter.importModel(try Data(contentsOf: Reference.url("resnet18_folded.onnx")))
        #expect(result.network.architecture == .resnet18)
        #expect(result.foldedBatchNorms == 20)
        let (io, _) = try Reference.load("resnet18_folded_io")
        expectClose(logits(result.network, io["x"]!), io["output"]!.floats, absolute: 2e-3, "ONNX ResNet-18 logits")
    }

    /// CheXNet's shape: DenseNet-121 ending in Linear + Sigmoid, exported without folding:
    /// probabilities against ONNX Runtime's within 5e-4.
    @Test func onnxCheXNetStyleDenseNet() throws {
        let result = try ONNXImporter.importModel(try Data(contentsOf: Reference.url("chexnet_densenet121.onnx")))
        #expect(result.network.architecture == .densenet121)
        #expect(result.headOutputs == 14)
        let (io, _) = try Reference.load("chexnet_densenet121_io")
        let x = io["x"]!
        let probabilities = result.network.probabilities(batch: x.floats, shape: Shape(n: 1, c: 3, h: 224, w: 224))[0]
        expectClose(probabilities, io["output"]!.floats, absolute: 5e-4, "ONNX CheXNet-style probabilities")
    }

    /// Four Adam steps of the small CNN on the same initial weights and batches as PyTorch:
    /// first-step gradients within 1e-4 absolute or 1e-3 relative, each step's loss within
    /// 1e-4 relative. Final weights within 5e-3 absolute: Adam moves a weight by about
    /// lr·sign(g) = 1e-2 whatever |g| is, so for gradients at float-noise level (convolutions
    /// feeding a batch norm have many) the two implementations' rounding picks the sign.
    @Test func smallCNNTrainingStepsMatchPyTorch() throws {
        let file = try SafeTensors.read(Reference.url("small_cnn_training.safetensors"))
        let t = file.byName
        let network = Network(architecture: .smallCNN, labels: 3)
        try network.load(file.tensors.filter { $0.name.hasPrefix("features") || $0.name.hasPrefix("classifier") })
        let optimizer = Optimizer(OptimizerSettings(kind: .adam, weightDecay: 1e-4), parameterCount: network.store.count)
        let loss = SigmoidCrossEntropy(labels: 3, positiveWeights: t["pos_weight"]!.floats)
        let xs = t["xs"]!, ys = t["ys"]!.floats, expected = t["losses"]!.floats
        let steps = xs.shape[0], batch = xs.shape[1], per = xs.shape.dropFirst(2).reduce(1, *)
        for step in 0..<steps {
            let x = Batch(Array(xs.floats[(step * batch * per)..<((step + 1) * batch * per)]), Shape(n: batch, c: 3, h: 32, w: 32))
            network.store.zeroGradients()
            let value = x.with { loss.forward(network.forward($0, mode: .training), targets: Array(ys[(step * batch * 3)..<((step + 1) * batch * 3)])) }
            network.backward(loss.backward())
            if step == 0 {
                for p in network.parameters {
                    expectClose(gradient(p), t["grad." + p.name]!.floats, absolute: 1e-4, relative: 1e-3, "step 1 ∂\(p.name)")
                }
            }
            optimizer.apply(to: network.store, learningRate: 1e-2)
            expectClose([value], [expected[step]], absolute: 0, relative: 1e-4, "loss at step \(step + 1)")
        }
        for p in network.parameters {
            expectClose(p.values, t["final." + p.name]!.floats, absolute: 5e-3, "final \(p.name)")
        }
        for b in network.buffers where !b.floats.isEmpty {
            expectClose(b.floats, t["final." + b.name]!.floats, absolute: 1e-3, "final \(b.name)")
        }
    }

    /// SGD (momentum, Nesterov), Adam and AdamW with weight decay, five steps of the same
    /// gradients as torch.optim: parameters within 1e-6.
    @Test(arguments: [("sgd", OptimizerSettings(kind: .sgd, momentum: 0.9, weightDecay: 0.01), Float(0.1)),
                      ("sgd_nesterov", OptimizerSettings(kind: .sgd, momentum: 0.9, nesterov: true, weightDecay: 0.01), 0.1),
                      ("adam", OptimizerSettings(kind: .adam, weightDecay: 0.01), 0.05),
                      ("adamw", OptimizerSettings(kind: .adamw, weightDecay: 0.1), 0.05)])
    func optimizerMatchesTorch(name: String, settings: OptimizerSettings, learningRate: Float) throws {
        let (t, _) = try Reference.load("optimizers")
        let store = ParameterStore()
        let p = store.make("p", [10])
        store.allocate()
        set(p, t["p0"]!.floats)
        let optimizer = Optimizer(settings, parameterCount: store.count)
        let g = t["gradients"]!.floats
        for step in 0..<5 {
            g[(step * 10)..<((step + 1) * 10)].enumerated().forEach { p.gradient[$0.offset] = $0.element }
            optimizer.apply(to: store, learningRate: learningRate)
        }
        expectClose(p.values, t[name]!.floats, absolute: 1e-6, name)
    }
}
