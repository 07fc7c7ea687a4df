internal import CDNNL

/// Inference through oneDNN for one batch shape over a run of a network's layers, with the
/// activations kept in NHWC from the first convolution to the last supported layer: the input
/// is reordered once, every convolution has its batch norm folded into its weights and its
/// ReLU as a post-op (the 3x3 stride-1 ones wide enough run by Winograd's algorithm,
/// `WinogradConvolution`, with the same folding and the post-ops in its output transform), a
/// residual block's addition and ReLU are post-ops of its last convolution writing onto the
/// shortcut's result (`ConvolutionPostOp.sum`), and max and
/// global average pooling are oneDNN primitives. Layer by layer (`FusedConvolution`) each
/// convolution reorders its input in and its output out, and pooling and additions run in
/// NCHW between them; in ResNet-18 those reorders alone were 12–16% of inference.
///
/// The graph covers the layers from the first while they are convolutions (each optionally
/// followed by a batch norm and a ReLU), max pools, residual blocks whose paths are such
/// convolutions, dropout (nothing in inference), and a global average pool, which ends it. The
/// rest (`remainder`: the head, or a DenseNet from its first dense block) runs layer by layer
/// on the graph's NCHW output. The packed weights are the layers' own (`ConvolutionPlans`), so a
/// new model version or new batch-norm statistics are followed as the layer path follows them.
///
/// input (N, C, H, W) NCHW → output of the covered layers, NCHW.
final class InferenceGraph {
    /// The layers after the covered ones, run layer by layer.
    let remainder: Sequential
    /// Convolutions the graph runs.
    let convolutionCount: Int
    /// Of those, the ones computed by Winograd's algorithm (`WinogradConvolution`).
    let winogradCount: Int
    /// Chunk buffers its Winograd convolutions need (`run`'s `chunkBuffers`).
    let chunkBufferCount: Int
    private let steps: [Step]
    private let stream: Stream
    /// Floats each activation buffer needs; the last is the NCHW output.
    private let bufferSizes: [Int]
    private let outputShape: Shape
    private let output: Operand

    /// Activation buffers a graph uses (four for a bottleneck block with a downsampling
    /// shortcut: its input, the shortcut's result and two for the main path), then the output.
    static let bufferCount = 5
    private static let outputBuffer = bufferCount - 1

    /// Where an argument's data lives.
    private enum Operand: Equatable {
        case input
        case buffer(Int)
    }

    /// A memory of one step, pointed at its operand's data at each run.
    private struct Argument {
        let kind: Int32
        let memory: Memory
        let operand: Operand
    }

    /// A convolution's layers, whose packed weights are asked for at each run.
    private struct ConvolutionSource {
        let conv: Conv2D
        let batchNorm: BatchNorm2D?
        let relu: Bool
        let layout: MemoryDescriptor
        /// The weights are for a `WinogradConvolution`.
        var winograd = false

        func weights() throws(OneDNNError) -> PackedWeights {
            let oc = conv.outChannels
            let (scale, shift) = batchNorm?.inferenceAffine() ?? (.init(repeating: 1, count: oc), .init(repeating: 0, count: oc))
            return try conv.plans.packedWeights(for: layout, winograd: winograd, weight: conv.weight, bias: conv.bias,
                                                scale: scale, shift: shift, relu: relu)
        }
    }

    private enum Step {
        /// A oneDNN primitive; a convolution's weights are asked of its layers at each run.
        case primitive(Primitive, [Argument], convolution: ConvolutionSource?)
        /// A batch norm before a convolution, computed here.
        case affine(ChannelAffine, from: Operand, to: Operand)
        /// A 3x3 convolution by Winograd's algorithm.
        case winograd(WinogradConvolution, from: Operand, to: Operand, convolution: ConvolutionSource)
    }

    /// A graph for inputs of `shape` over `layers`, or nil when it would cover no convolution.
    init?(layers: [Layer], shape: Shape) throws(OneDNNError) {
        var builder = try Builder(shape: shape)
        let covered = try builder.cover(layers)
        guard builder.convolutions > 0 else { return nil }
        try builder.finish()
        steps = builder.steps
        stream = builder.stream
        bufferSizes = builder.sizes
        outputShape = builder.shape
        output = builder.current
        convolutionCount = builder.convolutions
        winogradCount = builder.steps.count { if case .winograd = $0 { true } else { false } }
        chunkBufferCount = builder.steps.map { if case .winograd(let w, _, _, _) = $0 { w.bufferCount } else { 0 } }.max() ?? 0
        remainder = Sequential(Array(layers[covered...]))
    }

