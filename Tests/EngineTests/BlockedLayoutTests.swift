import Testing
@testable import Engine

/// The channel-blocked layout (`ChannelBlocks`) that training keeps between convolutions:
/// the conversions against the element formula, and each layer that works in it against the
/// same layer on NCHW (outputs, input gradients and parameter gradients, compared in NCHW
/// order). Tolerance 1e-5 absolute and relative: only batch norm's sums run in another order.
@Suite("Channel-blocked layout")
struct BlockedLayoutTests {
    static let shape = Shape(n: 3, c: 32, h: 9, w: 7)

    @Test(arguments: [8, 16])
    func conversionsFollowTheFormula(block: Int) {
        let s = Self.shape
        let x = Batch(randomValues(s.count, seed: 1), s)
        let blocked = FloatBuffer(), back = FloatBuffer()
        x.with { plain in
            let b = plain.laidOut(block, using: blocked)
            #expect(b.channelBlock == block && b.data != plain.data)
            var misplaced = 0
            for i in 0..<s.n {
                for c in 0..<s.c {
                    for p in 0..<s.plane {
                        let at = ((i * s.c / block + c / block) * s.plane + p) * block + c % block
                        if b.data[at] != plain.data[(i * s.c + c) * s.plane + p] { misplaced += 1 }
                    }
                }
            }
            #expect(misplaced == 0)
            let again = b.plain(using: back)
            #expect(again.isPlain && again.values == plain.values)
            // Into a channel slice of a wider NCHW buffer, as a dense block writes its layers' outputs.
            let wide = Batch([Float](repeating: -1, count: s.count * 2), Shape(n: s.n, c: 2 * s.c, h: s.h, w: s.w))
            wide.with { w in
                ChannelBlocks.copy(b, to: Activation(data: w.data + s.perImage, shape: s, imageStride: 2 * s.perImage))
                for i in 0..<s.n {
                    let lower = Array(UnsafeBufferPointer(start: w.image(i), count: s.perImage))
                    let upper = Array(UnsafeBufferPointer(start: w.image(i) + s.perImage, count: s.perImage))
                    #expect(lower.allSatisfy { $0 == -1 })
                    #expect(upper == Array(plain.values[(i * s.perImage)..<((i + 1) * s.perImage)]))
                }
            }
        }
    }

    /// Runs `make()`'s layer forward and backward on NCHW and on `block`, comparing.
    func compare(_ name: String, block: Int, _ make: (ParameterStore) -> Layer) {
        let s = Self.shape
        let stores = [ParameterStore(), ParameterStore()]
        let layers = stores.map(make)
        for store in stores {
            store.allocate()
            for p in store.parameters { set(p, randomValues(p.count, seed: 3 &+ UInt64(p.offset), scale: 0.5)) }
            store.zeroGradients()
        }
        let x = Batch(randomValues(s.count, seed: 4), s)
        let os = layers[0].outputShape(for: s)
        let dy = Batch(randomValues(os.count, seed: 5), os)
        let blockedX = FloatBuffer(), blockedDY = FloatBuffer()
        var results: [(y: [Float], dx: [Float], layout: Int)] = []
        for (layer, b) in zip(layers, [1, block]) {
            let r = x.with { input in
                let y = layer.forward(input.laidOut(b, using: blockedX), mode: .training)
                let g = dy.with { $0.laidOut(y.channelBlock, using: blockedDY) }
                let dx = layer.backward(g, inputGradient: true)
                #expect(dx.channelBlock == b, "\(name): the input gradient is not in the input's layout")
                return (y.values, dx.values, y.channelBlock)
            }
            results.append(r)
        }
        #expect(results[0].layout == 1)
        expectClose(results[1].y, results[0].y, absolute: 1e-5, relative: 1e-5, "\(name) nChw\(block)c y")
        expectClose(results[1].dx, results[0].dx, absolute: 1e-5, relative: 1e-5, "\(name) nChw\(block)c dx")
        for (p, q) in zip(stores[0].parameters, stores[1].parameters) {
            expectClose(gradient(q), gradient(p), absolute: 1e-5, relative: 1e-5, "\(name) nChw\(block)c ∂\(p.name)")
        }
    }

    @Test(arguments: [8, 16])
    func layersAgreeWithNCHW(block: Int) {
        compare("batch norm", block: block) { BatchNorm2D("bn", $0, channels: 32) }
        compare("batch norm + ReLU", block: block) { BatchNorm2D("bn", $0, channels: 32, relu: true) }
        compare("max pool 3/2 pad 1", block: block) { _ in MaxPool2D(kernelSize: 3, stride: 2, padding: 1) }
        compare("max pool 2/2", block: block) { _ in MaxPool2D(kernelSize: 2, stride: 2) }
        compare("global average pool", block: block) { _ in GlobalAvgPool() }
        compare("average pool 2/2", block: block) { _ in AvgPool2D(kernelSize: 2, stride: 2) }
        compare("ReLU", block: block) { _ in ReLU() }
        // One batch norm on the main path: two in a row amplify their sums' rounding (the
        // input gradient's m·g − Σg − x̂·Σgx̂ cancels) beyond this tolerance in either layout.
        compare("residual block", block: block) { store in
            ResidualBlock(main: [BatchNorm2D("a", store, channels: 32, relu: true)], shortcut: nil)
        }
    }
}
