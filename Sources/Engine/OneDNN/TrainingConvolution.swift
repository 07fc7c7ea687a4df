internal import CDNNL

/// One convolution layer for training through oneDNN, for one batch shape: the forward pass,
/// the input gradient (backward data) and the weight and bias gradients (backward weights), each
/// in the layouts oneDNN's kernels want. The weights, OIHW, change every step, so they are
/// reordered on every forward and backward; at training batch sizes that costs little beside
/// the products.
///
/// Activations come and go either in NCHW, reordered into and out of the kernels' layouts, or
/// already in the kernels' channel-blocked layout (`ChannelBlocks`), bound as they are: the
/// output is written blocked whenever the kernel's layout is one an `Activation` can hold, so
/// a network whose layers keep that layout reorders only its input. Each argument says which
/// blocks it takes (`inputBlock`, `dOutputBlock`, …); the caller passes NCHW or that block.
/// In NCHW, the weight gradient reads the forward's reordered input and the input gradient's
/// reordered ∂output where their layouts agree.
///
/// Where oneDNN runs on AVX2 (`winogradPays`), the forward and the input gradient of the wide
/// 3x3, stride-1 convolutions with enough tiles run by Winograd's F(4x4, 3x3)
/// (`WinogradConvolution` over the channel blocks, the weights transformed at every step by
/// `WinogradStepWeights`); the weight gradient stays oneDNN's.
///
/// input (N, C, H, W), weight (OC, C, KH, KW), bias (OC) → output (N, OC, OH, OW).
final class TrainingConvolution {
    private let hasBias: Bool
    private let stream: Stream
    private let forward: Primitive, backwardData: Primitive, backwardWeights: Primitive
    private let userInput: Memory, userOutput: Memory, userWeights: Memory, userBias: Memory?
    private let userDInput: Memory, userDOutput: Memory, userDWeights: Memory, userDBias: Memory?
    /// Each argument of each primitive in its own layout, with the reorder into or out of it.
    private let forwardInput: StagedArgument, forwardWeights: StagedArgument, forwardOutput: StagedArgument
    private let dataDOutput: StagedArgument, dataWeights: StagedArgument, dataDInput: StagedArgument
    private let weightsDOutput: StagedArgument, weightsDWeights: StagedArgument
    /// The weight gradient's input, when its layout is not the forward's (else it reads that).
    private let weightsInput: StagedArgument?
    /// The weight gradient's ∂output layout is the input gradient's: it reads that reorder.
    private let sharedDOutput: Bool
    /// The weight and bias gradients of one backward pass, added into the parameters' gradients.
    private let dWeights: FloatBuffer, dBias: FloatBuffer
    private let weightCount: Int, biasCount: Int
    /// The staging buffers of the activation arguments (bound per use, so a direct binding
    /// can replace them for one call).
    private let staging = (0..<6).map { _ in FloatBuffer() }
    /// The forward by Winograd's F(4x4, 3x3) over the kernels' channel blocks, where it applies
    /// (`winogradForward`), with its weights transformed at each step and its chunk buffers;
    /// nil where oneDNN's forward runs.
    private let winograd: (convolution: WinogradConvolution, block: Int, weights: WinogradStepWeights, buffers: [FloatBuffer])?
    /// The input gradient by Winograd likewise (a convolution of ∂output by the turned kernels,
    /// `WinogradStepWeights(transposed:)`), sharing the forward's chunk buffers.
    private let winogradData: (convolution: WinogradConvolution, weights: WinogradStepWeights)?

