/// A DenseNet block: each layer sees the concatenation of the block's input and every earlier
/// layer's output, and the block returns the concatenation of all of them.
///
/// The concatenation is built in place: one (N, C₀ + L·growth, H, W) buffer holds the input in
/// its first C₀ channels and each layer writes its `growth` channels after those of the layers
/// before it, so layer i reads the first C₀ + i·growth channels as a strided view and nothing
/// is copied twice. Backward walks the layers in reverse, adding each layer's input gradient
/// into the channels it read.
///
/// input (N, C₀, H, W) → output (N, C₀ + L·growth, H, W).
public final class DenseBlock: Layer {
    let layers: [Sequential]
    let inputChannels: Int, growth: Int
    private let features = FloatBuffer(), dFeatures = FloatBuffer()
    private let slice = FloatBuffer(), dInput = FloatBuffer()
    private var inputShape: Shape?
    /// The input's channel block, which the input gradient is returned in (the block itself is NCHW).
    private var inputBlock = 1
    private let convertedDInput = FloatBuffer()

    /// `layers[i]` maps C₀ + i·growth channels to `growth` channels.
    init(layers: [Sequential], inputChannels: Int, growth: Int) {
        self.layers = layers; self.inputChannels = inputChannels; self.growth = growth
    }

    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
    public var buffers: [StateBuffer] { layers.flatMap(\.buffers) }

    var outputChannels: Int { inputChannels + layers.count * growth }

    public func outputShape(for s: Shape) -> Shape {
        precondition(s.c == inputChannels, "DenseBlock: input has \(s.c) channels, expected \(inputChannels)")
        return Shape(n: s.n, c: outputChannels, h: s.h, w: s.w)
    }

    public func forward(_ x: Activation, mode: Mode) -> Activation {
        precondition(x.isContiguous)
        let out = features.view(outputShape(for: x.shape))
        let plane = x.shape.plane
        inputBlock = x.channelBlock
        ChannelBlocks.copy(x, to: Activation(data: out.data, shape: x.shape, imageStride: out.shape.perImage))
        for (index, layer) in layers.enumerated() {
            let channels = inputChannels + index * growth
            let view = Activation(data: out.data, shape: Shape(n: x.shape.n, c: channels, h: x.shape.h, w: x.shape.w),
                                  imageStride: out.shape.perImage)
            let new = layer.forward(view, mode: mode)
            precondition(new.shape.c == growth && new.isContiguous)
            // Into its channels of the NCHW buffer (from the convolution's blocked layout, often).
            ChannelBlocks.copy(new, to: Activation(data: out.data + channels * plane, shape: new.shape,
                                                   imageStride: out.shape.perImage))
        }
        inputShape = mode == .training ? x.shape : nil
        return out
    }

    public func backward(_ dy: Activation, inputGradient: Bool) -> Activation {
        guard let s = inputShape else { preconditionFailure("DenseBlock.backward without a training forward") }
        let os = outputShape(for: s), plane = s.plane
        let dAll = dFeatures.view(os)
        ChannelBlocks.copy(dy, to: dAll)
        for (index, layer) in layers.enumerated().reversed() {
            let channels = inputChannels + index * growth
            let dNew = slice.view(Shape(n: s.n, c: growth, h: s.h, w: s.w))
            for i in 0..<s.n { dNew.image(i).update(from: dAll.image(i) + channels * plane, count: growth * plane) }
            let needed = index > 0 || inputGradient
            let dIn = layer.backward(dNew, inputGradient: needed)
            guard needed else { continue }
            let count = channels * plane
            for i in 0..<s.n {
                let src = dIn.image(i), dst = dAll.image(i)
                for j in 0..<count { dst[j] += src[j] }
            }
        }
        guard inputGradient else { return .none }
        let dx = dInput.view(s)
        for i in 0..<s.n { dx.image(i).update(from: dAll.image(i), count: s.perImage) }
        return dx.laidOut(inputBlock, using: convertedDInput)
    }
}
