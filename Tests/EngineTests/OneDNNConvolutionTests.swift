import Testing
@testable import Engine

/// The inference convolutions through oneDNN (`FusedConvolution`) against direct loops and
/// against the im2col + OpenBLAS path they replace, and their packed weights made again
/// whenever what they were made from changes.
@Suite("oneDNN convolutions")
struct OneDNNConvolutionTests {
    let kernels = NaiveKernelTests()

    /// y = relu?(conv(x)·scale + shift), by direct loops.
    func naive(_ x: [Float], _ s: Shape, _ w: [Float], _ b: [Float], oc: Int, k: Int, stride: Int, padding: Int,
               scale: [Float], shift: [Float], relu: Bool) -> [Float] {
        let y = kernels.naiveConvolution(x, s, w, b, oc: oc, k: k, stride: stride, padding: padding)
        let plane = y.count / (s.n * oc)
        return y.indices.map { i in
            let o = (i / plane) % oc, v = y[i] * scale[o] + shift[o]
            return relu ? max(v, 0) : v
        }
    }

    @Test("oneDNN convolution with folded batch norm and ReLU against direct loops",
          arguments: [(3, 1, 1), (3, 2, 1), (7, 2, 3), (1, 1, 0), (1, 2, 0), (5, 3, 2)], [1, 3])
    func againstLoops(geometry: (Int, Int, Int), batch: Int) throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let (k, stride, padding) = geometry
        let s = Shape(n: batch, c: 5, h: 13, w: 11), oc = 19
        let store = ParameterStore()
        let conv = Conv2D("conv", store, inChannels: s.c, outChannels: oc, kernelSize: k, stride: stride, padding: padding, bias: true)
        store.allocate()
        let w = randomValues(conv.weight.count, seed: 1), b = randomValues(oc, seed: 2), x = randomValues(s.count, seed: 3)
        set(conv.weight, w); set(conv.bias!, b)
        let scale = randomValues(oc, seed: 4), shift = randomValues(oc, seed: 5)
        for relu in [false, true] {
            let y = Batch(x, s).with {
                conv.forward($0, mode: .inference, epilogue: .init(scale: scale, shift: shift, relu: relu)).values
            }
            #expect(conv.plans.failure == nil)
            expectClose(y, naive(x, s, w, b, oc: oc, k: k, stride: stride, padding: padding, scale: scale, shift: shift, relu: relu),
                        absolute: 1e-4, relative: 1e-4, "conv \(k)/\(stride)/\(padding) relu \(relu), batch \(batch)")
            if relu { #expect(y.contains(0) && y.contains { $0 > 0 }) }
        }
    }

    /// Whole networks: logits through oneDNN equal the im2col path's within 1e-4. Each runs as
    /// one graph (`InferenceGraph`) to its pooled features.
    @Test(arguments: [Architecture.smallCNN, .resnet18, .resnet50, .densenet121])
    func networksAgreeWithTheIm2colPath(architecture: Architecture) throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let network = Network(architecture: architecture, labels: 14, seed: 3)
        // Running statistics away from (0, 1), so the folded batch norms matter.
        for b in network.buffers where b.name.hasSuffix("running_mean") { b.floats = randomValues(b.floats.count, seed: 6, scale: 0.05) }
        for b in network.buffers where b.name.hasSuffix("running_var") { b.floats = randomValues(b.floats.count, seed: 7, scale: 0.1).map { $0 + 1 } }
        let shape = Shape(n: 2, c: 3, h: 64, w: 64)
        let x = Batch(randomValues(shape.count, seed: 8), shape)
        let fast = x.with { network.forward($0, mode: .inference).values }
        let graphed = network.inferenceGraphs.convolutionCount(for: shape)
        #expect(network.inferenceGraphs.refusal == nil, "\(network.inferenceGraphs.refusal ?? "")")
        #expect(graphed == network.convolutions.count)
        for conv in network.convolutions { #expect(conv.plans.failure == nil, "\(conv.weight.name): \(conv.plans.failure ?? "")") }
        for conv in network.convolutions { conv.usesOneDNN = false }
        let reference = x.with { network.forward($0, mode: .inference).values }
        // DenseNet's untrained logits run to ~10⁴ (torchvision's initialisation, no trained
        // statistics), so its agreement is relative.
        expectClose(fast, reference, absolute: 1e-4, relative: 1e-4, "\(architecture.rawValue) logits, oneDNN against im2col")
        #expect(Set(fast).count > 1)
    }