    /// Runs the covered layers on `x` (of the graph's shape, contiguous) with `buffers` (at least
    /// `bufferCount`) as activation memory and `chunkBuffers` (at least `chunkBufferCount`) as
    /// the Winograd convolutions', and returns their output: a view of one of the buffers, valid
    /// until they are used again. Throws `OneDNNError.nonFiniteWeights` when a
    /// convolution's weights fold to values that are not finite (the layers compute it then).
    func run(_ x: Activation, buffers: [FloatBuffer], chunkBuffers: [FloatBuffer]) throws(OneDNNError) -> Activation {
        let pointers = bufferSizes.indices.map { buffers[$0].reserve(bufferSizes[$0]) }
        func pointer(_ operand: Operand) -> UnsafeMutablePointer<Float> {
            switch operand {
            case .input: return x.data
            case .buffer(let index): return pointers[index]
            }
        }
        for step in steps {
            switch step {
            case .primitive(let primitive, let bound, let convolution):
                var arguments: [(Int32, Memory)] = []
                for argument in bound {
                    try argument.memory.bind(pointer(argument.operand))
                    arguments.append((argument.kind, argument.memory))
                }
                if let source = convolution {
                    let packed = try source.weights()
                    arguments += [(DNNL_ARG_WEIGHTS, packed.weights), (DNNL_ARG_BIAS, packed.bias)]
                }
                try primitive.execute(stream, arguments)
            case .affine(let affine, let from, let to):
                affine.run(source: pointer(from), destination: pointer(to))
            case .winograd(let convolution, let from, let to, let source):
                try convolution.run(source: pointer(from), destination: pointer(to), weights: try source.weights(),
                                    buffers: chunkBuffers)
            }
        }
        return Activation(data: pointer(output), shape: outputShape)
    }

    /// Turns layers into steps, tracking where the current activation is.
    private struct Builder {
        let engine: dnnl_engine_t
        let stream: Stream
        var steps: [Step] = []
        var sizes = [Int](repeating: 0, count: InferenceGraph.bufferCount)
        var shape: Shape
        var current = Operand.input
        var convolutions = 0

        init(shape: Shape) throws(OneDNNError) {
            engine = try OneDNN.requireEngine()
            stream = try Stream(engine: engine)
            self.shape = shape
        }

        /// Covers layers from the first while they are supported; returns how many it covered.
        mutating func cover(_ layers: [Layer]) throws(OneDNNError) -> Int {
            var index = 0
            while index < layers.count {
                let layer = layers[index]
                if let chain = ConvolutionChain(layers, from: index, maxLinks: 1) {
                    let link = chain.links[0]
                    try enterNHWC()
                    let destination = free(excluding: [current])
                    try convolve(link, from: current, to: destination, postOps: link.relu ? [.relu] : [])
                    current = .buffer(destination)
                    index += chain.length
                } else if let pool = layer as? MaxPool2D {
                    try enterNHWC()
                    let out = pool.outputShape(for: shape), destination = free(excluding: [current])
                    try pooling(dnnl_pooling_max, kernel: pool.kernelSize, stride: pool.stride, padding: pool.padding,
                                out: out, to: .buffer(destination))
                    current = .buffer(destination); shape = out
                    index += 1
                } else if let block = layer as? ResidualBlock, let main = ConvolutionChain(block.main.layers, from: 0),
                          main.length == block.main.layers.count, main.links.count >= 2 {
                    let shortcut = block.shortcut.flatMap { ConvolutionChain($0.layers, from: 0) }
                    if let path = block.shortcut, shortcut?.length != path.layers.count || shortcut?.links.count != 1 { break }
                    try enterNHWC()
                    try residual(main: main.links, shortcut: shortcut?.links.first)
                    index += 1
                } else if let block = layer as? DenseBlock, let parts = DenseLayerParts(block) {
                    try enterNHWC()
                    try dense(block, parts)
                    index += 1
                } else if let batchNorm = layer as? BatchNorm2D {
                    try enterNHWC()
                    let followedByReLU = index + 1 < layers.count && layers[index + 1] is ReLU
                    let destination = free(excluding: [current])
                    affine(batchNorm, relu: batchNorm.relu || followedByReLU, from: current, stride: shape.c, to: destination)
                    current = .buffer(destination)
                    index += followedByReLU ? 2 : 1
                } else if let pool = layer as? AvgPool2D {
                    try enterNHWC()
                    let out = pool.outputShape(for: shape), destination = free(excluding: [current])
                    try pooling(dnnl_pooling_avg_exclude_padding, kernel: pool.kernelSize, stride: pool.stride, padding: 0,
                                out: out, to: .buffer(destination))
                    current = .buffer(destination); shape = out
                    index += 1
                } else if layer is Dropout {
                    index += 1 // nothing in inference
                } else if layer is GlobalAvgPool, current != .input {
                    let out = Shape(n: shape.n, c: shape.c)
                    // (N, C, 1, 1) is the same memory in NHWC and NCHW: the output as it is.
                    try pooling(dnnl_pooling_avg_exclude_padding, kernel: (shape.h, shape.w), stride: 1, padding: 0,
                                out: out, to: .buffer(InferenceGraph.outputBuffer))
                    current = .buffer(InferenceGraph.outputBuffer); shape = out
                    return index + 1
                } else {
                    break
                }
            }
            return index
        }

