internal import CDNNL

/// A training convolution's weights transformed for Winograd's F(4x4, 3x3) at every step
/// (`TrainingConvolution`): U (36, C, OC) (`WinogradTransforms.transformWeights`) in buffers
/// kept from step to step, in the layout a `WinogradConvolution`'s matrix products chose, with
/// a zero bias. Where that layout is the plain one, the transform writes straight into the
/// memory the products read; otherwise it is reordered into it.
///
/// For the input gradient (`transposed`) the convolution runs from OC channels back to C
/// with each kernel turned by 180°: w'[c][o][ky][kx] = w[o][c][2 − ky][2 − kx], so the
/// gradient of a 3x3, stride-1, padding-1 convolution is one itself.
final class WinogradStepWeights {
    /// U as the matrix products read it.
    private let memory: Memory
    /// OC zeros: the bias of the input gradient, and of a forward without one.
    private let zeroBias: [Float]
    private let plain: FloatBuffer
    private let plainMemory: Memory
    private let reorder: Primitive?
    private let stream: Stream
    private let channels: Int, outChannels: Int
    /// w' (C, OC, 3, 3) of the input gradient's convolution; nil for the forward's.
    private let turned: FloatBuffer?

    /// U for the convolution from `channels` to `outChannels` channels; `transposed`: of the
    /// input gradient of the convolution from `outChannels` to `channels` (whose weights
    /// `update` is given).
    init(layout: MemoryDescriptor, channels c: Int, outChannels oc: Int, transposed: Bool = false) throws(OneDNNError) {
        let engine = try OneDNN.requireEngine()
        let plainLayout = try MemoryDescriptor([WinogradTransforms.products, c, oc], dnnl_abc)
        plain = FloatBuffer(capacity: WinogradTransforms.products * c * oc)
        plainMemory = try Memory(plainLayout, engine: engine, owned: false)
        try plainMemory.bind(plain.pointer)
        if layout.isEqual(to: plainLayout) {
            memory = plainMemory; reorder = nil
        } else {
            memory = try Memory(layout, engine: engine, owned: true)
            reorder = try Primitive(reorderFrom: plainLayout, to: layout, engine: engine)
        }
        stream = try Stream(engine: engine)
        channels = c; outChannels = oc
        zeroBias = [Float](repeating: 0, count: oc)
        turned = transposed ? FloatBuffer(capacity: 9 * c * oc) : nil
    }

    /// Transforms `w` into `memory`: the forward's (OC, C, 3, 3), or with `transposed` the
    /// weights (C, OC, 3, 3) of the convolution whose input gradient this is. Non-finite weights
    /// give non-finite U, which the products carry into the outputs they reach, as the direct
    /// convolution would.
    func update(_ w: UnsafePointer<Float>) throws(OneDNNError) {
        var kernels = w
        if let turned {
            // w is the forward's (channels, outChannels, 3, 3) in this object's terms.
            let target = turned.pointer, c = channels, oc = outChannels
            Parallel.forEach(oc, costPerItem: 9 * c) { o in
                for ci in 0..<c {
                    let from = w + (ci * oc + o) * 9, to = target + (o * c + ci) * 9
                    for k in 0..<9 { to[k] = from[8 - k] }
                }
            }
            kernels = UnsafePointer(target)
        }
        WinogradTransforms.transformWeights(kernels, outChannels: outChannels, channels: channels, into: plain.pointer)
        if let reorder { try reorder.execute(stream, [(DNNL_ARG_FROM, plainMemory), (DNNL_ARG_TO, memory)]) }
    }

    /// destination = `convolution`(source) + bias (zero when nil) with this step's `w`
    /// (`update`), the chunks in `buffers`.
    func convolve(_ convolution: WinogradConvolution, source: UnsafePointer<Float>, destination: UnsafeMutablePointer<Float>,
                  kernels w: UnsafePointer<Float>, bias: UnsafePointer<Float>?, buffers: [FloatBuffer]) throws(OneDNNError) {
        try update(w)
        try zeroBias.withUnsafeBufferPointer { (zero) throws(OneDNNError) in
            guard let zero = zero.baseAddress else { return }
            try convolution.run(source: source, destination: destination, weights: memory, bias: bias ?? zero, buffers: buffers)
        }
    }
}