    /// `winograd`: whether the forward and input gradient may run by Winograd's algorithm
    /// where it applies (`winogradPays` unless a test says otherwise).
    init(geometry g: ConvGeometry, batch: Int, outChannels oc: Int, bias: Bool,
         winograd useWinograd: Bool = TrainingConvolution.winogradPays) throws(OneDNNError) {
        let engine = try OneDNN.requireEngine()
        hasBias = bias
        let sourceDims = [batch, g.channels, g.height, g.width], outputDims = [batch, oc, g.outHeight, g.outWidth]
        let weightDims = [oc, g.channels, g.kernelH, g.kernelW]
        let plainSource = try MemoryDescriptor(sourceDims, dnnl_nchw), plainOutput = try MemoryDescriptor(outputDims, dnnl_nchw)
        let plainWeights = try MemoryDescriptor(weightDims, dnnl_oihw), plainBias = try MemoryDescriptor([oc], dnnl_x)
        let anySource = try MemoryDescriptor(sourceDims, dnnl_format_tag_any)
        let anyOutput = try MemoryDescriptor(outputDims, dnnl_format_tag_any)
        let anyWeights = try MemoryDescriptor(weightDims, dnnl_format_tag_any)
        let strides = [Int64(g.stride), Int64(g.stride)], padding = [Int64(g.padding), Int64(g.padding)]
        let what = "a training convolution of \(sourceDims) by \(weightDims)"

        var forwardPD: dnnl_primitive_desc_t?
        try OneDNN.check(dnnl_convolution_forward_primitive_desc_create(
            &forwardPD, engine, dnnl_forward_training, dnnl_convolution_direct, anySource.handle, anyWeights.handle,
            bias ? plainBias.handle : nil, anyOutput.handle, strides, nil, padding, padding, nil), what)
        guard let forwardPD else { throw OneDNNError(operation: what, status: -1) }
        defer { dnnl_primitive_desc_destroy(forwardPD) }
        var dataPD: dnnl_primitive_desc_t?, weightsPD: dnnl_primitive_desc_t?
        try OneDNN.check(dnnl_convolution_backward_data_primitive_desc_create(
            &dataPD, engine, dnnl_convolution_direct, anySource.handle, anyWeights.handle, anyOutput.handle,
            strides, nil, padding, padding, forwardPD, nil), what + " (input gradient)")
        try OneDNN.check(dnnl_convolution_backward_weights_primitive_desc_create(
            &weightsPD, engine, dnnl_convolution_direct, anySource.handle, anyWeights.handle, bias ? plainBias.handle : nil,
            anyOutput.handle, strides, nil, padding, padding, forwardPD, nil), what + " (weight gradient)")
        guard let dataPD, let weightsPD else { throw OneDNNError(operation: what, status: -1) }
        func layout(_ pd: dnnl_primitive_desc_t, _ query: dnnl_query_t) throws(OneDNNError) -> MemoryDescriptor {
            try MemoryDescriptor(copying: dnnl_primitive_desc_query_md(pd, query, 0))
        }
        let fwdSource = try layout(forwardPD, dnnl_query_src_md), fwdWeights = try layout(forwardPD, dnnl_query_weights_md)
        let fwdOutput = try layout(forwardPD, dnnl_query_dst_md)
        let bwdDOutput = try layout(dataPD, dnnl_query_diff_dst_md), bwdWeights = try layout(dataPD, dnnl_query_weights_md)
        let bwdDSource = try layout(dataPD, dnnl_query_diff_src_md)
        let wSource = try layout(weightsPD, dnnl_query_src_md), wDOutput = try layout(weightsPD, dnnl_query_diff_dst_md)
        let wDWeights = try layout(weightsPD, dnnl_query_diff_weights_md)
        backwardData = try Primitive(consuming: dataPD, what + " (input gradient)")
        backwardWeights = try Primitive(consuming: weightsPD, what + " (weight gradient)")
        var forwardCopy: dnnl_primitive_desc_t?
        try OneDNN.check(dnnl_primitive_desc_clone(&forwardCopy, forwardPD), what)
        guard let forwardCopy else { throw OneDNNError(operation: what, status: -1) }
        forward = try Primitive(consuming: forwardCopy, what)

        stream = try Stream(engine: engine)
        userInput = try Memory(plainSource, engine: engine, owned: false)
        userOutput = try Memory(plainOutput, engine: engine, owned: false)
        userWeights = try Memory(plainWeights, engine: engine, owned: false)
        userBias = bias ? try Memory(plainBias, engine: engine, owned: false) : nil
        userDInput = try Memory(plainSource, engine: engine, owned: false)
        userDOutput = try Memory(plainOutput, engine: engine, owned: false)
        userDWeights = try Memory(plainWeights, engine: engine, owned: false)
        userDBias = bias ? try Memory(plainBias, engine: engine, owned: false) : nil
        // The channel block this machine's kernels use for activations, which the layers around
        // this one keep (`Activation.channelBlock`): arguments in other layouts reorder from it.
        var block: Int?
        for (layout, dims) in [(fwdOutput, outputDims), (bwdDOutput, outputDims), (fwdSource, sourceDims)] where block == nil {
            if let b = try layout.channelBlock(dims), b > 1 { block = b }
        }
        forwardInput = try StagedArgument(user: userInput, layout: fwdSource, into: true, engine: engine,
                                          storage: staging[0], activation: sourceDims, blocked: block)
        forwardWeights = try StagedArgument(user: userWeights, layout: fwdWeights, into: true, engine: engine)
        forwardOutput = try StagedArgument(user: userOutput, layout: fwdOutput, into: false, engine: engine,
                                           storage: staging[1], activation: outputDims, blocked: block)
        dataDOutput = try StagedArgument(user: userDOutput, layout: bwdDOutput, into: true, engine: engine,
                                         storage: staging[2], activation: outputDims, blocked: block)
        dataWeights = try StagedArgument(user: userWeights, layout: bwdWeights, into: true, engine: engine)
        dataDInput = try StagedArgument(user: userDInput, layout: bwdDSource, into: false, engine: engine,
                                        storage: staging[3], activation: sourceDims, blocked: block)
        weightsInput = wSource.isEqual(to: fwdSource) ? nil
            : try StagedArgument(user: userInput, layout: wSource, into: true, engine: engine,
                                 storage: staging[4], activation: sourceDims, blocked: block)
        sharedDOutput = wDOutput.isEqual(to: bwdDOutput)
        weightsDOutput = try StagedArgument(user: userDOutput, layout: wDOutput, into: true, engine: engine,
                                            storage: staging[5], activation: outputDims, blocked: block)
        weightsDWeights = try StagedArgument(user: userDWeights, layout: wDWeights, into: false, engine: engine)
        weightCount = weightDims.reduce(1, *); biasCount = bias ? oc : 0
        dWeights = FloatBuffer(capacity: weightCount); dBias = FloatBuffer(capacity: biasCount)
        if useWinograd, let block, forwardInput.channelBlock == block, forwardOutput.channelBlock == block,
           let made = try WinogradConvolution(geometry: g, batch: batch, outChannels: oc, epilogue: .init(), channelBlock: block,
                                              minimumChannels: Self.winogradMinimumChannels),
           made.tileCount >= Self.minimumWinogradTiles {
            winograd = (made, block, try WinogradStepWeights(layout: made.weightsLayout, channels: g.channels, outChannels: oc),
                        (0..<made.bufferCount).map { _ in FloatBuffer() })
            var back = g; back.channels = oc
            if dataDOutput.channelBlock == block, dataDInput.channelBlock == block,
               let data = try WinogradConvolution(geometry: back, batch: batch, outChannels: g.channels, epilogue: .init(),
                                                  channelBlock: block, minimumChannels: Self.winogradMinimumChannels) {
                winogradData = (data, try WinogradStepWeights(layout: data.weightsLayout, channels: oc, outChannels: g.channels,
                                                              transposed: true))
            } else {
                winogradData = nil
            }
        } else {
            winograd = nil; winogradData = nil
        }
    }

