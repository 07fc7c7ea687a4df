/// The transforms of Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, "Fast
/// Algorithms for Convolutional Neural Networks", 2016) for a 3x3, stride 1, padding 1
/// convolution over NHWC activations: each 4x4 block of outputs ("tile") is
///
///     Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
///
/// where d is the 6x6 input patch around the tile and g the 3x3 kernel. Summed over input
/// channels, the element-wise product becomes 36 independent matrix products
/// M[k] (tiles × OC) = V[k] (tiles × C) · U[k] (C × OC), k = 0..<36, which cost 36·C·OC
/// multiply-adds per tile where the direct convolution costs 16·9·C·OC: 4x fewer.
///
/// These are the three transforms; the matrix products are the caller's
/// (`WinogradConvolution`). Channels are vectorised in groups of 8, so C and OC must be
/// multiples of 8 (`WinogradTransforms.supports`).
enum WinogradTransforms {
    typealias V = SIMD8<Float>

    /// Output pixels per tile side (the input patch around a tile is 6 pixels a side).
    static let tile = 4
    /// Products per tile: one per element of the 6x6 transformed patch.
    static let products = 36

    /// Whether a convolution of `channels` into `outChannels` can use these transforms.
    static func supports(channels: Int, outChannels: Int) -> Bool {
        channels % 8 == 0 && outChannels % 8 == 0 && channels > 0 && outChannels > 0
    }

    /// Where an activation's values lie: channels in blocks of `block` (a multiple of 8 that
    /// divides the channels), each block an (N, H, W, block) array, the blocks of an image one
    /// after another: nChw8c or nChw16c (`ChannelBlocks`), and NHWC when the block is every
    /// channel. Value (n, y, x, c) is at `pixel(n, y, x) + channel(c)`.
    struct Layout {
        let height: Int, width: Int, channels: Int, block: Int

        /// `block` must be a multiple of 8 that divides `channels` (`takes`); NHWC: `channels`.
        init(height: Int, width: Int, channels: Int, block: Int) {
            self.height = height; self.width = width; self.channels = channels; self.block = block
        }

        /// Whether the transforms can read or write `channels` channels in blocks of `block`.
        static func takes(channels: Int, block: Int) -> Bool {
            block > 0 && block % 8 == 0 && channels % block == 0
        }

        /// Offset of (n, y, x, channel 0).
        @inline(__always)
        func pixel(_ n: Int, _ y: Int, _ x: Int) -> Int { n * channels * height * width + (y * width + x) * block }

        /// Offset of channel `c` (a multiple of 8) from its pixel's channel 0.
        @inline(__always)
        func channel(_ c: Int) -> Int { c / block * height * width * block + c % block }
    }

    /// Tiles of an (height, width) output: (rows, columns).
    static func tiles(height: Int, width: Int) -> (rows: Int, columns: Int) {
        ((height + tile - 1) / tile, (width + tile - 1) / tile)
    }

    // MARK: weights

    /// G applied to a column of 3: the rows of G are (1/4, 0, 0), (−1/6, −1/6, −1/6),
    /// (−1/6, 1/6, −1/6), (1/24, 1/12, 1/6), (1/24, −1/12, 1/6), (0, 0, 1).
    @inline(__always)
    private static func weightRows(_ a: SIMD8<Double>, _ b: SIMD8<Double>, _ c: SIMD8<Double>)
        -> (SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>, SIMD8<Double>) {
        let outer = a + c, quarter = a / 24 + c / 6, middle = b / 12
        return (a / 4, -(outer + b) / 6, -(outer - b) / 6, quarter + middle, quarter - middle, c)
    }

