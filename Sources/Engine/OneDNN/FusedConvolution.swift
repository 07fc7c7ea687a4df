internal import CDNNL

/// One convolution layer for inference through oneDNN, for one batch shape: the convolution
/// with the following batch norm folded into its weights and bias and the ReLU as a post-op,
/// computed in the layout oneDNN's kernels want, the NCHW input and output reordered to and
/// from it. The packed weights are made once and can be shared between batch shapes
/// (`PackedWeights`). The buffers in oneDNN's layout belong to the layer (`staging`), shared by
/// its plans, so a scorer's many batch sizes do not each hold a copy of the activations.
///
/// input (N, C, H, W) NCHW → output (N, OC, OH, OW) NCHW.
final class FusedConvolution {
    let weights: PackedWeights
    private let stream: Stream
    private let convolution: Primitive
    private let userInput: Memory, userOutput: Memory
    /// The input and output in the convolution's own layout, in the layer's staging buffers.
    private let input: StagedArgument, output: StagedArgument

    /// The convolution of `geometry` over a batch of `batch` images into `outChannels`
    /// channels, with ReLU when `relu`. `pack` gives the packed weights for the descriptor the
    /// convolution chose (made now, or found among those already made).
    init(geometry g: ConvGeometry, batch: Int, outChannels oc: Int, relu: Bool, staging: ConvolutionStaging,
         pack: (MemoryDescriptor) throws(OneDNNError) -> PackedWeights) throws(OneDNNError) {
        let engine = try OneDNN.requireEngine()
        let made = try InferenceConvolution(geometry: g, batch: batch, outChannels: oc, activationLayout: dnnl_format_tag_any,
                                            postOps: relu ? [.relu] : [])
        convolution = made.primitive
        stream = try Stream(engine: engine)
        userInput = try Memory(MemoryDescriptor([batch, g.channels, g.height, g.width], dnnl_nchw), engine: engine, owned: false)
        userOutput = try Memory(MemoryDescriptor([batch, oc, g.outHeight, g.outWidth], dnnl_nchw), engine: engine, owned: false)
        input = try StagedArgument(user: userInput, layout: made.source, into: true, engine: engine, storage: staging.input)
        output = try StagedArgument(user: userOutput, layout: made.destination, into: false, engine: engine, storage: staging.output)
        weights = try pack(made.weights)
    }

    /// output = relu?(conv(input) · scale + shift), both NCHW of this plan's shapes.
    func run(input x: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>) throws(OneDNNError) {
        try userInput.bind(x)
        try userOutput.bind(y)
        try convolution.execute(stream, [(DNNL_ARG_SRC, try input.enter(stream)), (DNNL_ARG_WEIGHTS, weights.weights),
                                         (DNNL_ARG_BIAS, weights.bias), (DNNL_ARG_DST, try output.enter(stream))])
        try output.leave(stream)
    }
}

/// A layer's two buffers for its input and output in oneDNN's layouts, grown to the largest
/// batch it has seen.
final class ConvolutionStaging {
    let input = FloatBuffer(), output = FloatBuffer()
}

/// A convolution's weights with the batch norm's scale folded in, reordered once into the
/// layout a convolution chose, and its bias with the batch norm's shift folded in.
final class PackedWeights {
    let weights: Memory, bias: Memory
    /// b'[o], as `bias` holds it.
    let foldedBias: [Float]

    /// w'[o] = w[o]·scale[o] (OC, C, KH, KW) into `layout`; b'[o] = b[o]·scale[o] + shift[o].
    convenience init(layout: MemoryDescriptor, shape: [Int], weights w: UnsafePointer<Float>, bias b: UnsafePointer<Float>?,
                     scale: [Float], shift: [Float]) throws(OneDNNError) {
        try self.init(layout: layout, shape: shape, weights: w, bias: b, scale: scale, shift: shift, winograd: false)
    }

    /// w' and b' as above, w' (OC, C, 3, 3) transformed for Winograd F(4x4, 3x3) into U
    /// (36, C, OC) (`WinogradTransforms.transformWeights`) and packed into `layout`, the
    /// layout a `WinogradConvolution`'s matrix products chose.
    convenience init(winogradLayout layout: MemoryDescriptor, shape: [Int], weights w: UnsafePointer<Float>,
                     bias b: UnsafePointer<Float>?, scale: [Float], shift: [Float]) throws(OneDNNError) {
        try self.init(layout: layout, shape: shape, weights: w, bias: b, scale: scale, shift: shift, winograd: true)
    }

    private init(layout: MemoryDescriptor, shape: [Int], weights w: UnsafePointer<Float>, bias b: UnsafePointer<Float>?,
                 scale: [Float], shift: [Float], winograd: Bool) throws(OneDNNError) {
        let engine = try OneDNN.requireEngine()
        let oc = shape[0], perOutput = shape.dropFirst().reduce(1, *)
        var folded = [Float](repeating: 0, count: oc * perOutput)
        var finite = true
        for o in 0..<oc {
            for j in 0..<perOutput {
                folded[o * perOutput + j] = w[o * perOutput + j] * scale[o]
                finite = finite && folded[o * perOutput + j].isFinite
            }
        }
        foldedBias = (0..<oc).map { (b?[$0] ?? 0) * scale[$0] + shift[$0] }
        // oneDNN's ReLU turns NaN into 0, where the im2col path (and PyTorch) keep it: a model
        // whose weights overflow must show it (ModelCheck refuses such a version by its output).
        guard finite, foldedBias.allSatisfy(\.isFinite) else { throw OneDNNError.nonFiniteWeights }
        var plainDims = shape, plainTag = dnnl_oihw
        if winograd, shape.count == 4 {
            let c = shape[1]
            var transformed = [Float](repeating: 0, count: WinogradTransforms.products * c * oc)
            folded.withUnsafeBufferPointer { g in
                transformed.withUnsafeMutableBufferPointer { u in
                    guard let g = g.baseAddress, let u = u.baseAddress else { return }
                    WinogradTransforms.transformWeights(g, outChannels: oc, channels: c, into: u)
                }
            }
            folded = transformed
            plainDims = [WinogradTransforms.products, c, oc]; plainTag = dnnl_abc
        }
        let plain = try Memory(MemoryDescriptor(plainDims, plainTag), engine: engine, owned: false)
        let packed = try Memory(layout, engine: engine, owned: true)
        let stream = try Stream(engine: engine)
        let reorder = try Primitive(reorderFrom: plain.descriptor, to: layout, engine: engine)
        try folded.withUnsafeBufferPointer { (buffer) throws(OneDNNError) in
            guard let base = buffer.baseAddress else { return }
            try plain.bind(base)
            try reorder.execute(stream, [(DNNL_ARG_FROM, plain), (DNNL_ARG_TO, packed)])
        }
        weights = packed
        bias = try Memory(MemoryDescriptor([oc], dnnl_x), engine: engine, owned: true)
        guard let out = allocatedFloats(of: bias) else { throw OneDNNError(operation: "the bias buffer", status: -1) }
        for o in 0..<oc { out[o] = foldedBias[o] }
    }
}

/// The data pointer of a memory oneDNN allocated.
private func allocatedFloats(of memory: Memory) -> UnsafeMutablePointer<Float>? {
    var handle: UnsafeMutableRawPointer?
    guard dnnl_memory_get_data_handle(memory.handle, &handle) == dnnl_success, let handle else { return nil }
    return handle.assumingMemoryBound(to: Float.self)
}