    /// Whether training convolutions run by Winograd where it applies: with
    /// `EngineSettings.winograd` on, where oneDNN runs on AVX2 (or less). Measured on the Xeon
    /// (ResNet-18 training at batch 16, alternating runs): with oneDNN held to AVX2 the forward
    /// of the ten convolutions it takes went from 1,073–1,275 ms to 832–932 ms per 40 calls
    /// (3 pairs), and whole steps with the input gradient too from 10.5–11.0 to 11.8–14.8 img/s
    /// (4 of 4 pairs faster); on AVX-512 the forward was level (667 ms per 40 calls and 803 per
    /// 50 against 671 and 762 per 40), as oneDNN's direct kernels do twice the multiply-adds per
    /// instruction there.
    static var winogradPays: Bool { EngineSettings.winograd && !OneDNN.usesAVX512 }

    /// Fewest channels (harmonic mean of input and output) for Winograd in training: the
    /// AVX-512 figure on any machine. With oneDNN held to AVX2, DenseNet-121's training with its
    /// 128 → 32 (51) by Winograd was slower in 3 of 3 pairs (5.6–6.3 → 4.9–5.1 img/s).
    static let winogradMinimumChannels = WinogradConvolution.minimumChannelsWithAVX512

    /// Fewest output tiles for which Winograd can repay transforming the weights at every step
    /// (36·C·OC values, twice): ResNet-18's last stage at batch 16 (64 tiles, 2.4 million
    /// weights) stays direct. (Not measured at other values.)
    static let minimumWinogradTiles = 128

    /// Whether the forward runs by Winograd's algorithm (for tests and benchmarks).
    var winogradForward: Bool { winograd != nil }
    /// Whether the input gradient does.
    var winogradInputGradient: Bool { winogradData != nil }

    /// The channel block the output is written in: the kernel's, when an `Activation` can
    /// hold it, else 1 (NCHW).
    var outputBlock: Int { forwardOutput.channelBlock ?? 1 }

    /// True when the forward (and the weight gradient after it) can read an input in `block`.
    func accepts(inputBlock block: Int) -> Bool {
        forwardInput.takes(block: block) && weightsInput?.takes(block: block) ?? true
    }

