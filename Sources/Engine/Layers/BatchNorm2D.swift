/// Batch normalisation over (N, H, W) per channel, with PyTorch's semantics: biased variance
/// to normalise, unbiased variance into the running estimate, momentum 0.1, ε = 1e-5.
/// With `relu`, a ReLU follows in the same passes (forward and backward), as the
/// architectures use it; the state dict is the same either way.
///
/// weight γ (C), bias β (C); buffers running_mean (C), running_var (C), num_batches_tracked ().
/// input (N, C, H, W), which may be a channel slice of a wider buffer, or channel-blocked
/// (`ChannelBlocks`) → output (N, C, H, W) in the input's layout.
public final class BatchNorm2D: Layer {
    public let channels: Int
    public let epsilon: Float
    public let momentum: Float
    /// Applies max(y, 0) to the output.
    public let relu: Bool
    public let weight: Parameter, bias: Parameter
    public let runningMean: StateBuffer, runningVar: StateBuffer, batchesTracked: StateBuffer

    private var input: Activation?
    private let output = FloatBuffer(), dInput = FloatBuffer(), convertedDOutput = FloatBuffer()
    /// Per channel mean and 1/sqrt(var + ε) of the last training batch.
    private var batchMean: [Float] = [], inverseStd: [Float] = []

    init(_ name: String, _ store: ParameterStore, channels: Int, relu: Bool = false, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        self.channels = channels; self.relu = relu; self.epsilon = epsilon; self.momentum = momentum
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
            scale[c] = weight.storage[c] / (variance[c] + epsilon).squareRoot()
            shift[c] = bias.storage[c] - mean[c] * scale[c]
        }
        return (scale, shift)
    }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        let s = outputShape(for: x.shape)
        let y = Activation(data: output.reserve(s.count), shape: s, channelBlock: x.channelBlock)
        let plane = s.plane, relu = relu
        if mode == .training {
            computeBatchStatistics(x)
        }
        let (scale, shift) = mode == .training ? trainingAffine() : inferenceAffine()
        input = mode == .training ? x : nil
        guard x.isPlain else {
            BlockedChannelKernels.affine(x, y, scale: scale, shift: shift, relu: relu)
            return y
        }
        Parallel.forEach(s.n * channels, costPerItem: plane) { index in
            let i = index / channels, c = index % channels
            let src = x.image(i) + c * plane, dst = y.image(i) + c * plane
            let a = scale[c], b = shift[c]
            if relu { for j in 0..<plane { dst[j] = max(src[j] * a + b, 0) } }
            else { for j in 0..<plane { dst[j] = src[j] * a + b } }
        }
        return y
    }

    /// Mean and variance per channel in one pass (sums in double), then the running update.
    private func computeBatchStatistics(_ x: Activation) {
        let m = x.shape.n * x.shape.plane
        let (means, variances) = x.isPlain ? planeStatistics(x) : blockedStatistics(x)
        batchMean = means
        inverseStd = variances.map { 1 / ($0 + epsilon).squareRoot() }
        updateRunningStatistics(means: means, variances: variances, count: m)
    }

    /// Per-channel mean and (biased) variance of an NCHW batch: a channel's planes summed in
    /// double, channels in parallel.
    private func planeStatistics(_ x: Activation) -> (means: [Float], variances: [Float]) {
        let s = x.shape, plane = s.plane, m = s.n * plane
        var means = [Float](repeating: 0, count: channels), variances = means
        means.withUnsafeMutableBufferPointer { meanOut in
            variances.withUnsafeMutableBufferPointer { varOut in
                Parallel.forEach(channels, costPerItem: m) { c in
                    var sum = 0.0, squares = 0.0
                    for i in 0..<s.n {
                        let (a, b) = Vectorized.sumAndSquares(x.image(i) + c * plane, count: plane)
                        sum += a; squares += b
                    }
                    let mean = sum / Double(m)
                    meanOut[c] = Float(mean)
                    varOut[c] = Float(max(0, squares / Double(m) - mean * mean))
                }
            }
        }
        return (means, variances)
    }

    /// The same of a channel-blocked batch (`BlockedChannelKernels.sumsAndSquares`).
    private func blockedStatistics(_ x: Activation) -> (means: [Float], variances: [Float]) {
        let m = Double(x.shape.n * x.shape.plane)
        var sums = [Double](repeating: 0, count: channels), squares = sums
        BlockedChannelKernels.sumsAndSquares(x, sums: &sums, squares: &squares)
        var means = [Float](repeating: 0, count: channels), variances = means
        for c in 0..<channels {
            let mean = sums[c] / m
            means[c] = Float(mean)
            variances[c] = Float(max(0, squares[c] / m - mean * mean))
        }
        return (means, variances)
    }

    private func trainingAffine() -> (scale: [Float], shift: [Float]) {
        var scale = [Float](repeating: 0, count: channels), shift = scale
        for c in 0..<channels {
            scale[c] = weight.storage[c] * inverseStd[c]
            shift[c] = bias.storage[c] - batchMean[c] * scale[c]
        }
        return (scale, shift)
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

    /// x̂ is recomputed from the saved input rather than stored; with `relu`, ∂loss/∂y is
    /// masked by the output's sign on the fly.
    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let x = input else { preconditionFailure("BatchNorm2D.backward without a training forward") }
        let s = x.shape, plane = s.plane, m = Float(s.n * plane)
        precondition(dy.shape == s && dy.isContiguous)
        let y = Activation(data: output.pointer, shape: s, channelBlock: x.channelBlock)
        let dx = inputGradient ? Activation(data: dInput.reserve(s.count), shape: s, channelBlock: x.channelBlock) : .none
        let trains = weight.isTrainable, relu = relu
        let mean = batchMean, inv = inverseStd
        guard x.isPlain else {
            var sumG = [Float](repeating: 0, count: channels), sumGX = sumG
            BlockedChannelKernels.normBackward(dy: dy.laidOut(x.channelBlock, using: convertedDOutput), x: x,
                                               mask: relu ? y : nil, dx: inputGradient ? dx : nil,
                                               mean: mean, k: inv, gamma: weight.storage, sumG: &sumG, sumGX: &sumGX)
            if trains {
                for c in 0..<channels { weight.gradient[c] += sumGX[c]; bias.gradient[c] += sumG[c] }
            }
            return dx
        }
        let dy = dy.plain(using: convertedDOutput)
        Parallel.forEach(channels, costPerItem: s.n * plane) { c in
            let mu = mean[c], k = inv[c]
            var sumDy: Float = 0, sumDyXhat: Float = 0
            for i in 0..<s.n {
                let (a, b) = Vectorized.normSums(dy.image(i) + c * plane, x.image(i) + c * plane,
                                                 mask: relu ? UnsafePointer(y.image(i) + c * plane) : nil,
                                                 mean: mu, k: k, count: plane)
                sumDy += a; sumDyXhat += b
            }
            if trains {
                weight.gradient[c] += sumDyXhat
                bias.gradient[c] += sumDy
            }
            guard inputGradient else { return }
            let scale = weight.storage[c] * k / m
            for i in 0..<s.n {
                Vectorized.normInputGradient(dx.image(i) + c * plane, dy.image(i) + c * plane, x.image(i) + c * plane,
                                             mask: relu ? UnsafePointer(y.image(i) + c * plane) : nil,
                                             mean: mu, k: k, scale: scale, m: m, sumG: sumDy, sumGX: sumDyXhat, count: plane)
            }
        }
        return dx
    }
}