    /// A small CNN and one 32² image to score with it.
    struct Probe {
        let network: Network
        let input = randomValues(3 * 32 * 32, seed: 2)
        init(labels: Int) { network = Network(architecture: .smallCNN, labels: labels, seed: 1) }
        func logits() -> [Float] {
            Batch(input, Shape(n: 1, c: 3, h: 32, w: 32)).with { network.forward($0, mode: .inference).values }
        }
        /// The logits by im2col and OpenBLAS.
        func referenceLogits() -> [Float] {
            for conv in network.convolutions { conv.usesOneDNN = false }
            defer { for conv in network.convolutions { conv.usesOneDNN = true } }
            return logits()
        }
    }

    /// One network scoring batches of different sizes in turn (as a scorer's adaptive batches
    /// do): each size has its graph, they share the packed weights and the activation buffers,
    /// and each gives the im2col path's logits.
    @Test func graphsPerBatchSize() throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let network = Network(architecture: .resnet18, labels: 4, seed: 5)
        func logits(_ n: Int, oneDNN: Bool) -> [Float] {
            for conv in network.convolutions { conv.usesOneDNN = oneDNN }
            let shape = Shape(n: n, c: 3, h: 40, w: 40)
            return Batch(randomValues(shape.count, seed: UInt64(n)), shape).with { network.forward($0, mode: .inference).values }
        }
        for n in [3, 1, 5, 1, 3] {
            let fast = logits(n, oneDNN: true)
            expectClose(fast, logits(n, oneDNN: false), absolute: 1e-4, relative: 1e-4, "batch of \(n)")
            #expect(fast.count == n * 4 && Set(fast).count > 1)
        }
        #expect(network.inferenceGraphs.count == 3 && network.inferenceGraphs.refusal == nil)
        for conv in network.convolutions { #expect(conv.plans.planCount.inference == 0, "\(conv.weight.name) ran layer by layer") }
    }

