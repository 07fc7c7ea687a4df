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

    /// Tiles of an (height, width) output: (rows, columns).
    static func tiles(height: Int, width: Int) -> (rows: Int, columns: Int) {
        ((height + tile - 1) / tile, (width + tile - 1) / tile)
    }

    // MARK: weights

    /// U[k][c][o] = (G g[o][c] Gᵀ)[k / 6][k % 6] for weights (OC, C, 3, 3), into `u`
    /// (36·C·OC floats), computed in double and rounded once.
    static func transformWeights(_ g: UnsafePointer<Float>, outChannels oc: Int, channels c: Int,
                                 into u: UnsafeMutablePointer<Float>) {
        let G: [[Double]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                             [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        Parallel.forEach(oc, costPerItem: c * 200) { o in
            var left = [Double](repeating: 0, count: 18) // G g: 6x3
            for ci in 0..<c {
                let w = g + (o * c + ci) * 9
                for i in 0..<6 {
                    for j in 0..<3 {
                        left[i * 3 + j] = G[i][0] * Double(w[j]) + G[i][1] * Double(w[3 + j]) + G[i][2] * Double(w[6 + j])
                    }
                }
                for i in 0..<6 {
                    for j in 0..<6 {
                        let value = left[i * 3] * G[j][0] + left[i * 3 + 1] * G[j][1] + left[i * 3 + 2] * G[j][2]
                        u[((i * 6 + j) * c + ci) * oc + o] = Float(value)
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
    /// (N, H, W, C NHWC), zero outside the image; `v` holds `tilesPerChunk` tiles per product,
    /// and the slots past `tiles.count` (a last, partial chunk) are set to zero.
    static func transformInput(_ x: UnsafePointer<Float>, height: Int, width: Int, channels: Int,
                               tiles range: Range<Int>, tilesPerChunk: Int, into v: UnsafeMutablePointer<Float>) {
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
                            pixel[i * 6 + j] = inside ? ((n * height + y) * width + xx) * channels * 4 : -1
                        }
                    }
                    for c0 in stride(from: 0, to: channels, by: 8) {
                        // d[i][j]: the patch; columns first (Bᵀ d), then rows ((Bᵀ d) B).
                        for k in 0..<36 {
                            d[k] = pixel[k] >= 0 ? raw.loadUnaligned(fromByteOffset: pixel[k] + c0 * 4, as: V.self) : V()
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

    /// y[n, 4·row + i, 4·column + j, o] = epilogue((Aᵀ m A)[i][j] + bias[o]) for each output
    /// tile t in `tiles`, where m[k] = M[k][t - tiles.lowerBound][o]; rows and columns past the
    /// image are dropped.
    static func transformOutput(_ m: UnsafePointer<Float>, tiles range: Range<Int>, tilesPerChunk: Int,
                                bias: UnsafePointer<Float>, epilogue: Epilogue, height: Int, width: Int,
                                outChannels: Int, into y: UnsafeMutablePointer<Float>) {
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
                    for i in 0..<4 where top + i < height {
                        let c = outputRows(t[i * 6], t[i * 6 + 1], t[i * 6 + 2], t[i * 6 + 3], t[i * 6 + 4], t[i * 6 + 5])
                        t[24] = c.0; t[25] = c.1; t[26] = c.2; t[27] = c.3
                        for j in 0..<4 where left + j < width {
                            let offset = (((n * height + top + i) * width + left + j) * outChannels + o0) * 4
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
