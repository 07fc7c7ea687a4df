import Testing
@testable import Engine

/// Every backward pass against central finite differences of its own forward pass.
///
/// The loss is L = Σ r·y for a fixed random r, so ∂L/∂y = r. For up to 24 sampled inputs and
/// parameters, (L(v + h) − L(v − h)) / 2h must match the analytic gradient within
/// |numeric − analytic| ≤ 2e-3 + 2e-2·|analytic| (h = 1e-3, small enough that no ReLU kink
/// inside a composite block is crossed in practice; float32 forward, loss summed in
/// double). Inputs are drawn away from the kinks of ReLU and max pooling.
@Suite("Backward passes against finite differences")
struct FiniteDifferenceTests {
    static let h: Float = 1e-3

    /// Checks ∂L/∂input and ∂L/∂parameters of `layer`, built on `store`.
    func check(_ name: String, _ layer: Layer, store: ParameterStore, shape: Shape, seed: UInt64,
               input: [Float]? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let x = input ?? randomValues(shape.count, seed: seed)
        let outShape = layer.outputShape(for: shape)
        let r = randomValues(outShape.count, seed: seed + 1)
        func loss(_ values: [Float]) -> Double {
            Batch(values, shape).with { input in
                let y = layer.forward(input, mode: .training)
                return zip(y.values, r).reduce(0.0) { $0 + Double($1.0 * $1.1) }
            }
        }
        // Analytic gradients.
        store.zeroGradients()
        let batch = Batch(x, shape), dy = Batch(r, outShape)
        let dx = batch.with { input in
            _ = layer.forward(input, mode: .training)
            return dy.with { layer.backward($0, inputGradient: true).values }
        }
        let paramGrads = layer.parameters.map(gradient)
        var worst: Float = 0
        func compare(_ numeric: Double, _ analytic: Float, _ what: String) {
            let error = abs(Float(numeric) - analytic)
            worst = max(worst, error / (2e-3 + 2e-2 * abs(analytic)))
            #expect(error <= 2e-3 + 2e-2 * abs(analytic), "\(name) \(what): numeric \(numeric), analytic \(analytic)",
                    sourceLocation: sourceLocation)
        }
        for i in sampled(x.count, seed: seed) {
            var plus = x, minus = x
            plus[i] += Self.h; minus[i] -= Self.h
            compare((loss(plus) - loss(minus)) / Double(2 * Self.h), dx[i], "∂input[\(i)]")
        }
        for (p, analytic) in zip(layer.parameters, paramGrads) {
            for i in sampled(p.count, seed: seed + 2) {
                let original = p.value[i]
                p.value[i] = original + Self.h; let lp = loss(x)
                p.value[i] = original - Self.h; let lm = loss(x)
                p.value[i] = original
                compare((lp - lm) / Double(2 * Self.h), analytic[i], "∂\(p.name)[\(i)]")
            }
        }
        print("  \(name): worst error / tolerance \(worst)")
    }

    func sampled(_ count: Int, seed: UInt64) -> [Int] {
        guard count > 24 else { return Array(0..<count) }
        var rng = SeededGenerator(seed: seed)
        return (0..<24).map { _ in Int(rng.next() % UInt64(count)) }
    }

    /// Values in ±[0.1, 1], spaced so no two are within 2h (no ties, no kinks crossed).
    func separated(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        var values = (0..<count).map { Float($0) * 0.9 / Float(count) + 0.1 }
        values.shuffle(using: &rng)
        return values.enumerated().map { $0.offset % 2 == 0 ? $0.element : -$0.element }
    }

    func randomize(_ store: ParameterStore, seed: UInt64) {
        for p in store.parameters { set(p, randomValues(p.count, seed: seed &+ UInt64(p.offset), scale: 0.5)) }
    }

    @Test("convolution, both the per-image and the batched path", arguments: [0, 1024])
    func convolution(batchedPlaneLimit: Int) {
        for (k, stride, padding, bias) in [(3, 1, 1, true), (3, 2, 1, false), (1, 1, 0, false), (1, 2, 0, true), (5, 2, 2, false)] {
            let store = ParameterStore()
            let conv = Conv2D("conv", store, inChannels: 3, outChannels: 4, kernelSize: k, stride: stride, padding: padding, bias: bias)
            conv.batchedPlaneLimit = batchedPlaneLimit
            store.allocate(); randomize(store, seed: 10)
            check("conv \(k)x\(k)/\(stride) pad \(padding)", conv, store: store, shape: Shape(n: 2, c: 3, h: 7, w: 6), seed: 11)
        }
    }

    @Test func batchNormTraining() {
        let store = ParameterStore()
        let bn = BatchNorm2D("bn", store, channels: 3)
        store.allocate(); randomize(store, seed: 20)
        check("batch norm", bn, store: store, shape: Shape(n: 3, c: 3, h: 4, w: 5), seed: 21)
    }

    @Test func poolingAndActivations() {
        let s = Shape(n: 2, c: 2, h: 6, w: 7)
        check("relu", ReLU(), store: ParameterStore(), shape: s, seed: 30, input: separated(s.count, seed: 30))
        check("max pool 3/2 pad 1", MaxPool2D(kernelSize: 3, stride: 2, padding: 1), store: ParameterStore(), shape: s, seed: 31,
              input: separated(s.count, seed: 31))
        check("max pool 2/2", MaxPool2D(kernelSize: 2, stride: 2), store: ParameterStore(), shape: s, seed: 32,
              input: separated(s.count, seed: 32))
        check("average pool 2/2", AvgPool2D(kernelSize: 2, stride: 2), store: ParameterStore(), shape: s, seed: 33)
        check("global average pool", GlobalAvgPool(), store: ParameterStore(), shape: s, seed: 34)
    }

    @Test func dense() {
        let store = ParameterStore()
        let dense = Dense("fc", store, inFeatures: 12, outFeatures: 5)
        store.allocate(); randomize(store, seed: 40)
        check("dense", dense, store: store, shape: Shape(n: 3, c: 3, h: 2, w: 2), seed: 41)
    }

    @Test func residualBlocks() {
        let store = ParameterStore()
        let block = ResidualBlock(main: [
            Conv2D("c1", store, inChannels: 3, outChannels: 4, kernelSize: 3, stride: 2, padding: 1),
            BatchNorm2D("b1", store, channels: 4), ReLU(),
            Conv2D("c2", store, inChannels: 4, outChannels: 4, kernelSize: 3, padding: 1),
            BatchNorm2D("b2", store, channels: 4),
        ], shortcut: [Conv2D("d0", store, inChannels: 3, outChannels: 4, kernelSize: 1, stride: 2),
                      BatchNorm2D("d1", store, channels: 4)])
        store.allocate(); randomize(store, seed: 50)
        check("residual block with downsample", block, store: store, shape: Shape(n: 2, c: 3, h: 6, w: 6), seed: 51)

        let identityStore = ParameterStore()
        let identity = ResidualBlock(main: [
            Conv2D("c1", identityStore, inChannels: 3, outChannels: 3, kernelSize: 3, padding: 1),
            BatchNorm2D("b1", identityStore, channels: 3),
        ], shortcut: nil)
        identityStore.allocate(); randomize(identityStore, seed: 52)
        check("residual block, identity shortcut", identity, store: identityStore, shape: Shape(n: 2, c: 3, h: 5, w: 5), seed: 53)
    }

    @Test func denseBlock() {
        let store = ParameterStore()
        let layers = (0..<3).map { i in
            Sequential([BatchNorm2D("n1.\(i)", store, channels: 4 + 2 * i), ReLU(),
                        Conv2D("c1.\(i)", store, inChannels: 4 + 2 * i, outChannels: 3, kernelSize: 1),
                        BatchNorm2D("n2.\(i)", store, channels: 3), ReLU(),
                        Conv2D("c2.\(i)", store, inChannels: 3, outChannels: 2, kernelSize: 3, padding: 1)])
        }
        let block = DenseBlock(layers: layers, inputChannels: 4, growth: 2)
        store.allocate(); randomize(store, seed: 60)
        check("dense block", block, store: store, shape: Shape(n: 2, c: 4, h: 4, w: 4), seed: 61)
    }

    @Test func sigmoidCrossEntropy() {
        let weights: [Float] = [1, 4, 0.5]
        let loss = SigmoidCrossEntropy(labels: 3, positiveWeights: weights)
        let z = randomValues(12, seed: 70, scale: 3)
        let targets: [Float] = [1, 0, 1, 0, 0, 1, 1, 1, 0, 0.5, 0, 1]
        let shape = Shape(n: 4, c: 3)
        let analytic = Batch(z, shape).with { input in
            _ = loss.forward(input, targets: targets)
            return loss.backward().values
        }
        for i in 0..<z.count {
            var plus = z, minus = z
            plus[i] += Self.h; minus[i] -= Self.h
            let numeric = (Batch(plus, shape).with { loss.forward($0, targets: targets) }
                - Batch(minus, shape).with { loss.forward($0, targets: targets) }) / (2 * Self.h)
            #expect(abs(numeric - analytic[i]) <= 1e-3 + 2e-2 * abs(analytic[i]), "∂z[\(i)]: \(numeric) vs \(analytic[i])")
        }
    }

    @Test("class-balanced weights: negatives/positives per label in the batch, within their range, 1 without both")
    func batchBalancedWeights() {
        // Two labels over five images: label 0 has 1 positive (4/1), label 1 has none.
        let targets: [Float] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(SigmoidCrossEntropy.batchBalancedWeights(targets: targets, labels: 2) == [4, 1])
        #expect(SigmoidCrossEntropy.batchBalancedWeights(targets: targets, labels: 2, range: 0.5...2) == [2, 1])
        // All positive: 1; 3 positives of 4: 1/3; 0.5 counts as positive.
        #expect(SigmoidCrossEntropy.batchBalancedWeights(targets: [1, 1, 1], labels: 1) == [1])
        #expect(SigmoidCrossEntropy.batchBalancedWeights(targets: [1, 0.5, 1, 0], labels: 1) == [Float(1) / 3])
        #expect(SigmoidCrossEntropy.batchBalancedWeights(targets: [1, 0], labels: 0) == [])
    }

    @Test func channelConcat() {
        let concat = ChannelConcat()
        let a = Batch(randomValues(2 * 2 * 9, seed: 80), Shape(n: 2, c: 2, h: 3, w: 3))
        let b = Batch(randomValues(2 * 3 * 9, seed: 81), Shape(n: 2, c: 3, h: 3, w: 3))
        let y = concat.forward([a.activation, b.activation])
        #expect(y.shape == Shape(n: 2, c: 5, h: 3, w: 3))
        // Image 1, channel 3 is b's image 1, channel 1.
        #expect(Array(UnsafeBufferPointer(start: y.image(1) + 27, count: 9)) == Array(UnsafeBufferPointer(start: b.activation.image(1) + 9, count: 9)))
        // The loss Σ r·y is linear, so its gradient is r split back: check it exactly.
        let r = Batch(randomValues(y.shape.count, seed: 82), y.shape)
        let parts = concat.backward(r.activation)
        #expect(parts[0].shape == a.shape && parts[1].shape == b.shape)
        #expect(Array(UnsafeBufferPointer(start: parts[1].image(1), count: 27)) == Array(UnsafeBufferPointer(start: r.activation.image(1) + 18, count: 27)))
        withExtendedLifetime([a, b, r]) {}
    }

    @Test func dropoutMasksForwardAndBackwardAlike() {
        let dropout = Dropout(probability: 0.3, seed: 90)
        let x = Batch(separated(2000, seed: 91), Shape(n: 2, c: 1000))
        let y = dropout.forward(x.activation, mode: .training).values
        let r = Batch(randomValues(2000, seed: 92), x.shape)
        let dx = dropout.backward(r.activation, inputGradient: true).values
        let zeroed = y.filter { $0 == 0 }.count
        #expect(abs(Float(zeroed) / 2000 - 0.3) < 0.05, "\(zeroed) of 2000 dropped")
        for i in 0..<2000 {
            // y = m·x, so ∂L/∂x = m·r with the same m.
            let m = y[i] / x.activation.data[i]
            #expect(abs(dx[i] - m * r.activation.data[i]) <= 1e-5, "element \(i)")
            #expect(m == 0 || abs(m - 1 / 0.7) < 1e-5)
        }
        #expect(dropout.forward(x.activation, mode: .inference).values == x.activation.values)
        withExtendedLifetime([x, r]) {}
    }
    @Test("a network's head dropout: off by default, the same mask again for the same seed, another for another, never in inference")
    func headDropoutIsSeededAndTrainingOnly() {
        let network = Network(architecture: .smallCNN, labels: 3, inputChannels: 1, seed: 4)
        let shape = Shape(n: 4, c: 1, h: 16, w: 16)
        let x = Batch(randomValues(shape.count, seed: 93), shape)
        func logits(_ mode: Mode) -> [Float] { network.forward(x.activation, mode: mode).values }
        // Only the head trains: the features run on their running statistics, so without
        // dropout a training forward is an inference one.
        network.setTrainable(.head)
        let plain = logits(.inference)
        let undropped = logits(.training)
        #expect(undropped == plain)
        network.setHeadDropout(probability: 0.5, seed: 7)
        let first = logits(.training)
        network.setHeadDropout(probability: 0.5, seed: 7)
        #expect(logits(.training) == first, "the same seed drops the same features")
        network.setHeadDropout(probability: 0.5, seed: 8)
        #expect(logits(.training) != first, "another seed, another mask")
        #expect(first != undropped)
        #expect(logits(.inference) == plain, "inference never drops")
        network.setHeadDropout(probability: .nan, seed: 7)
        #expect(logits(.training) == undropped, "a probability that is not a number turns dropout off")
        network.setHeadDropout(probability: 0, seed: 7)
        #expect(logits(.training) == undropped)
        withExtendedLifetime(x) {}
    }
}