    /// New weights, new running statistics: the next inference uses them, not the packed copy.
    @Test func packedWeightsFollowChanges() throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let probe = Probe(labels: 3), network = probe.network
        func logits() -> [Float] { probe.logits() }
        func reference() -> [Float] { probe.referenceLogits() }
        let before = logits()
        #expect(network.inferenceGraphs.convolutionCount(for: Shape(n: 1, c: 3, h: 32, w: 32)) == network.convolutions.count,
                "the small CNN did not go through oneDNN as one graph")
        expectClose(before, reference(), absolute: 1e-4, "fresh weights")
        // Weights written through Parameter.value (as loading a version does).
        network.initialize(seed: 9)
        let reseeded = logits()
        #expect(reseeded != before)
        expectClose(reseeded, reference(), absolute: 1e-4, "new weights")
        // An optimiser step writes through the store's flat values.
        let values = network.store.flatValues
        for i in 0..<values.count { values[i] *= 0.5 }
        let halved = logits()
        #expect(halved != reseeded)
        expectClose(halved, reference(), absolute: 1e-4, "weights after a step")
        // Running statistics only (what a training forward changes in a frozen batch norm).
        let mean = try #require(network.buffers.first { $0.name.hasSuffix("running_mean") })
        mean.floats = mean.floats.map { $0 + 0.5 }
        let shifted = logits()
        #expect(shifted != halved)
        expectClose(shifted, reference(), absolute: 1e-4, "new running statistics")
    }

    /// Training only the last stages: the frozen stages run as one inference graph, and the
    /// logits and the trainable parameters' gradients equal those of running every layer in turn.
    @Test(arguments: [TrainableScope.head, .lastStages(1)])
    func frozenStagesRunAsAGraph(scope: TrainableScope) throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let network = Network(architecture: .resnet18, labels: 3, seed: 6)
        network.setTrainable(scope)
        let shape = Shape(n: 4, c: 3, h: 64, w: 64)
        let x = Batch(randomValues(shape.count, seed: 12), shape), dy = Batch(randomValues(4 * 3, seed: 13), Shape(n: 4, c: 3))
        let state = network.floatState
        func step(graphs: Bool) -> (logits: [Float], gradients: [[Float]]) {
            network.usesInferenceGraphs = graphs
            network.floatState = state
            network.store.zeroGradients()
            let logits = x.with { network.forward($0, mode: .training).values }
            dy.with { network.backward($0) }
            return (logits, network.trainableParameters.map(gradient))
        }
        let reference = step(graphs: false), fast = step(graphs: true)
        #expect(network.frozenGraphs.count == 1 && network.frozenGraphs.refusal == nil)
        #expect(network.inferenceGraphs.count == 0)
        expectClose(fast.logits, reference.logits, absolute: 1e-4, relative: 1e-4, "logits")
        #expect(!fast.gradients.isEmpty && fast.gradients.count < network.parameters.count)
        for (p, (a, b)) in zip(network.trainableParameters, zip(fast.gradients, reference.gradients)) {
            expectClose(a, b, absolute: 1e-4, relative: 1e-3, "∂\(p.name)")
        }
        withExtendedLifetime(x) {}
    }

    /// A training step through oneDNN computes the im2col path's logits and gradients (every
    /// parameter, to 2% of its norm), and backward adds into the gradients rather than
    /// overwriting them. (Not
    /// DenseNet-121 here: through 120 training-mode batch norms float32 rounding grows to ~1e-1 in
    /// the first layers' gradients, in either path and in PyTorch's float32 alike (checked against
    /// PyTorch in float64); its dense block's forward and backward are checked against PyTorch in
    /// LayerReferenceTests, and its layers' shapes below.)
    @Test(arguments: [Architecture.smallCNN, .resnet18])
    func trainingAgreesWithTheIm2colPath(architecture: Architecture) throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let network = Network(architecture: architecture, labels: 5, seed: 4)
        // 64² and 4 images: the deepest batch norms see 16 values per channel (at 32² and 2
        // images, 2 values: their statistics amplify rounding differences a million-fold).
        let shape = Shape(n: 4, c: 3, h: 64, w: 64)
        let input = randomValues(shape.count, seed: 10), dLogits = randomValues(4 * 5, seed: 11)
        let state = network.floatState
        func step(oneDNN: Bool, times: Int = 1) -> (logits: [Float], gradients: [[Float]]) {
            for conv in network.convolutions { conv.usesOneDNN = oneDNN }
            network.floatState = state
            network.store.zeroGradients()
            var logits: [Float] = []
            // The input stays alive until backward, which reads it.
            let x = Batch(input, shape), dy = Batch(dLogits, Shape(n: 4, c: 5))
            for _ in 0..<times {
                logits = x.with { network.forward($0, mode: .training).values }
                dy.with { network.backward($0) }
            }
            withExtendedLifetime(x) {}
            return (logits, network.parameters.map(gradient))
        }
        let reference = step(oneDNN: false), fast = step(oneDNN: true)
        for conv in network.convolutions {
            #expect(conv.plans.failure == nil && conv.plans.planCount.training == 1, "\(conv.weight.name): \(conv.plans.failure ?? "not run")")
        }
        expectClose(fast.logits, reference.logits, absolute: 1e-4, "\(architecture.rawValue) training logits")
        // Every gradient within 2% of the im2col path's (relative L2 norm of the difference).
        // Not element by element: where the two paths' float32 rounding puts a pre-ReLU value on
        // the other side of 0, or makes another element of a 2x2 window the maximum, that
        // position's whole gradient moves, and the weights below it change in every element of
        // its output channel. On an AVX2 machine that puts thousands of elements outside
        // 1e-4 + 1e-3·|ref| while the norms differ by at most 0.93% (the AVX-512 machine's
        // kernels round closer to OpenBLAS, and element-wise passed there). A gradient missing,
        // overwritten or doubled is 100% off; the two-backwards check below is element-wise.
        for (p, (a, b)) in zip(network.parameters, zip(fast.gradients, reference.gradients)) {
            let difference = zip(a, b).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
            let size = b.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(size > 0 && difference <= 0.02 * size,
                    "\(architecture.rawValue) ∂\(p.name): the paths differ by \(difference / size) of the gradient's norm")
        }
        #expect(fast.gradients.contains { $0.contains { $0 != 0 } })
        let twice = step(oneDNN: true, times: 2)
        for (p, (a, b)) in zip(network.parameters, zip(twice.gradients, fast.gradients)) where p.shape.count == 4 {
            expectClose(a, b.map { 2 * $0 }, absolute: 1e-4, relative: 1e-3, "\(architecture.rawValue) ∂\(p.name) after two backwards")
        }
    }

    /// Training convolutions of DenseNet's and ResNet's widths (where oneDNN picks other
    /// kernels than for a few channels) against direct loops: output, ∂input, ∂weight.
    @Test(arguments: [(96, 128, 1, 1, 0), (128, 32, 3, 1, 1), (256, 128, 1, 1, 0), (896, 128, 1, 1, 0), (864, 128, 1, 1, 0), (64, 128, 1, 2, 0), (64, 64, 3, 1, 1), (128, 256, 3, 1, 1), (3, 32, 3, 1, 1)], [8, 4])
    func wideTrainingConvolutions(shape: (Int, Int, Int, Int, Int), side: Int) throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let (c, oc, k, stride, padding) = shape
        let s = Shape(n: 4, c: c, h: side, w: side)
        let store = ParameterStore()
        let conv = Conv2D("conv", store, inChannels: c, outChannels: oc, kernelSize: k, stride: stride, padding: padding)
        store.allocate()
        let w = randomValues(conv.weight.count, seed: 1, scale: 0.1), x = randomValues(s.count, seed: 2)
        set(conv.weight, w)
        let input = Batch(x, s)
        let y = input.with { conv.forward($0, mode: .training).values }
        let label = "\(c)→\(oc) \(k)/\(stride)/\(padding) at \(side)²"
        expectClose(y, kernels.naiveConvolution(x, s, w, nil, oc: oc, k: k, stride: stride, padding: padding),
                    absolute: 1e-4, relative: 1e-4, label + " forward")
        let dy = Batch(randomValues(y.count, seed: 3), conv.outputShape(for: s))
        store.zeroGradients()
        let dx = dy.with { conv.backward($0, inputGradient: true).values }
        let naive = kernels.naiveConvolutionBackward(x, s, w, dy.activation.values, oc: oc, k: k, stride: stride, padding: padding)
        expectClose(dx, naive.dx, absolute: 1e-4, relative: 1e-4, label + " dx")
        expectClose(gradient(conv.weight), naive.dw, absolute: 1e-4, relative: 1e-4, label + " dW")
        #expect(conv.plans.failure == nil)
        withExtendedLifetime(input) {}
    }

    /// Weights that overflow once the batch norm is folded in are not handed to oneDNN (whose
    /// ReLU turns NaN into 0): the output shows the overflow, as the im2col path's does, and
    /// finite weights loaded afterwards go through oneDNN again.
    @Test func overflowingWeightsStayVisible() throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let probe = Probe(labels: 2), network = probe.network
        for p in network.parameters { let v = p.value; for i in 0..<p.count { v[i] = i % 2 == 0 ? 3e37 : -3e37 } }
        #expect(probe.logits().contains { !$0.isFinite })
        for conv in network.convolutions { #expect(conv.plans.planCount.inference == 0, "\(conv.weight.name) went through oneDNN") }
        network.initialize(seed: 3)
        let fine = probe.logits()
        #expect(fine.allSatisfy { $0.isFinite })
        expectClose(fine, probe.referenceLogits(), absolute: 1e-4, "finite weights again")
        #expect(network.inferenceGraphs.convolutionCount(for: Shape(n: 1, c: 3, h: 32, w: 32)) == network.convolutions.count)
        for conv in network.convolutions { #expect(conv.plans.failure == nil) }
    }
}