    /// U[k][c][o] = (G g[o][c] Gᵀ)[k / 6][k % 6] for weights (OC, C, 3, 3), into `u`
    /// (36·C·OC floats), computed in double and rounded once, 8 output channels to a vector
    /// (OC a multiple of 8, `supports`). Training transforms its weights at every step
    /// (`WinogradStepWeights`).
    static func transformWeights(_ g: UnsafePointer<Float>, outChannels oc: Int, channels c: Int,
                                 into u: UnsafeMutablePointer<Float>) {
        let raw = UnsafeMutableRawPointer(u)
        Parallel.forEach(oc / 8, costPerItem: c * 8 * 100) { group in
            let o0 = group * 8
            withUnsafeTemporaryAllocation(of: SIMD8<Double>.self, capacity: 9 + 18) { t in
                for ci in 0..<c {
                    // t[r·3 + s]: tap (r, s) of the 8 kernels (o0 + lane, ci).
                    for k in 0..<9 {
                        var taps = SIMD8<Double>()
                        for lane in 0..<8 { taps[lane] = Double(g[((o0 + lane) * c + ci) * 9 + k]) }
                        t[k] = taps
                    }
                    // G g (6x3) into t[9...], then (G g) Gᵀ a row at a time.
                    for s in 0..<3 {
                        let r = weightRows(t[s], t[3 + s], t[6 + s])
                        t[9 + s] = r.0; t[12 + s] = r.1; t[15 + s] = r.2; t[18 + s] = r.3; t[21 + s] = r.4; t[24 + s] = r.5
                    }
                    for i in 0..<6 {
                        let r = weightRows(t[9 + i * 3], t[10 + i * 3], t[11 + i * 3])
                        let row = ((i * 6 * c + ci) * oc + o0) * 4, step = c * oc * 4
                        raw.storeBytes(of: SIMD8<Float>(r.0), toByteOffset: row, as: SIMD8<Float>.self)
                        raw.storeBytes(of: SIMD8<Float>(r.1), toByteOffset: row + step, as: SIMD8<Float>.self)
                        raw.storeBytes(of: SIMD8<Float>(r.2), toByteOffset: row + 2 * step, as: SIMD8<Float>.self)
                        raw.storeBytes(of: SIMD8<Float>(r.3), toByteOffset: row + 3 * step, as: SIMD8<Float>.self)
                        raw.storeBytes(of: SIMD8<Float>(r.4), toByteOffset: row + 4 * step, as: SIMD8<Float>.self)
                        raw.storeBytes(of: SIMD8<Float>(r.5), toByteOffset: row + 5 * step, as: SIMD8<Float>.self)
                    }
                }
            }
        }
    }

    // MARK: input

    /// Bᵀ applied to a column of 6: the rows of Bᵀ are
    /// (4, 0, −5, 0, 1, 0), (0, −4, −4, 1, 1, 0), (0, 4, −4, −1, 1, 0),
    /// (0, −2, −1, 2, 1, 0), (0, 2, −1, −2, 1, 0), (0, 4, 0, −5, 0, 1).
    @inline(__always)
    private static func inputRows(_ d0: V, _ d1: V, _ d2: V, _ d3: V, _ d4: V, _ d5: V) -> (V, V, V, V, V, V) {
        let a = d4 - 4 * d2, b = d3 - 4 * d1 // rows 1 and 2 are a ± b
        let c = d4 - d2, e = 2 * (d3 - d1)   // rows 3 and 4 are c ± e
        return (4 * d0 - 5 * d2 + d4, a + b, a - b, c + e, c - e, 4 * d1 - 5 * d3 + d5)
    }