        /// The covered layers end in NHWC with a spatial extent: reorders to the NCHW output.
        mutating func finish() throws(OneDNNError) {
            guard current != .buffer(InferenceGraph.outputBuffer), shape.h * shape.w > 1 else { return }
            let from = try MemoryDescriptor(dims, dnnl_nhwc), to = try MemoryDescriptor(dims, dnnl_nchw)
            try reorder(from: from, current, to: to, .buffer(InferenceGraph.outputBuffer))
            current = .buffer(InferenceGraph.outputBuffer)
        }

        private var dims: [Int] { [shape.n, shape.c, shape.h, shape.w] }

        /// Reorders the network's NCHW input to NHWC before the first step.
        private mutating func enterNHWC() throws(OneDNNError) {
            guard current == .input else { return }
            let from = try MemoryDescriptor(dims, dnnl_nchw), to = try MemoryDescriptor(dims, dnnl_nhwc)
            try reorder(from: from, .input, to: to, .buffer(0))
            current = .buffer(0)
        }

        /// y = relu?(main(x) + shortcut(x)): the shortcut (x itself, or its convolution into a
        /// buffer of its own), then the main path through two buffers it alternates between,
        /// its last convolution adding onto the shortcut's result and applying the ReLU.
        private mutating func residual(main: [ConvolutionChain.Link], shortcut: ConvolutionChain.Link?) throws(OneDNNError) {
            let input = current, inputShape = shape
            var sum = input
            if let shortcut {
                let destination = free(excluding: [input])
                try convolve(shortcut, from: input, to: destination, postOps: shortcut.relu ? [.relu] : [])
                sum = .buffer(destination)
                shape = inputShape
            }
            var from = input
            for (position, link) in main.enumerated() {
                let last = position == main.count - 1
                let destination = last ? sum : .buffer(free(excluding: [input, sum, from]))
                guard case .buffer(let index) = destination else { throw OneDNNError(operation: "a residual block", status: -1) }
                try convolve(link, from: from, to: index, postOps: (link.relu ? [.relu] : []) + (last ? [.sum, .relu] : []))
                from = destination
            }
            current = sum
        }

