internal import CDNNL

/// A 3x3, stride 1, padding 1 convolution by Winograd F(4x4, 3x3)
/// (`WinogradTransforms`) over NHWC activations for the whole-network inference path
/// (`InferenceGraph`), or over channel-blocked ones in training (`TrainingConvolution`):
/// 4x fewer multiply-adds than the direct convolution, at the cost of transforming each input
/// patch and output tile.
///
/// The output tiles are taken in chunks of `tilesPerChunk`, each worker thread its own chunks
/// with its own buffers (shared with the network's other Winograd convolutions): input transform into V (36 × tiles × C), 36 matrix products
/// M[k] = V[k]·U[k] by a oneDNN matmul primitive (single-threaded inside the worker, with the
/// weights U (36 × C × OC) packed once per model version in the layout the primitive chose),
/// output transform with bias, ReLU and residual sum into the destination. Chunks keep V and
/// M in the core's cache; a whole-batch V and M would be 2.25x the activations each.
///
/// Measured on an Intel Xeon (Sapphire Rapids, AVX-512, 2 cores) with a C prototype of this
/// scheme beside oneDNN's direct convolution: 1.5–2.7x faster for the 3x3 layers of ResNet-18 and
/// the small CNN at batch 16 and for the early ones at batch 1, and 3x slower for ResNet-18's
/// last stage at batch 1 (4 tiles for 2.4 million weights), which is why a convolution needs
/// at least `minimumTilesPerChunk` tiles per worker.
///
/// source (N, H, W, C) NHWC · weights (OC, C, 3, 3) + bias (OC) → destination (N, H, W, OC) NHWC;
/// in training both channel-blocked instead (`TrainingConvolution`).
final class WinogradConvolution {
    /// The layout the matrix products want U in (`PackedWeights(winogradLayout:…)`).
    let weightsLayout: MemoryDescriptor
    let tilesPerChunk: Int
    /// The source's and the destination's layouts: NHWC, or channel-blocked in training.
    private let sourceLayout: WinogradTransforms.Layout, destinationLayout: WinogradTransforms.Layout
    /// Output tiles of 4x4 over the batch.
    let tileCount: Int
    private let epilogue: WinogradTransforms.Epilogue
    private let workers: [Worker]

    /// Most tiles per chunk: 64 keeps V and M of a 64-channel layer within 1.2 MB.
    static let maximumTilesPerChunk = 64
    /// Fewest tiles per chunk worth the weights' traffic (each chunk reads all of U).
    static let minimumTilesPerChunk = 24

    /// One worker's matrix-product primitive, stream, and memories over its chunk buffers.
    private final class Worker {
        let product: Primitive
        let stream: Stream
        let source: Memory, destination: Memory

        init(product pd: dnnl_primitive_desc_t, source: MemoryDescriptor, destination: MemoryDescriptor,
             engine: dnnl_engine_t) throws(OneDNNError) {
            product = try Primitive(consuming: pd, "a Winograd matrix product")
            stream = try Stream(engine: engine)
            self.source = try Memory(source, engine: engine, owned: false)
            self.destination = try Memory(destination, engine: engine, owned: false)
        }
    }

    /// Chunk buffers `run` needs: V and M for each worker.
    var bufferCount: Int { 2 * workers.count }

    /// Fewest channels (the harmonic mean of input and output channels) worth the transforms
    /// where the matrix products run on AVX-512.
    static let minimumChannelsWithAVX512 = 64
    /// The same on AVX2 (and below): half, as each multiply-add the products save costs twice
    /// the instructions there, while the transforms, which wait on memory, cost the same.
    static let minimumChannelsWithAVX2 = 32

    /// Fewest channels worth the transforms on this machine (`OneDNN.usesAVX512`).
    static var minimumChannels: Int {
        OneDNN.usesAVX512 ? minimumChannelsWithAVX512 : minimumChannelsWithAVX2
    }