    /// V[k][t - tiles.lowerBound][c] = (Bᵀ d B)[k / 6][k % 6] for the input patch of each
    /// output tile t in `tiles` (an index over images, tile rows, tile columns) of `x`
    /// (N, C, H, W in `layout`), zero outside the image; `v` holds `tilesPerChunk` tiles per
    /// product, and the slots past `tiles.count` (a last, partial chunk) are set to zero.
    static func transformInput(_ x: UnsafePointer<Float>, layout: Layout,
                               tiles range: Range<Int>, tilesPerChunk: Int, into v: UnsafeMutablePointer<Float>) {
        let height = layout.height, width = layout.width, channels = layout.channels
        let (rows, columns) = tiles(height: height, width: width)
        let raw = UnsafeRawPointer(x), out = UnsafeMutableRawPointer(v)
        let productStride = tilesPerChunk * channels * 4
        withUnsafeTemporaryAllocation(of: V.self, capacity: 36) { d in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 36) { pixel in
                for index in range {
                    let n = index / (rows * columns), r = index % (rows * columns)
                    let top = (r / columns) * tile - 1, left = (r % columns) * tile - 1
                    let base = (index - range.lowerBound) * channels * 4
                    // Each patch position's byte offset in x, or -1 outside the image.
                    for i in 0..<6 {
                        let y = top + i
                        for j in 0..<6 {
                            let xx = left + j
                            let inside = y >= 0 && y < height && xx >= 0 && xx < width
                            pixel[i * 6 + j] = inside ? layout.pixel(n, y, xx) * 4 : -1
                        }
                    }
                    for c0 in stride(from: 0, to: channels, by: 8) {
                        // d[i][j]: the patch; columns first (Bᵀ d), then rows ((Bᵀ d) B).
                        let channel = layout.channel(c0) * 4
                        for k in 0..<36 {
                            d[k] = pixel[k] >= 0 ? raw.loadUnaligned(fromByteOffset: pixel[k] + channel, as: V.self) : V()
                        }
                        for j in 0..<6 {
                            let t = inputRows(d[j], d[6 + j], d[12 + j], d[18 + j], d[24 + j], d[30 + j])
                            d[j] = t.0; d[6 + j] = t.1; d[12 + j] = t.2; d[18 + j] = t.3; d[24 + j] = t.4; d[30 + j] = t.5
                        }
                        for i in 0..<6 {
                            let t = inputRows(d[i * 6], d[i * 6 + 1], d[i * 6 + 2], d[i * 6 + 3], d[i * 6 + 4], d[i * 6 + 5])
                            let row = base + c0 * 4 + i * 6 * productStride
                            out.storeBytes(of: t.0, toByteOffset: row, as: V.self)
                            out.storeBytes(of: t.1, toByteOffset: row + productStride, as: V.self)
                            out.storeBytes(of: t.2, toByteOffset: row + 2 * productStride, as: V.self)
                            out.storeBytes(of: t.3, toByteOffset: row + 3 * productStride, as: V.self)
                            out.storeBytes(of: t.4, toByteOffset: row + 4 * productStride, as: V.self)
                            out.storeBytes(of: t.5, toByteOffset: row + 5 * productStride, as: V.self)
                        }
                    }
                }
            }
        }
        let used = range.count * channels, unused = (tilesPerChunk - range.count) * channels
        if unused > 0 {
            for k in 0..<products { (v + k * tilesPerChunk * channels + used).initialize(repeating: 0, count: unused) }
        }
    }

    // MARK: output

    /// Aᵀ applied to a column of 6: the rows of Aᵀ are (1, 1, 1, 1, 1, 0), (0, 1, −1, 2, −2, 0),
    /// (0, 1, 1, 4, 4, 0), (0, 1, −1, 8, −8, 1).
    @inline(__always)
    private static func outputRows(_ m0: V, _ m1: V, _ m2: V, _ m3: V, _ m4: V, _ m5: V) -> (V, V, V, V) {
        let s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4
        return (m0 + s12 + s34, d12 + 2 * d34, s12 + 4 * s34, d12 + 8 * d34 + m5)
    }

    /// What the output transform applies after the bias, in order: a ReLU, the sum with what
    /// the destination held (a residual connection), another ReLU.
    struct Epilogue {
        var relu = false
        var sum = false
        var reluAfterSum = false
    }

    /// y[n, o, 4·row + i, 4·column + j] = epilogue((Aᵀ m A)[i][j] + bias[o]) for each output
    /// tile t in `tiles`, where m[k] = M[k][t - tiles.lowerBound][o], y in `layout`; rows and
    /// columns past the image are dropped.
    static func transformOutput(_ m: UnsafePointer<Float>, tiles range: Range<Int>, tilesPerChunk: Int,
                                bias: UnsafePointer<Float>, epilogue: Epilogue, layout: Layout,
                                into y: UnsafeMutablePointer<Float>) {
        let height = layout.height, width = layout.width, outChannels = layout.channels
        let (rows, columns) = tiles(height: height, width: width)
        let raw = UnsafeRawPointer(m), out = UnsafeMutableRawPointer(y), biasRaw = UnsafeRawPointer(bias)
        let productStride = tilesPerChunk * outChannels * 4
        let zero = V()
        withUnsafeTemporaryAllocation(of: V.self, capacity: 24 + 4) { t in
            for index in range {
                let n = index / (rows * columns), r = index % (rows * columns)
                let top = (r / columns) * tile, left = (r % columns) * tile
                for o0 in stride(from: 0, to: outChannels, by: 8) {
                    let base = ((index - range.lowerBound) * outChannels + o0) * 4
                    // Columns first: t[i][j] = Σ_k Aᵀ[i][k] m[k][j], 4x6.
                    for j in 0..<6 {
                        func at(_ k: Int) -> V { raw.loadUnaligned(fromByteOffset: base + (k * 6 + j) * productStride, as: V.self) }
                        let c = outputRows(at(0), at(1), at(2), at(3), at(4), at(5))
                        t[j] = c.0; t[6 + j] = c.1; t[12 + j] = c.2; t[18 + j] = c.3
                    }
                    let b = biasRaw.loadUnaligned(fromByteOffset: o0 * 4, as: V.self)
                    let channel = layout.channel(o0) * 4
                    for i in 0..<4 where top + i < height {
                        let c = outputRows(t[i * 6], t[i * 6 + 1], t[i * 6 + 2], t[i * 6 + 3], t[i * 6 + 4], t[i * 6 + 5])
                        t[24] = c.0; t[25] = c.1; t[26] = c.2; t[27] = c.3
                        for j in 0..<4 where left + j < width {
                            let offset = layout.pixel(n, top + i, left + j) * 4 + channel
                            var value = t[24 + j] + b
                            if epilogue.relu { value.replace(with: zero, where: value .< zero) }
                            if epilogue.sum { value += out.loadUnaligned(fromByteOffset: offset, as: V.self) }
                            if epilogue.reluAfterSum { value.replace(with: zero, where: value .< zero) }
                            out.storeBytes(of: value, toByteOffset: offset, as: V.self)
                        }
                    }
                }
            }
        }
    }
}