        /// A dense block in one NHWC buffer of all its channels: the input copied into the first,
        /// then for each layer its batch norm and ReLU of the channels so far into a buffer of
        /// their own, its convolutions (batch norms folded in) through two buffers, and its
        /// `growth` new channels copied into their place.
        private mutating func dense(_ block: DenseBlock, _ parts: DenseLayerParts) throws(OneDNNError) {
            let input = current, inputShape = shape
            let whole = Shape(n: shape.n, c: block.outputChannels, h: shape.h, w: shape.w)
            let all = free(excluding: [input])
            sizes[all] = max(sizes[all], whole.count)
            let wholeDescriptor = try MemoryDescriptor([whole.n, whole.c, whole.h, whole.w], dnnl_nhwc)
            func part(_ channels: Range<Int>) throws(OneDNNError) -> MemoryDescriptor {
                try MemoryDescriptor(part: [whole.n, channels.count, whole.h, whole.w], at: [0, channels.lowerBound, 0, 0],
                                     of: wholeDescriptor)
            }
            try reorder(from: MemoryDescriptor(dims, dnnl_nhwc), input, to: part(0..<inputShape.c), .buffer(all))
            for (position, layer) in parts.layers.enumerated() {
                let channels = block.inputChannels + position * block.growth
                shape = Shape(n: whole.n, c: channels, h: whole.h, w: whole.w)
                let normalised = free(excluding: [.buffer(all)])
                affine(layer.batchNorm, relu: true, from: .buffer(all), stride: whole.c, to: normalised)
                var from = normalised
                for link in layer.convolutions {
                    let destination = free(excluding: [.buffer(all), .buffer(from)])
                    try convolve(link, from: .buffer(from), to: destination, postOps: link.relu ? [.relu] : [])
                    from = destination
                }
                try reorder(from: MemoryDescriptor(dims, dnnl_nhwc), .buffer(from),
                            to: part(channels..<(channels + block.growth)), .buffer(all))
            }
            current = .buffer(all); shape = whole
        }

        /// A batch norm (and ReLU) of the current shape's channels, read `stride` floats per
        /// pixel from `source`, into buffer `destination`.
        private mutating func affine(_ batchNorm: BatchNorm2D, relu: Bool, from source: Operand, stride: Int, to destination: Int) {
            let pixels = shape.n * shape.h * shape.w
            sizes[destination] = max(sizes[destination], pixels * shape.c)
            steps.append(.affine(ChannelAffine(batchNorm: batchNorm, relu: relu, pixels: pixels, channels: shape.c, sourceStride: stride),
                                 from: source, to: .buffer(destination)))
        }

        /// One convolution from `source` (NHWC, of the current shape) to buffer `destination`:
        /// by Winograd's algorithm where it applies (`WinogradConvolution`, unless
        /// `EngineSettings.winograd` is off), else a oneDNN convolution primitive.
        private mutating func convolve(_ link: ConvolutionChain.Link, from source: Operand, to destination: Int,
                                       postOps: [ConvolutionPostOp]) throws(OneDNNError) {
            let g = link.conv.geometry(shape), out = link.conv.outputShape(for: shape)
            if EngineSettings.winograd, let epilogue = WinogradTransforms.Epilogue(postOps),
               let made = try WinogradConvolution(geometry: g, batch: shape.n, outChannels: link.conv.outChannels, epilogue: epilogue) {
                // Both buffers are NHWC and as large as the direct convolution's.
                sizes[destination] = max(sizes[destination], out.count)
                if case .buffer(let index) = source { sizes[index] = max(sizes[index], shape.count) }
                var weights = ConvolutionSource(conv: link.conv, batchNorm: link.batchNorm, relu: link.relu, layout: made.weightsLayout)
                weights.winograd = true
                steps.append(.winograd(made, from: source, to: .buffer(destination), convolution: weights))
                convolutions += 1
                shape = out
                return
            }
            let made = try InferenceConvolution(geometry: g, batch: shape.n, outChannels: link.conv.outChannels,
                                                activationLayout: dnnl_nhwc, postOps: postOps)
            let arguments = [try argument(DNNL_ARG_SRC, made.source, source),
                             try argument(DNNL_ARG_DST, made.destination, .buffer(destination))]
            steps.append(.primitive(made.primitive, arguments,
                                    convolution: ConvolutionSource(conv: link.conv, batchNorm: link.batchNorm, relu: link.relu,
                                                                   layout: made.weights)))
            convolutions += 1
            shape = out
        }

        /// Max or average pooling of the current activation (NHWC) into `destination`.
        private mutating func pooling(_ kind: dnnl_alg_kind_t, kernel: (Int, Int), stride: Int, padding: Int,
                                      out: Shape, to destination: Operand) throws(OneDNNError) {
            let source = try MemoryDescriptor(dims, dnnl_nhwc)
            let target = try MemoryDescriptor([out.n, out.c, out.h, out.w], dnnl_nhwc)
            let attributes = try PrimitiveAttributes()
            var pd: dnnl_primitive_desc_t?
            let strides = [Int64(stride), Int64(stride)], window = [Int64(kernel.0), Int64(kernel.1)]
            let pad = [Int64(padding), Int64(padding)], dilation: [Int64] = [0, 0]
            try OneDNN.check(dnnl_pooling_forward_primitive_desc_create(
                &pd, engine, dnnl_forward_inference, kind, source.handle, target.handle, strides, window, dilation,
                pad, pad, attributes.handle), "pooling \(dims) by \(kernel)")
            guard let pd else { throw OneDNNError(operation: "pooling", status: -1) }
            let primitive = try Primitive(consuming: pd, "pooling")
            steps.append(.primitive(primitive, [try argument(DNNL_ARG_SRC, source, current), try argument(DNNL_ARG_DST, target, destination)],
                                    convolution: nil))
        }