    /// Whether the saving repays the transforms: per tile the products save 108·C·OC
    /// multiply-adds, and the transforms cost about as much per input and per output channel, so
    /// the gain goes with C·OC / (C + OC), half the channels' harmonic mean. Measured on the
    /// Xeon (whole networks, alternating runs with and without): with AVX-512, DenseNet-121's
    /// 128 → 32 (harmonic mean 51) was 7–17% slower at batch 1 (6 pairs) and no faster at 16,
    /// the small CNN's 32 → 64 (43) neither faster nor slower, ResNet-18's 64 → 64 and wider
    /// faster; with oneDNN held to AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`), DenseNet-121 by Winograd
    /// was faster in 5 of 5 pairs at batch 1 (15.2–17.4 → 17.2–19.7 img/s) and 8 of 8 at 16,
    /// the small CNN with its 32 → 64 in 4 of 4 at batch 1 and at 16.
    static func gains(channels c: Int, outChannels oc: Int, minimumChannels: Int = minimumChannels) -> Bool {
        2 * c * oc >= minimumChannels * (c + oc)
    }

    /// Tiles per chunk for `tiles` output tiles over `workers` threads: at most
    /// `maximumTilesPerChunk`, in a number of chunks that is a multiple of the workers so each
    /// gets the same share (196 tiles on 2 workers: 4 chunks of 49, not 64, 64, 64 and 4); nil
    /// when a chunk would be too small to repay reading the transformed weights.
    static func tilesPerChunk(tiles: Int, workers: Int) -> Int? {
        let workers = max(1, workers)
        var chunks = (tiles + maximumTilesPerChunk - 1) / maximumTilesPerChunk
        chunks = (chunks + workers - 1) / workers * workers
        let chunk = (tiles + chunks - 1) / chunks
        return chunk >= minimumTilesPerChunk ? chunk : nil
    }

