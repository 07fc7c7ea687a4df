/// 2-D convolution (cross-correlation, as in PyTorch) through oneDNN (`FusedConvolution` in
/// inference, `TrainingConvolution` in training), or, when `EngineSettings.oneDNN` is off or
/// oneDNN refuses, by im2col and one matrix product, described here.
///
/// weight (OC, C, KH, KW), optional bias (OC); input (N, C, H, W) → output (N, OC, OH, OW)
/// with OH = (H + 2·padding − KH) / stride + 1.
///
/// Each image is unfolded into a (C·KH·KW, OH·OW) column matrix and multiplied by the weight
/// viewed as (OC, C·KH·KW). When the output planes are small (deep layers), the images of a
/// batch share one wide column matrix so OpenBLAS sees one large product instead of N thin
/// ones; the result is then scattered back to NCHW.
public final class Conv2D: Layer {
    public let inChannels: Int, outChannels: Int
    public let kernelSize: Int, stride: Int, padding: Int
    public let weight: Parameter
    public let bias: Parameter?

    /// The training forward's input as the convolution read it (NCHW or channel-blocked).
    private var input: Activation?
    /// The channel block of the input the caller passed, which the input gradient is returned in.
    private var callerBlock = 1
    /// The oneDNN plan the last training forward used, which its backward uses too.
    private var trained: TrainingConvolution?
    private let output = FloatBuffer(), dInput = FloatBuffer()
    /// Layout conversions when the caller's layout is not one the kernels take.
    private let converted = FloatBuffer(), convertedDOutput = FloatBuffer(), convertedDInput = FloatBuffer()
    private let columns = FloatBuffer(), product = FloatBuffer()
    /// oneDNN's plans for inference and training, per batch shape.
    let plans = ConvolutionPlans()
    /// Convolutions through oneDNN for this layer (when `EngineSettings.oneDNN` is on too);
    /// tests turn it off to compare with the im2col path.
    var usesOneDNN = true

    /// Output planes smaller than this are computed for the whole batch in one product.
    var batchedPlaneLimit = 1024

    init(_ name: String, _ store: ParameterStore, inChannels: Int, outChannels: Int,
         kernelSize: Int, stride: Int = 1, padding: Int = 0, bias: Bool = false) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
        weight = store.make(name + ".weight", [outChannels, inChannels, kernelSize, kernelSize])
        self.bias = bias ? store.make(name + ".bias", [outChannels]) : nil
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    func geometry(_ s: Shape) -> ConvGeometry {
        precondition(s.c == inChannels, "Conv2D \(weight.name): input has \(s.c) channels, expected \(inChannels)")
        let g = ConvGeometry(channels: s.c, height: s.h, width: s.w, kernelH: kernelSize, kernelW: kernelSize,
                             stride: stride, padding: padding)
        precondition(g.outHeight > 0 && g.outWidth > 0, "Conv2D \(weight.name): input \(s) smaller than the kernel")
        return g
    }

    public func outputShape(for s: Shape) -> Shape {
        let g = geometry(s)
        return Shape(n: s.n, c: outChannels, h: g.outHeight, w: g.outWidth)
    }

    /// Uses the batched path for this input?
    private func batched(_ s: Shape, _ g: ConvGeometry) -> Bool {
        s.n > 1 && g.columnCols < batchedPlaneLimit
    }

    /// One image's column matrix (C·KH·KW, OH·OW): the image itself for a pointwise layer,
    /// else unfolded into the scratch buffer.
    private func columnMatrix(_ image: UnsafeMutablePointer<Float>, _ g: ConvGeometry) -> UnsafePointer<Float> {
        if g.isPointwise { return UnsafePointer(image) }
        let buffer = columns.reserve(g.columnRows * g.columnCols)
        im2col(buffer, image, g)
        return UnsafePointer(buffer)
    }

