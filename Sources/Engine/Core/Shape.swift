/// The shape of a batch of activations in NCHW order: N images, C channels, H rows, W columns.
/// Dense activations are (N, C, 1, 1).
public struct Shape: Hashable, Sendable, CustomStringConvertible {
    public var n: Int
    public var c: Int
    public var h: Int
    public var w: Int

    public init(n: Int, c: Int, h: Int = 1, w: Int = 1) {
        precondition(n >= 0 && c >= 0 && h >= 0 && w >= 0, "negative dimension")
        self.n = n; self.c = c; self.h = h; self.w = w
    }

    /// Elements in one image: C·H·W.
    public var perImage: Int { c * h * w }
    /// Elements in one channel plane: H·W.
    public var plane: Int { h * w }
    /// Elements in the whole batch.
    public var count: Int { n * c * h * w }

    public var description: String { "(\(n), \(c), \(h), \(w))" }
}

/// A non-owning view of a batch of activations. The memory belongs to the layer that
/// produced it (or to the caller for a network input) and stays valid until that layer's
/// next forward pass.
///
/// The layout is NCHW unless `channelBlock` is above 1: then it is oneDNN's blocked layout
/// nChw8c or nChw16c, (N, C/b, H, W, b) for b = `channelBlock`, which training convolutions
/// read and write without reordering (see `ChannelBlocks`). Layers that only know NCHW
/// convert a blocked input first; a layer's input gradient has its input's layout.
public struct Activation {
    public var data: UnsafeMutablePointer<Float>
    public var shape: Shape
    /// Elements between the first elements of consecutive images. `shape.perImage` unless the
    /// view is a channel slice of a wider buffer (the shared feature buffer of a dense block).
    public var imageStride: Int
    /// Channels per block: 1 for NCHW, 8 or 16 for nChw8c / nChw16c (C a multiple of it,
    /// images contiguous).
    public var channelBlock: Int

    /// An NCHW view (a channel slice of a wider buffer when `imageStride` is given).
    public init(data: UnsafeMutablePointer<Float>, shape: Shape, imageStride: Int? = nil) {
        self.data = data
        self.shape = shape
        self.imageStride = imageStride ?? shape.perImage
        self.channelBlock = 1
    }

    /// A contiguous view in layout `channelBlock`; the engine makes these only for a block that
    /// divides C (a layout oneDNN reported, `MemoryDescriptor.channelBlock`).
    init(data: UnsafeMutablePointer<Float>, shape: Shape, channelBlock: Int) {
        self.init(data: data, shape: shape)
        self.channelBlock = channelBlock
    }

    /// True in NCHW order.
    public var isPlain: Bool { channelBlock == 1 }

    /// True when the images are packed one after another with no gap.
    public var isContiguous: Bool { imageStride == shape.perImage }

    /// Image `index`'s first element.
    @inline(__always) public func image(_ index: Int) -> UnsafeMutablePointer<Float> {
        data + index * imageStride
    }

    /// A view for layers that skip an input gradient nobody asked for.
    static var none: Activation { Activation(data: FloatBuffer.empty, shape: Shape(n: 0, c: 0)) }
}

/// Whether a forward pass trains (batch statistics, dropout, state kept for backward) or
/// infers (running statistics, no dropout, nothing kept).
public enum Mode: Sendable {
    case training
    case inference
}