    /// The convolution of `geometry` over `batch` images into `outChannels` channels, or nil
    /// when it is not a 3x3, stride 1, padding 1 convolution these transforms take, or one too
    /// narrow (`gains(channels:outChannels:)`) or with too few tiles
    /// (`tilesPerChunk(tiles:workers:)`) to gain. Source and destination are NHWC, or with
    /// `channelBlock` both in that channel-blocked layout (nil when the channels do not divide
    /// into it). `minimumChannels` is this machine's unless a test asks for another.
    init?(geometry g: ConvGeometry, batch: Int, outChannels oc: Int, epilogue: WinogradTransforms.Epilogue,
          channelBlock: Int? = nil, minimumChannels: Int = WinogradConvolution.minimumChannels) throws(OneDNNError) {
        guard g.kernelH == 3, g.kernelW == 3, g.stride == 1, g.padding == 1,
              WinogradTransforms.supports(channels: g.channels, outChannels: oc),
              Self.gains(channels: g.channels, outChannels: oc, minimumChannels: minimumChannels) else { return nil }
        if let channelBlock {
            guard WinogradTransforms.Layout.takes(channels: g.channels, block: channelBlock),
                  WinogradTransforms.Layout.takes(channels: oc, block: channelBlock) else { return nil }
        }
        let (rows, columns) = WinogradTransforms.tiles(height: g.height, width: g.width)
        let tiles = batch * rows * columns, threads = Parallel.workers
        guard let chunk = Self.tilesPerChunk(tiles: tiles, workers: threads) else { return nil }
        let engine = try OneDNN.requireEngine()
        let products = WinogradTransforms.products
        let source = try MemoryDescriptor([products, chunk, g.channels], dnnl_abc)
        let destination = try MemoryDescriptor([products, chunk, oc], dnnl_abc)
        let anyWeights = try MemoryDescriptor([products, g.channels, oc], dnnl_format_tag_any)
        var made: [Worker] = []
        var layout: MemoryDescriptor?
        for _ in 0..<threads {
            let attributes = try PrimitiveAttributes()
            var pd: dnnl_primitive_desc_t?
            try OneDNN.check(dnnl_matmul_primitive_desc_create(&pd, engine, source.handle, anyWeights.handle, nil,
                                                               destination.handle, attributes.handle),
                             "a Winograd matrix product \([products, chunk, g.channels]) by \([products, g.channels, oc])")
            guard let pd else { throw OneDNNError(operation: "a Winograd matrix product", status: -1) }
            if layout == nil {
                do {
                    layout = try MemoryDescriptor(copying: dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0))
                } catch {
                    dnnl_primitive_desc_destroy(pd)
                    throw error
                }
            }
            made.append(try Worker(product: pd, source: source, destination: destination, engine: engine))
        }
        guard let layout else { return nil }
        weightsLayout = layout
        tilesPerChunk = chunk
        sourceLayout = .init(height: g.height, width: g.width, channels: g.channels, block: channelBlock ?? g.channels)
        destinationLayout = .init(height: g.height, width: g.width, channels: oc, block: channelBlock ?? oc)
        tileCount = tiles
        self.epilogue = epilogue
        workers = made
    }

    /// destination = epilogue(convolution(source) + bias) with `weights` (packed into
    /// `weightsLayout`, `PackedWeights(winogradLayout:…)`); with `epilogue.sum` the destination
    /// holds what is added. `buffers` (at least `bufferCount`) hold the chunks' V and M; a
    /// network's convolutions share them, one at a time.
    func run(source x: UnsafePointer<Float>, destination y: UnsafeMutablePointer<Float>,
             weights: PackedWeights, buffers: [FloatBuffer]) throws(OneDNNError) {
        try weights.foldedBias.withUnsafeBufferPointer { (bias) throws(OneDNNError) in
            guard let bias = bias.baseAddress else { return }
            try run(source: x, destination: y, weights: weights.weights, bias: bias, buffers: buffers)
        }
    }

    /// The same with U already in `weightsLayout` (`WinogradStepWeights`) and `bias` (OC).
    func run(source x: UnsafePointer<Float>, destination y: UnsafeMutablePointer<Float>,
             weights: Memory, bias: UnsafePointer<Float>, buffers: [FloatBuffer]) throws(OneDNNError) {
        guard buffers.count >= bufferCount else {
            throw OneDNNError(operation: "a Winograd convolution given \(buffers.count) of \(bufferCount) chunk buffers", status: -1)
        }
        // V (36 × chunk × C) and M (36 × chunk × OC) of each worker.
        var chunkBuffers: [(v: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>)] = []
        for (index, worker) in workers.enumerated() {
            let v = buffers[2 * index].reserve(worker.source.descriptor.floatCount)
            let m = buffers[2 * index + 1].reserve(worker.destination.descriptor.floatCount)
            try worker.source.bind(v)
            try worker.destination.bind(m)
            chunkBuffers.append((v, m))
        }
        let chunks = (tileCount + tilesPerChunk - 1) / tilesPerChunk
        let failures = UnsafeMutableBufferPointer<OneDNNError?>.allocate(capacity: workers.count)
        failures.initialize(repeating: nil)
        defer { failures.deallocate() }
        Parallel.forEach(workers.count) { index in
            let worker = workers[index], (v, m) = chunkBuffers[index]
            for chunk in stride(from: index, to: chunks, by: workers.count) {
                let tiles = (chunk * tilesPerChunk)..<min(tileCount, (chunk + 1) * tilesPerChunk)
                WinogradTransforms.transformInput(x, layout: sourceLayout, tiles: tiles, tilesPerChunk: tilesPerChunk, into: v)
                do throws(OneDNNError) {
                    try worker.product.execute(worker.stream, [(DNNL_ARG_SRC, worker.source), (DNNL_ARG_WEIGHTS, weights),
                                                               (DNNL_ARG_DST, worker.destination)])
                } catch {
                    failures[index] = error
                    return
                }
                WinogradTransforms.transformOutput(m, tiles: tiles, tilesPerChunk: tilesPerChunk, bias: bias,
                                                   epilogue: epilogue, layout: destinationLayout, into: y)
            }
        }
        if let failure = failures.lazy.compactMap({ $0 }).first { throw failure }
    }
}

extension WinogradTransforms.Epilogue {
    /// The epilogue doing what `postOps` do, or nil for a sequence it cannot express (at most
    /// a ReLU, a sum and another ReLU, in that order).
    init?(_ postOps: [ConvolutionPostOp]) {
        self.init()
        for op in postOps {
            switch op {
            case .relu where !sum && !relu: relu = true
            case .relu where sum && !reluAfterSum: reluAfterSum = true
            case .sum where !sum: sum = true
            default: return nil
            }
        }
    }
}
