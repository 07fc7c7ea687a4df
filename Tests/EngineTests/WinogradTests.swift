import Testing
@testable import Engine

/// Winograd's F(4x4, 3x3) (`WinogradTransforms`, `WinogradConvolution`) against a direct
/// convolution in double, and whole networks whose inference graphs use it against the same
/// networks layer by layer (oneDNN's direct convolutions). Tolerance 1e-4 absolute and relative:
/// the transforms' float32 rounding leaves up to about 2e-5 on outputs of size 1 with 128 channels.
@Suite("Winograd convolutions")
struct WinogradTests {
    /// y = epilogue(conv3x3(x) + b) in double, NHWC; `y` holds what a sum adds.
    func direct(_ x: [Float], _ s: Shape, _ w: [Float], _ b: [Float], oc: Int,
                epilogue: WinogradTransforms.Epilogue, onto y: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: s.n * s.h * s.w * oc)
        for n in 0..<s.n {
            for row in 0..<s.h {
                for column in 0..<s.w {
                    for o in 0..<oc {
                        var sum = Double(b[o])
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let iy = row + ky - 1, ix = column + kx - 1
                                guard iy >= 0 && iy < s.h && ix >= 0 && ix < s.w else { continue }
                                for c in 0..<s.c {
                                    sum += Double(x[((n * s.h + iy) * s.w + ix) * s.c + c]) * Double(w[((o * s.c + c) * 3 + ky) * 3 + kx])
                                }
                            }
                        }
                        let at = ((n * s.h + row) * s.w + column) * oc + o
                        if epilogue.relu { sum = max(sum, 0) }
                        if epilogue.sum { sum += Double(y[at]) }
                        if epilogue.reluAfterSum { sum = max(sum, 0) }
                        out[at] = Float(sum)
                    }
                }
            }
        }
        return out
    }

    static let cases: [(Shape, Int)] = [
        (Shape(n: 2, c: 64, h: 20, w: 17), 64),  // partial tiles at the bottom and right
        (Shape(n: 3, c: 64, h: 36, w: 25), 96),  // 189 tiles: several chunks, the last one partial
        (Shape(n: 1, c: 128, h: 30, w: 41), 64),
        (Shape(n: 2, c: 128, h: 28, w: 27), 32),  // DenseNet-121's 128 → 32, taken on AVX2 machines
    ]

    @Test(arguments: [[], [ConvolutionPostOp.relu], [.sum, .relu], [.relu, .sum, .relu]], [0, 1, 2, 3])
    func matchesTheDirectConvolution(postOps: [ConvolutionPostOp], caseIndex: Int) throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let (s, oc) = Self.cases[caseIndex]
        let epilogue = try #require(WinogradTransforms.Epilogue(postOps))
        let x = randomValues(s.count, seed: 21)
        let w = randomValues(oc * s.c * 9, seed: 22, scale: 1 / Float(3 * s.c).squareRoot())
        let b = randomValues(oc, seed: 23, scale: 0.1)
        let before = randomValues(s.n * s.h * s.w * oc, seed: 24)
        let geometry = ConvGeometry(channels: s.c, height: s.h, width: s.w, kernelH: 3, kernelW: 3, stride: 1, padding: 1)
        let convolution = try #require(try WinogradConvolution(geometry: geometry, batch: s.n, outChannels: oc, epilogue: epilogue,
                                                               minimumChannels: WinogradConvolution.minimumChannelsWithAVX2),
                                       "the convolution is too small for Winograd on \(Parallel.workers) workers")
        let packed = try w.withUnsafeBufferPointer { weights in
            try b.withUnsafeBufferPointer { bias in
                try PackedWeights(winogradLayout: convolution.weightsLayout, shape: [oc, s.c, 3, 3], weights: weights.baseAddress!,
                                  bias: bias.baseAddress, scale: .init(repeating: 1, count: oc), shift: .init(repeating: 0, count: oc))
            }
        }
        var y = before
        try x.withUnsafeBufferPointer { source in
            try y.withUnsafeMutableBufferPointer { destination in
                try convolution.run(source: source.baseAddress!, destination: destination.baseAddress!, weights: packed,
                                    buffers: (0..<convolution.bufferCount).map { _ in FloatBuffer() })
            }
        }
        let expected = direct(x, s, w, b, oc: oc, epilogue: epilogue, onto: before)
        expectClose(y, expected, absolute: 1e-4, relative: 1e-4, "Winograd \(s) → \(oc), \(postOps)")
        #expect(Set(y).count > y.count / 4, "the outputs are not varied enough to compare")
    }

    @Test func refusesWhatItCannotCompute() throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let big = ConvGeometry(channels: 64, height: 64, width: 64, kernelH: 3, kernelW: 3, stride: 1, padding: 1)
        var strided = big; strided.stride = 2
        var wide = big; wide.kernelH = 5; wide.kernelW = 5; wide.padding = 2
        var odd = big; odd.channels = 3
        for g in [strided, wide, odd] {
            #expect(try WinogradConvolution(geometry: g, batch: 4, outChannels: 64, epilogue: .init()) == nil)
        }
        // DenseNet's 128 → 32: too narrow for the transforms to pay with AVX-512, wide enough with AVX2.
        var dense = big; dense.channels = 128
        let avx512 = WinogradConvolution.minimumChannelsWithAVX512, avx2 = WinogradConvolution.minimumChannelsWithAVX2
        #expect(try WinogradConvolution(geometry: dense, batch: 4, outChannels: 32, epilogue: .init(), minimumChannels: avx512) == nil)
        #expect(try WinogradConvolution(geometry: dense, batch: 4, outChannels: 64, epilogue: .init(), minimumChannels: avx512) != nil)
        #expect(try WinogradConvolution(geometry: dense, batch: 4, outChannels: 32, epilogue: .init(), minimumChannels: avx2) != nil)
        // The small CNN's 32 → 64 likewise; 3 → 32 in neither.
        #expect(!WinogradConvolution.gains(channels: 32, outChannels: 64, minimumChannels: avx512))
        #expect(WinogradConvolution.gains(channels: 32, outChannels: 64, minimumChannels: avx2))
        #expect(!WinogradConvolution.gains(channels: 8, outChannels: 32, minimumChannels: avx2))
        // 7x7 at batch 1: 4 tiles, too few to repay reading the transformed weights.
        let small = ConvGeometry(channels: 512, height: 7, width: 7, kernelH: 3, kernelW: 3, stride: 1, padding: 1)
        #expect(try WinogradConvolution(geometry: small, batch: 1, outChannels: 512, epilogue: .init()) == nil)
        #expect(WinogradTransforms.Epilogue([.sum, .sum]) == nil)
    }

    /// Chunks: at most 64 tiles, as many per worker, none below 24 tiles.
    @Test func chunksShareTheTilesEvenly() {
        #expect(WinogradConvolution.tilesPerChunk(tiles: 196, workers: 2) == 49)
        #expect(WinogradConvolution.tilesPerChunk(tiles: 3136, workers: 2) == 63)
        #expect(WinogradConvolution.tilesPerChunk(tiles: 64, workers: 2) == 32)
        #expect(WinogradConvolution.tilesPerChunk(tiles: 49, workers: 2) == 25)
        #expect(WinogradConvolution.tilesPerChunk(tiles: 16, workers: 2) == nil)
        #expect(WinogradConvolution.tilesPerChunk(tiles: 16, workers: 1) == nil)
        #expect(WinogradConvolution.tilesPerChunk(tiles: 30, workers: 1) == 30)
        #expect(WinogradConvolution.tilesPerChunk(tiles: 3136, workers: 16) == 49)
    }

    /// Whole networks: the inference graph, with its Winograd convolutions, gives the logits of
    /// the layers run one by one, for batches of two sizes in turn (their graphs share the
    /// chunk buffers and the transformed weights). DenseNet-121's convolutions are Winograd's
    /// only where oneDNN runs on AVX2 (`gains`); with AVX-512 its graph is checked all the same.
    @Test(arguments: [Architecture.smallCNN, .resnet18, .densenet121])
    func networksMatchTheLayerPath(architecture: Architecture) throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let network = Network(architecture: architecture, labels: 5, seed: 7)
        for n in [4, 3, 4] {
            let shape = Shape(n: n, c: 3, h: 64, w: 64)
            let x = Batch(randomValues(shape.count, seed: UInt64(30 + n)), shape)
            func logits(graphs: Bool) -> [Float] {
                network.usesInferenceGraphs = graphs
                return x.with { network.forward($0, mode: .inference).values }
            }
            let graph = logits(graphs: true), layers = logits(graphs: false)
            if architecture != .densenet121 || !OneDNN.usesAVX512 {
                #expect(network.inferenceGraphs.winogradCount(for: shape) > 0, "no convolution ran by Winograd at batch \(n)")
            }
            expectClose(graph, layers, absolute: 1e-4, relative: 1e-4, "\(architecture.rawValue) logits, batch of \(n), graph against layers")
            #expect(Set(graph).count > 1)
        }
        #expect(network.inferenceGraphs.count == 2)
    }
}