        private mutating func pooling(_ kind: dnnl_alg_kind_t, kernel: Int, stride: Int, padding: Int,
                                      out: Shape, to destination: Operand) throws(OneDNNError) {
            try pooling(kind, kernel: (kernel, kernel), stride: stride, padding: padding, out: out, to: destination)
        }

        private mutating func reorder(from: MemoryDescriptor, _ source: Operand, to: MemoryDescriptor,
                                      _ destination: Operand) throws(OneDNNError) {
            let primitive = try Primitive(reorderFrom: from, to: to, engine: engine)
            steps.append(.primitive(primitive, [try argument(DNNL_ARG_FROM, from, source), try argument(DNNL_ARG_TO, to, destination)],
                                    convolution: nil))
        }

        /// A memory for `descriptor` on `operand`, growing the buffer it lives in to fit.
        private mutating func argument(_ kind: Int32, _ descriptor: MemoryDescriptor, _ operand: Operand) throws(OneDNNError) -> Argument {
            if case .buffer(let index) = operand { sizes[index] = max(sizes[index], descriptor.floatCount) }
            return Argument(kind: kind, memory: try Memory(descriptor, engine: engine, owned: false), operand: operand)
        }

        /// The first activation buffer (not the output's) that is none of `taken`.
        private func free(excluding taken: [Operand]) -> Int {
            (0..<InferenceGraph.outputBuffer).first { !taken.contains(.buffer($0)) } ?? 0
        }
    }
}

/// Convolutions each followed by an optional batch norm and an optional ReLU, read from a list
/// of layers as `Sequential`'s inference fuses them.
struct ConvolutionChain {
    struct Link {
        let conv: Conv2D
        let batchNorm: BatchNorm2D?
        /// A ReLU follows (the batch norm's own or a separate layer).
        let relu: Bool
    }

    let links: [Link]
    /// Layers the chain spans.
    let length: Int

    /// The chain starting at `layers[start]` (at most `maxLinks` convolutions long), or nil
    /// when that is not a convolution.
    init?(_ layers: [Layer], from start: Int, maxLinks: Int = .max) {
        var links: [Link] = [], index = start
        while index < layers.count, links.count < maxLinks, let conv = layers[index] as? Conv2D {
            index += 1
            let batchNorm = index < layers.count ? layers[index] as? BatchNorm2D : nil
            if batchNorm != nil { index += 1 }
            var relu = batchNorm?.relu ?? false
            if index < layers.count, layers[index] is ReLU { relu = true; index += 1 }
            links.append(Link(conv: conv, batchNorm: batchNorm, relu: relu))
        }
        guard !links.isEmpty else { return nil }
        self.links = links
        length = index - start
    }
}

/// A dense block's layers as the graph runs them: each a batch norm with ReLU, then a chain of
/// convolutions ending in the block's `growth` channels (DenseNet-BC: 1x1 with the next batch
/// norm and ReLU folded in, then 3x3).
struct DenseLayerParts {
    struct Part {
        let batchNorm: BatchNorm2D
        let convolutions: [ConvolutionChain.Link]
    }

    let layers: [Part]

    /// The parts of `block`'s layers, or nil when a layer is not of that form.
    init?(_ block: DenseBlock) {
        var layers: [Part] = []
        for layer in block.layers {
            guard let batchNorm = layer.layers.first as? BatchNorm2D, batchNorm.relu,
                  let chain = ConvolutionChain(layer.layers, from: 1), chain.length == layer.layers.count - 1,
                  chain.links.last?.conv.outChannels == block.growth else { return nil }
            layers.append(Part(batchNorm: batchNorm, convolutions: chain.links))
        }
        self.layers = layers
    }
}