    /// The whole batch's column matrix (C·KH·KW, N·OH·OW), image i in columns [i·P, (i+1)·P).
    private func batchColumnMatrix(_ x: Activation, _ g: ConvGeometry) -> UnsafeMutablePointer<Float> {
        let n = x.shape.n, p = g.columnCols
        let cols = columns.reserve(g.columnRows * n * p)
        for i in 0..<n { im2col(cols + i * p, x.image(i), g, rowStride: n * p) }
        return cols
    }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        forward(x, mode: mode, epilogue: nil)
    }

    /// Inference with a following batch norm (and ReLU) applied as the product is written
    /// out: y = max(conv(x)·scale + shift, 0) per output channel, one pass instead of three.
    struct Epilogue {
        var scale: [Float], shift: [Float], relu: Bool
    }

    func forward(_ x: Activation, mode: Mode, epilogue: Epilogue?) -> Activation {
        let g = geometry(x.shape)
        callerBlock = x.channelBlock
        trained = nil
        input = nil
        if usesOneDNN, EngineSettings.oneDNN {
            if mode == .inference {
                let y = output.view(outputShape(for: x.shape))
                if fusedForward(x.plain(using: converted), y, g, epilogue) { return y }
            }
            if mode == .training, epilogue == nil, let y = trainingForward(x, g) { return y }
        }
        let x = x.plain(using: converted)
        precondition(x.isContiguous)
        let y = output.view(outputShape(for: x.shape))
        input = mode == .training ? x : nil
        let n = x.shape.n, k = g.columnRows, p = g.columnCols, oc = outChannels
        if batched(x.shape, g) {
            // columns (K, N·P) → product (OC, N·P) → y (N, OC, P)
            let cols = batchColumnMatrix(x, g)
            let prod = product.reserve(oc * n * p)
            BLAS.gemm(m: oc, n: n * p, k: k, a: weight.storage, lda: k, b: cols, ldb: n * p,
                      beta: 0, c: prod, ldc: n * p)
            for i in 0..<n {
                for o in 0..<oc { (y.image(i) + o * p).update(from: prod + o * n * p + i * p, count: p) }
            }
        } else {
            for i in 0..<n {
                BLAS.gemm(m: oc, n: p, k: k, a: weight.storage, lda: k, b: columnMatrix(x.image(i), g), ldb: p,
                          beta: 0, c: y.image(i), ldc: p)
            }
        }
        if bias != nil || epilogue != nil {
            let b = bias.map { Array(UnsafeBufferPointer(start: $0.storage, count: oc)) } ?? .init(repeating: 0, count: oc)
            let scale = epilogue?.scale ?? .init(repeating: 1, count: oc)
            let shift = epilogue?.shift ?? .init(repeating: 0, count: oc), relu = epilogue?.relu ?? false
            Parallel.forEach(n * oc, costPerItem: p) { index in
                let o = index % oc, plane = y.image(index / oc) + o * p
                let a = scale[o], c = b[o] * scale[o] + shift[o]
                if relu { for j in 0..<p { plane[j] = max(plane[j] * a + c, 0) } }
                else { for j in 0..<p { plane[j] = plane[j] * a + c } }
            }
        }
        return y
    }

    /// y = epilogue(conv(x)) through oneDNN; false (y untouched) when oneDNN cannot run it.
    private func fusedForward(_ x: Activation, _ y: Activation, _ g: ConvGeometry, _ epilogue: Epilogue?) -> Bool {
        let oc = outChannels
        guard let plan = plans.plan(for: x.shape, geometry: g, weight: weight, bias: bias,
                                    scale: epilogue?.scale ?? .init(repeating: 1, count: oc),
                                    shift: epilogue?.shift ?? .init(repeating: 0, count: oc),
                                    relu: epilogue?.relu ?? false) else { return false }
        do {
            try plan.run(input: x.data, output: y.data)
            return true
        } catch {
            plans.refuse(error)
            return false
        }
    }

    /// y = conv(x) + b through oneDNN for training, y in the kernel's layout when it is one an
    /// `Activation` can be in; nil when oneDNN cannot run it.
    private func trainingForward(_ x: Activation, _ g: ConvGeometry) -> Activation? {
        guard let plan = plans.trainingPlan(for: x.shape, geometry: g, outChannels: outChannels, bias: bias != nil) else { return nil }
        // In a layout the plan takes, contiguous (a channel slice is copied out).
        let read = plan.accepts(inputBlock: x.channelBlock) ? x : x.plain(using: converted)
        let contiguous = read.isContiguous ? read : Activation(data: converted.reserve(read.shape.count), shape: read.shape)
        if !read.isContiguous { ChannelBlocks.copy(read, to: contiguous) }
        let y = Activation(data: output.reserve(outputShape(for: x.shape).count), shape: outputShape(for: x.shape),
                           channelBlock: plan.outputBlock)
        do {
            try plan.forward(input: contiguous.data, inputBlock: contiguous.channelBlock, weights: weight.storage,
                             bias: bias?.storage, output: y.data)
            trained = plan
            input = contiguous
            return y
        } catch {
            plans.refuse(error)
            return nil
        }
    }

    /// ∂loss/∂x in the layout the forward's input had; `dy` in any layout.
    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let read = input else { preconditionFailure("Conv2D.backward without a training forward") }
        precondition(dy.shape == outputShape(for: read.shape) && dy.isContiguous)
        // (A frozen weight with a trainable bias, which no architecture builds, takes the im2col path.)
        if let plan = trained, weight.isTrainable || bias?.isTrainable != true {
            let g = plan.accepts(dOutputBlock: dy.channelBlock, inputGradient: inputGradient) ? dy : dy.plain(using: convertedDOutput)
            let block = plan.dInputBlock(wanting: callerBlock)
            let dx = inputGradient ? Activation(data: dInput.reserve(read.shape.count), shape: read.shape, channelBlock: block) : .none
            do {
                try plan.backward(input: read.data, inputBlock: read.channelBlock, weights: weight.storage,
                                  dOutput: g.data, dOutputBlock: g.channelBlock,
                                  dInput: inputGradient ? dx.data : nil, dInputBlock: block,
                                  dWeights: weight.isTrainable ? weight.gradient : nil,
                                  dBias: bias?.isTrainable == true ? bias?.gradient : nil)
                return inputGradient ? dx.laidOut(callerBlock, using: convertedDInput) : dx
            } catch {
                // The gradients are added only once every primitive has run, so nothing was added;
                // the im2col path below computes everything.
                plans.refuse(error)
            }
        }
        let x = read.plain(using: converted), dy = dy.plain(using: convertedDOutput)
        let dx = im2colBackward(x, dy, inputGradient: inputGradient)
        return inputGradient ? dx.laidOut(callerBlock, using: convertedDInput) : dx
    }

    /// The backward of the im2col path, all NCHW.
    private func im2colBackward(_ x: Activation, _ dy: Activation, inputGradient: Bool) -> Activation {
        let g = geometry(x.shape)
        let n = x.shape.n, k = g.columnRows, p = g.columnCols, oc = outChannels
        if let bias, bias.isTrainable {
            for i in 0..<n {
                for o in 0..<oc {
                    let plane = dy.image(i) + o * p
                    var sum: Float = 0
                    for j in 0..<p { sum += plane[j] }
                    bias.gradient[o] += sum
                }
            }
        }
        let batched = batched(x.shape, g)
        // col2im adds into dx, so it starts at zero; a pointwise product writes it whole.
        let dx = !inputGradient ? .none : batched || !g.isPointwise ? dInput.zeroedView(x.shape) : dInput.view(x.shape)
        if batched {
            // dY gathered to (OC, N·P); dW += dY · colsᵀ; dCols = Wᵀ · dY.
            let dProd = product.reserve(oc * n * p)
            for i in 0..<n {
                for o in 0..<oc { (dProd + o * n * p + i * p).update(from: dy.image(i) + o * p, count: p) }
            }
            let cols = weight.isTrainable ? batchColumnMatrix(x, g) : columns.reserve(k * n * p)
            if weight.isTrainable {
                BLAS.gemm(transB: true, m: oc, n: k, k: n * p, a: dProd, lda: n * p, b: cols, ldb: n * p,
                          beta: 1, c: weight.gradient, ldc: k)
            }
            if inputGradient {
                BLAS.gemm(transA: true, m: k, n: n * p, k: oc, a: weight.storage, lda: k, b: dProd, ldb: n * p,
                          beta: 0, c: cols, ldc: n * p)
                for i in 0..<n { col2im(dx.image(i), cols + i * p, g, rowStride: n * p) }
            }
        } else {
            for i in 0..<n {
                if weight.isTrainable {
                    BLAS.gemm(transB: true, m: oc, n: k, k: p, a: dy.image(i), lda: p, b: columnMatrix(x.image(i), g), ldb: p,
                              beta: 1, c: weight.gradient, ldc: k)
                }
                if inputGradient {
                    if g.isPointwise {
                        BLAS.gemm(transA: true, m: k, n: p, k: oc, a: weight.storage, lda: k, b: dy.image(i), ldb: p,
                                  beta: 0, c: dx.image(i), ldc: p)
                    } else {
                        let dCols = columns.reserve(k * p)
                        BLAS.gemm(transA: true, m: k, n: p, k: oc, a: weight.storage, lda: k, b: dy.image(i), ldb: p,
                                  beta: 0, c: dCols, ldc: p)
                        col2im(dx.image(i), dCols, g)
                    }
                }
            }
        }
        return dx
    }
}