    /// True when the backward can read ∂output in `block` (computing the input gradient or not).
    func accepts(dOutputBlock block: Int, inputGradient: Bool) -> Bool {
        let weights = weightsDOutput.takes(block: block)
        return inputGradient ? dataDOutput.takes(block: block) && (sharedDOutput || weights) : weights
    }

    /// The block the input gradient is written in when the caller wants `block`: that one if
    /// the kernel writes it or it has a reorder to it, else 1 (NCHW).
    func dInputBlock(wanting block: Int) -> Int { dataDInput.takes(block: block) ? block : 1 }

    /// y = conv(x, w) + b, x in `inputBlock` (which `accepts`), y in `outputBlock`.
    func forward(input x: UnsafePointer<Float>, inputBlock: Int, weights w: UnsafePointer<Float>,
                 bias b: UnsafePointer<Float>?, output y: UnsafeMutablePointer<Float>) throws(OneDNNError) {
        if let winograd, inputBlock == winograd.block, outputBlock == winograd.block {
            // The weight gradient reads the input through the forward's memory.
            _ = try forwardInput.enter(stream, data: x, block: inputBlock)
            try winograd.weights.convolve(winograd.convolution, source: x, destination: y, kernels: w, bias: b,
                                          buffers: winograd.buffers)
            return
        }
        try userWeights.bind(w)
        var arguments = [(DNNL_ARG_SRC, try forwardInput.enter(stream, data: x, block: inputBlock)),
                         (DNNL_ARG_WEIGHTS, try forwardWeights.enter(stream)),
                         (DNNL_ARG_DST, try forwardOutput.enter(stream, data: y, block: outputBlock))]
        if let userBias, let b {
            try userBias.bind(b)
            arguments.append((DNNL_ARG_BIAS, userBias))
        }
        try forward.execute(stream, arguments)
        try forwardOutput.leave(stream)
    }

    /// ∂loss/∂x into `dInput` (when given) in `dInputBlock` (from `dInputBlock(wanting:)`), and
    /// ∂loss/∂w, ∂loss/∂b *added* into `dWeights`, `dBias` (when given), from ∂loss/∂y in
    /// `dOutputBlock` (which `accepts`) and the forward's x (in the block it was given in) and
    /// w. Must follow this plan's forward on the same `x` (whose reordered copy it may read).
    func backward(input x: UnsafePointer<Float>, inputBlock: Int, weights w: UnsafePointer<Float>,
                  dOutput dy: UnsafePointer<Float>, dOutputBlock: Int,
                  dInput dx: UnsafeMutablePointer<Float>?, dInputBlock: Int,
                  dWeights gw: UnsafeMutablePointer<Float>?, dBias gb: UnsafeMutablePointer<Float>?) throws(OneDNNError) {
        if let dx, let winogradData, let winograd, dOutputBlock == winograd.block, dInputBlock == winograd.block {
            // The weight gradient may read ∂output through this memory (`sharedDOutput`).
            _ = try dataDOutput.enter(stream, data: dy, block: dOutputBlock)
            try winogradData.weights.convolve(winogradData.convolution, source: dy, destination: dx, kernels: w, bias: nil,
                                              buffers: winograd.buffers)
        } else if let dx {
            try userWeights.bind(w)
            try backwardData.execute(stream, [(DNNL_ARG_DIFF_DST, try dataDOutput.enter(stream, data: dy, block: dOutputBlock)),
                                              (DNNL_ARG_WEIGHTS, try dataWeights.enter(stream)),
                                              (DNNL_ARG_DIFF_SRC, try dataDInput.enter(stream, data: dx, block: dInputBlock))])
            try dataDInput.leave(stream)
        }
        guard let gw else { return }
        try userDWeights.bind(dWeights.pointer)
        let source = try weightsInput?.enter(stream, data: x, block: inputBlock) ?? forwardInput.memory
        let dOutput = dx != nil && sharedDOutput ? dataDOutput.memory
            : try weightsDOutput.enter(stream, data: dy, block: dOutputBlock)
        var arguments = [(DNNL_ARG_SRC, source), (DNNL_ARG_DIFF_DST, dOutput),
                         (DNNL_ARG_DIFF_WEIGHTS, try weightsDWeights.enter(stream))]
        if let userDBias {
            try userDBias.bind(dBias.pointer)
            arguments.append((DNNL_ARG_DIFF_BIAS, userDBias))
        }
        try backwardWeights.execute(stream, arguments)
        try weightsDWeights.leave(stream)
        Vectorized.add(gw, dWeights.pointer, count: weightCount)
        if let gb, hasBias { Vectorized.add(gb, dBias.pointer, count: biasCount) }
    }
}
