import Engine
import Testing

/// L2-SP (`OptimizerSettings.anchorDecay`): the penalty α/2·‖w − w₀‖² adds α(w − w₀) to the
/// gradient, checked against the formula and against finite differences of the penalty.
@Suite("Anchor decay (L2-SP)")
struct AnchorDecayTests {
    @Test("plain SGD with an anchor steps by lr·(g + α(w − w₀)); no anchor, or α 0, is the plain step")
    func sgdStep() {
        var settings = OptimizerSettings(kind: .sgd, momentum: 0)
        settings.anchorDecay = 0.5
        let w0: [Float] = [1, -2, 0.5, 3], g: [Float] = [0.1, 0.2, -0.3, 0]
        var w: [Float] = [1.5, -2, 0, 2]
        let optimizer = Optimizer(settings, parameterCount: 4)
        optimizer.anchor = w0
        let before = w
        w.withUnsafeMutableBufferPointer { v in
            g.withUnsafeBufferPointer { optimizer.apply(values: v, gradients: $0, trainable: [0..<4], learningRate: 0.1) }
        }
        for i in 0..<4 { #expect(abs(w[i] - (before[i] - 0.1 * (g[i] + 0.5 * (before[i] - w0[i])))) < 1e-6) }

        for (alpha, anchor): (Float?, [Float]) in [(nil, w0), (0, w0), (0.5, [1, 2])] {  // the last: an anchor of another length
            var plain = OptimizerSettings(kind: .sgd, momentum: 0)
            plain.anchorDecay = alpha
            let o = Optimizer(plain, parameterCount: 4)
            o.anchor = anchor
            var x = before
            x.withUnsafeMutableBufferPointer { v in
                g.withUnsafeBufferPointer { o.apply(values: v, gradients: $0, trainable: [0..<4], learningRate: 0.1) }
            }
            for i in 0..<4 { #expect(abs(x[i] - (before[i] - 0.1 * g[i])) < 1e-6) }
        }
    }

    @Test("the added gradient is the penalty's, by central differences")
    func finiteDifferences() {
        let alpha: Float = 0.7
        let w0: [Float] = [0.3, -1.2, 2.0], w: [Float] = [0.9, -1.0, 1.1]
        func penalty(_ x: [Float]) -> Double { Double(alpha) / 2 * zip(x, w0).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } }
        var settings = OptimizerSettings(kind: .sgd, momentum: 0)
        settings.anchorDecay = alpha
        let optimizer = Optimizer(settings, parameterCount: 3)
        optimizer.anchor = w0
        var stepped = w
        let zero: [Float] = [0, 0, 0]
        stepped.withUnsafeMutableBufferPointer { v in
            zero.withUnsafeBufferPointer { optimizer.apply(values: v, gradients: $0, trainable: [0..<3], learningRate: 1) }
        }
        for i in 0..<3 {
            var up = w, down = w
            up[i] += 1e-3; down[i] -= 1e-3
            let numeric = (penalty(up) - penalty(down)) / 2e-3
            #expect(abs(Double(w[i] - stepped[i]) - numeric) < 1e-3, "parameter \(i)")
        }
    }

    @Test("an anchor decay that is not a finite, non-negative number is refused")
    func settingsChecked() {
        for bad: Float in [-1, .nan, .infinity] {
            var settings = OptimizerSettings(kind: .adam)
            settings.anchorDecay = bad
            #expect(settings.problem != nil)
        }
    }
}
