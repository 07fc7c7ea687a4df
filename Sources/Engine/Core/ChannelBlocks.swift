/// Copies between NCHW and oneDNN's channel-blocked layouts nChw8c / nChw16c.
///
/// In the blocked layout with block b, element (n, c, y, x) of an (N, C, H, W) batch lies at
/// ((n·C/b + c/b)·H·W + y·W + x)·b + c mod b: each pixel holds b consecutive channels, so a
/// vector of b lanes is b channels of one pixel. Training convolutions read and write it
/// directly (oneDNN's AVX2 kernels want b = 8, AVX-512's b = 16), and the layers between them
/// that know it (batch norm, ReLU, the residual add, pooling) keep it, so activations are not
/// reordered around every convolution.
enum ChannelBlocks {
    /// Copies `source` into `destination`, which has the same shape and either layout (an NCHW
    /// destination may be a channel slice of a wider buffer, as may an NCHW source).
    static func copy(_ source: Activation, to destination: Activation) {
        let s = source.shape, plane = s.plane
        precondition(destination.shape == s, "ChannelBlocks.copy: shapes \(s) and \(destination.shape) differ")
        if source.channelBlock == destination.channelBlock {
            for i in 0..<s.n { destination.image(i).update(from: source.image(i), count: s.perImage) }
            return
        }
        if !source.isPlain && !destination.isPlain {
            // Between two block sizes (not a case the engine meets): through the element formula.
            Parallel.forEach(s.n * s.c, costPerItem: plane) { index in
                let i = index / s.c, c = index % s.c
                for p in 0..<plane { destination[i, c, p] = source[i, c, p] }
            }
            return
        }
        let blocked = source.isPlain ? destination : source, plain = source.isPlain ? source : destination
        let b = blocked.channelBlock, groups = s.c / b
        // One (image, channel block) at a time: b planes of NCHW against one run of pixels.
        Parallel.forEach(s.n * groups, costPerItem: b * plane) { index in
            let i = index / groups, group = index % groups
            let run = blocked.image(i) + group * plane * b, planes = plain.image(i) + group * b * plane
            if source.isPlain {
                for p in 0..<plane { for lane in 0..<b { run[p * b + lane] = planes[lane * plane + p] } }
            } else {
                for lane in 0..<b { for p in 0..<plane { planes[lane * plane + p] = run[p * b + lane] } }
            }
        }
    }
}

extension Activation {
    /// Element (image, channel, pixel within the plane) in this view's layout.
    subscript(image: Int, channel: Int, pixel: Int) -> Float {
        get { data[offset(image, channel, pixel)] }
        nonmutating set { data[offset(image, channel, pixel)] = newValue }
    }

    private func offset(_ image: Int, _ channel: Int, _ pixel: Int) -> Int {
        let plane = shape.plane, b = channelBlock
        if b == 1 { return image * imageStride + channel * plane + pixel }
        return image * imageStride + ((channel / b) * plane + pixel) * b + channel % b
    }

    /// This batch in layout `block` (1: NCHW): itself when it already is, else a copy in
    /// `buffer`.
    func laidOut(_ block: Int, using buffer: FloatBuffer) -> Activation {
        guard block != channelBlock else { return self }
        let converted = Activation(data: buffer.reserve(shape.count), shape: shape, channelBlock: block)
        ChannelBlocks.copy(self, to: converted)
        return converted
    }

    /// This batch in NCHW: itself when it already is, else a copy in `buffer`.
    func plain(using buffer: FloatBuffer) -> Activation { laidOut(1, using: buffer) }
}
