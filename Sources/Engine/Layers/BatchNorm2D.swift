import Foundation

/// Batch normalisation over (N, H, W) per channel, with PyTorch's semantics: biased variance
/// to normalise, unbiased variance into the running estimate, momentum 0.1, ε = 1e-5.
///
/// weight γ (C), bias β (C); buffers running_mean (C), running_var (C), num_batches_tracked ().
/// input (N, C, H, W), which may be a channel slice of a wider buffer → output (N, C, H, W).
public final class BatchNorm2D: Layer {
    public let channels: Int
    public let epsilon: Float
    public let momentum: Float
    public let weight: Parameter, bias: Parameter
    public let runningMean: StateBuffer, runningVar: StateBuffer, batchesTracked: StateBuffer

    private var input: Activation?
    private let output = FloatBuffer(), normalized = FloatBuffer(), dInput = FloatBuffer()
    /// Per channel 1/sqrt(var + ε) of the last training batch.
    private var inverseStd: [Float] = []

    init(_ name: String, _ store: ParameterStore, channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        self.channels = channels; self.epsilon = epsilon; self.momentum = momentum
        weight = store.make(name + ".weight", [channels])
        bias = store.make(name + ".bias", [channels])
        runningMean = StateBuffer(name: name + ".running_mean", shape: [channels], values: .float32(.init(repeating: 0, count: channels)))
        runningVar = StateBuffer(name: name + ".running_var", shape: [channels], values: .float32(.init(repeating: 1, count: channels)))
        batchesTracked = StateBuffer(name: name + ".num_batches_tracked", shape: [], values: .int64([0]))
    }

    public var parameters: [Parameter] { [weight, bias] }
    public var buffers: [StateBuffer] { [runningMean, runningVar, batchesTracked] }

    public func outputShape(for s: Shape) -> Shape {
        precondition(s.c == channels, "BatchNorm2D \(weight.name): input has \(s.c) channels, expected \(channels)")
        return s
    }

    /// Per-channel scale and shift that inference applies: y = x·scale + shift.
    func inferenceAffine() -> (scale: [Float], shift: [Float]) {
        let mean = runningMean.floats, variance = runningVar.floats
        var scale = [Float](repeating: 0, count: channels), shift = scale
        for c in 0..<channels {
            scale[c] = weight.value[c] / (variance[c] + epsilon).squareRoot()
            shift[c] = bias.value[c] - mean[c] * scale[c]
        }
        return (scale, shift)
    }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        forward(x, mode: mode, relu: false)
    }

    /// `relu`: in inference, apply a following ReLU in the same pass.
    func forward(_ x: Activation, mode: Mode, relu: Bool) -> Activation {
        let s = outputShape(for: x.shape)
        let y = output.view(s)
        let plane = s.plane
        if mode == .inference {
            let (scale, shift) = inferenceAffine()
            Parallel.forEach(s.n * channels, costPerItem: plane) { index in
                let i = index / channels, c = index % channels
                let src = x.image(i) + c * plane, dst = y.image(i) + c * plane
                let a = scale[c], b = shift[c]
                if relu { for j in 0..<plane { dst[j] = max(src[j] * a + b, 0) } }
                else { for j in 0..<plane { dst[j] = src[j] * a + b } }
            }
            input = nil
            return y
        }
        precondition(!relu, "a fused ReLU is for inference only")
        let xhat = normalized.view(s)
        let m = s.n * plane
        var means = [Float](repeating: 0, count: channels), variances = means
        inverseStd = .init(repeating: 0, count: channels)
        means.withUnsafeMutableBufferPointer { meanOut in
            variances.withUnsafeMutableBufferPointer { varOut in
                inverseStd.withUnsafeMutableBufferPointer { invOut in
                    Parallel.forEach(channels, costPerItem: m) { c in
                        var sum = 0.0
                        for i in 0..<s.n {
                            let src = x.image(i) + c * plane
                            var partial: Float = 0
                            for j in 0..<plane { partial += src[j] }
                            sum += Double(partial)
                        }
                        let mean = Float(sum / Double(m))
                        var squares = 0.0
                        for i in 0..<s.n {
                            let src = x.image(i) + c * plane
                            var partial: Float = 0
                            for j in 0..<plane { let d = src[j] - mean; partial += d * d }
                            squares += Double(partial)
                        }
                        let variance = Float(squares / Double(m))
                        let inv = 1 / (variance + epsilon).squareRoot()
                        let gamma = weight.value[c], beta = bias.value[c]
                        for i in 0..<s.n {
                            let src = x.image(i) + c * plane
                            let nrm = xhat.image(i) + c * plane, dst = y.image(i) + c * plane
                            for j in 0..<plane {
                                let v = (src[j] - mean) * inv
                                nrm[j] = v
                                dst[j] = v * gamma + beta
                            }
                        }
                        meanOut[c] = mean; varOut[c] = variance; invOut[c] = inv
                    }
                }
            }
        }
        updateRunningStatistics(means: means, variances: variances, count: m)
        input = x
        return y
    }

    private func updateRunningStatistics(means: [Float], variances: [Float], count m: Int) {
        var runMean = runningMean.floats, runVar = runningVar.floats
        let unbias = m > 1 ? Float(m) / Float(m - 1) : 1
        for c in 0..<channels {
            runMean[c] = (1 - momentum) * runMean[c] + momentum * means[c]
            runVar[c] = (1 - momentum) * runVar[c] + momentum * variances[c] * unbias
        }
        runningMean.floats = runMean
        runningVar.floats = runVar
        if case .int64(let t) = batchesTracked.values { batchesTracked.values = .int64([t[0] + 1]) }
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let x = input else { preconditionFailure("BatchNorm2D.backward without a training forward") }
        let s = x.shape, plane = s.plane, m = Float(s.n * plane)
        precondition(dy.shape == s && dy.isContiguous)
        let xhat = Activation(data: normalized.pointer, shape: s)
        let dx = inputGradient ? dInput.view(s) : .none
        let trains = weight.isTrainable
        Parallel.forEach(channels, costPerItem: s.n * plane) { c in
            var sumDy: Float = 0, sumDyXhat: Float = 0
            for i in 0..<s.n {
                let g = dy.image(i) + c * plane, h = xhat.image(i) + c * plane
                for j in 0..<plane { sumDy += g[j]; sumDyXhat += g[j] * h[j] }
            }
            if trains {
                weight.gradient[c] += sumDyXhat
                bias.gradient[c] += sumDy
            }
            guard inputGradient else { return }
            let k = weight.value[c] * inverseStd[c] / m
            for i in 0..<s.n {
                let g = dy.image(i) + c * plane, h = xhat.image(i) + c * plane, d = dx.image(i) + c * plane
                for j in 0..<plane { d[j] = k * (m * g[j] - sumDy - h[j] * sumDyXhat) }
            }
        }
        return dx
    }
}