/// Training convolutions whose forward and input gradient run by Winograd (`TrainingConvolution`,
/// where oneDNN runs on AVX2; forced here) against the same convolution all oneDNN: output and
/// ∂input within 1e-4, the weight and bias gradients (which read the forward's input and the
/// input gradient's ∂output) unchanged.
@Suite("Winograd in training")
struct WinogradTrainingTests {
    @Test(arguments: [(64, 64, 24), (64, 128, 28)])
    func forwardAndTheBackwardAfterIt(shape: (Int, Int, Int)) throws {
        try #require(OneDNN.unavailable == nil, "oneDNN: \(OneDNN.unavailable ?? "")")
        let (c, oc, side) = shape, batch = 4
        let g = ConvGeometry(channels: c, height: side, width: side, kernelH: 3, kernelW: 3, stride: 1, padding: 1)
        let fast = try TrainingConvolution(geometry: g, batch: batch, outChannels: oc, bias: true, winograd: true)
        let direct = try TrainingConvolution(geometry: g, batch: batch, outChannels: oc, bias: true, winograd: false)
        try #require(fast.winogradForward && fast.winogradInputGradient, "\(c) → \(oc) at \(side)² did not take Winograd")
        #expect(!direct.winogradForward && !direct.winogradInputGradient)
        // Activations in the kernels' channel block (nChw8c or nChw16c), as a network keeps them.
        let block = fast.outputBlock
        try #require(block > 1 && fast.accepts(inputBlock: block) && fast.accepts(dOutputBlock: block, inputGradient: true))
        let x = randomValues(batch * c * side * side, seed: 41)
        let w = randomValues(oc * c * 9, seed: 42, scale: 1 / Float(9 * c).squareRoot())
        let b = randomValues(oc, seed: 43, scale: 0.1), dy = randomValues(batch * oc * side * side, seed: 44)
        func run(_ plan: TrainingConvolution) throws -> (y: [Float], dx: [Float], dw: [Float], db: [Float]) {
            var y = [Float](repeating: .nan, count: dy.count), dx = [Float](repeating: .nan, count: x.count)
            var dw = [Float](repeating: 0, count: w.count), db = [Float](repeating: 0, count: oc)
            try x.withUnsafeBufferPointer { x in
                try w.withUnsafeBufferPointer { w in
                    try plan.forward(input: x.baseAddress!, inputBlock: block, weights: w.baseAddress!, bias: b, output: &y)
                    try dy.withUnsafeBufferPointer { dy in
                        try plan.backward(input: x.baseAddress!, inputBlock: block, weights: w.baseAddress!,
                                          dOutput: dy.baseAddress!, dOutputBlock: block, dInput: &dx,
                                          dInputBlock: plan.dInputBlock(wanting: block), dWeights: &dw, dBias: &db)
                    }
                }
            }
            return (y, dx, dw, db)
        }
        let winograd = try run(fast), reference = try run(direct)
        let label = "\(c) → \(oc) at \(side)², nChw\(block)c"
        expectClose(winograd.y, reference.y, absolute: 1e-4, relative: 1e-4, label + " output")
        expectClose(winograd.dx, reference.dx, absolute: 1e-4, relative: 1e-4, label + " ∂input")
        expectClose(winograd.dw, reference.dw, absolute: 1e-5, relative: 1e-5, label + " ∂weights")
        expectClose(winograd.db, reference.db, absolute: 1e-5, relative: 1e-5, label + " ∂bias")
        #expect(Set(winograd.y).count > winograd.y.count / 4, "the outputs are not varied enough to compare")
    }
}
