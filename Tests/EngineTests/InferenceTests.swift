import Testing
@testable import Engine

@Suite("Inference")
struct InferenceTests {
    /// A batch scores each image as if alone, and buffers reused across batches of other sizes
    /// change nothing: per-image, batch of 3, then per-image again agree within 1e-5.
    @Test(arguments: [Architecture.smallCNN, .resnet18, .densenet121])
    func batchesAndReuse(architecture: Architecture) {
        let network = Network(architecture: architecture, labels: 4, seed: 5)
        let size = architecture == .smallCNN ? 32 : 64
        let per = 3 * size * size
        let images = (0..<3).map { randomValues(per, seed: UInt64(10 + $0)) }
        let single = Shape(n: 1, c: 3, h: size, w: size)
        let alone = images.map { network.probabilities(batch: $0, shape: single)[0] }
        let together = network.probabilities(batch: images.flatMap { $0 }, shape: Shape(n: 3, c: 3, h: size, w: size))
        let again = images.map { network.probabilities(batch: $0, shape: single)[0] }
        for i in 0..<3 {
            expectClose(together[i], alone[i], absolute: 1e-5, "\(architecture.rawValue) image \(i) in a batch")
            #expect(again[i] == alone[i])
        }
    }

    /// The fused inference path (conv + batch norm + ReLU in one pass) equals the layers run
    /// one by one with running statistics.
    @Test func fusedEqualsUnfused() {
        let store = ParameterStore()
        let conv = Conv2D("c", store, inChannels: 3, outChannels: 5, kernelSize: 3, padding: 1, bias: true)
        let bn = BatchNorm2D("b", store, channels: 5)
        let relu = ReLU()
        store.allocate()
        for p in store.parameters { set(p, randomValues(p.count, seed: UInt64(p.offset) + 1)) }
        bn.runningMean.floats = randomValues(5, seed: 7, scale: 0.3)
        bn.runningVar.floats = randomValues(5, seed: 8, scale: 0.5).map { $0 + 1 }
        let x = Batch(randomValues(2 * 3 * 36, seed: 9), Shape(n: 2, c: 3, h: 6, w: 6))
        let fused = x.with { Sequential([conv, bn, relu]).forward($0, mode: .inference).values }
        let stepwise = x.with { relu.forward(bn.forward(conv.forward($0, mode: .inference), mode: .inference), mode: .inference).values }
        expectClose(fused, stepwise, absolute: 1e-6, "fused conv-bn-relu")
    }

    /// A batch norm carrying its ReLU equals a batch norm followed by a ReLU layer, forward and
    /// backward, in training (the fused path against the composition it replaces).
    @Test func batchNormWithReLUEqualsTheTwoLayers() {
        func make() -> (BatchNorm2D, BatchNorm2D, ParameterStore, ParameterStore) {
            let a = ParameterStore(), b = ParameterStore()
            let fused = BatchNorm2D("bn", a, channels: 4, relu: true), plain = BatchNorm2D("bn", b, channels: 4)
            a.allocate(); b.allocate()
            for (p, q) in zip(a.parameters, b.parameters) { let v = randomValues(p.count, seed: UInt64(p.offset) + 3); set(p, v); set(q, v) }
            return (fused, plain, a, b)
        }
        let (fused, plain, a, b) = make()
        let relu = ReLU()
        let shape = Shape(n: 3, c: 4, h: 5, w: 6)
        let x = Batch(randomValues(shape.count, seed: 30), shape), dy = Batch(randomValues(shape.count, seed: 31), shape)
        let yFused = x.with { fused.forward($0, mode: .training).values }
        let yPlain = x.with { relu.forward(plain.forward($0, mode: .training), mode: .training).values }
        #expect(yFused == yPlain)
        let dFused = dy.with { fused.backward($0, inputGradient: true).values }
        let dPlain = dy.with { plain.backward(relu.backward($0, inputGradient: true), inputGradient: true).values }
        expectClose(dFused, dPlain, absolute: 1e-6, "∂input, fused against layered")
        for (p, q) in zip(a.parameters, b.parameters) { expectClose(gradient(p), gradient(q), absolute: 1e-6, "∂\(p.name)") }
        #expect(yFused.contains(0) && yFused.contains { $0 > 0 })
    }
}
