/// Per-channel passes over a channel-blocked batch (`ChannelBlocks`: (N, C/b, H, W, b), b = 8
/// or 16), for batch norm and pooling: each pixel's b channels are b/8 vectors of 8 lanes, and
/// per-channel constants are loaded as vectors of 8 channels. Parallel over channel blocks
/// (each block's channels belong to one worker, so per-channel sums need no merging).
enum BlockedChannelKernels {
    typealias V = SIMD8<Float>

    /// Pixels summed in float before the partial sums join the double totals.
    private static let chunk = 256

    @inline(__always) private static func load(_ p: UnsafePointer<Float>, _ offset: Int) -> V {
        UnsafeRawPointer(p).loadUnaligned(fromByteOffset: offset * 4, as: V.self)
    }

    @inline(__always) private static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ offset: Int) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, toByteOffset: offset * 4, as: V.self)
    }

    /// (Σ first, Σ second) of `terms(p)` over p in 0..<count: in float over runs of `chunk`
    /// pixels, in double across runs (so long planes lose no precision to one float sum).
    @inline(__always) private static func chunkedSums(_ count: Int, _ terms: (Int) -> (V, V)) -> (SIMD8<Double>, SIMD8<Double>) {
        var first = SIMD8<Double>(), second = SIMD8<Double>(), start = 0
        while start < count {
            let end = min(count, start + chunk)
            var a = V(), c = V()
            for p in start..<end {
                let (u, v) = terms(p)
                a += u; c += v
            }
            first += SIMD8<Double>(a); second += SIMD8<Double>(c)
            start = end
        }
        return (first, second)
    }

    /// Per channel c: (Σ x, Σ x²) over the batch and pixels, into `sums[c]`, `squares[c]`.
    static func sumsAndSquares(_ x: Activation, sums: UnsafeMutablePointer<Double>, squares: UnsafeMutablePointer<Double>) {
        let s = x.shape, b = x.channelBlock, plane = s.plane, groups = b / 8
        Parallel.forEach(s.c / b, costPerItem: s.n * plane * b) { block in
            for q in 0..<groups {
                var sum = SIMD8<Double>(), square = SIMD8<Double>()
                for i in 0..<s.n {
                    let run = UnsafePointer(x.image(i) + block * plane * b + q * 8)
                    let (a, c) = chunkedSums(plane) { p in
                        let v = load(run, p * b)
                        return (v, v * v)
                    }
                    sum += a; square += c
                }
                let c0 = block * b + q * 8
                for lane in 0..<8 { sums[c0 + lane] = sum[lane]; squares[c0 + lane] = square[lane] }
            }
        }
    }

    /// y = x·scale[c] + shift[c] (then max(·, 0) with `relu`), x and y in the same layout.
    static func affine(_ x: Activation, _ y: Activation, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, relu: Bool) {
        let s = x.shape, b = x.channelBlock, plane = s.plane, groups = b / 8, blocks = s.c / b
        Parallel.forEach(s.n * blocks, costPerItem: plane * b) { index in
            let i = index / blocks, block = index % blocks
            let source = UnsafePointer(x.image(i) + block * plane * b), target = y.image(i) + block * plane * b
            for q in 0..<groups {
                let a = load(scale, block * b + q * 8), c = load(shift, block * b + q * 8)
                for p in 0..<plane {
                    var v = load(source, p * b + q * 8) * a + c
                    if relu { v = v.replacing(with: 0, where: v .< 0) }
                    store(v, target, p * b + q * 8)
                }
            }
        }
    }

    /// Batch norm's backward over a blocked batch; per channel c, with g = ∂y masked to 0
    /// where `mask` (the ReLU output) is ≤ 0 if given and x̂ = (x − mean[c])·k[c]:
    /// sumG[c] = Σ g, sumGX[c] = Σ g·x̂, and, with `dx`,
    /// dx = scale[c]·(m·g − sumG[c] − x̂·sumGX[c]) where scale[c] = gamma[c]·k[c]/m.
    static func normBackward(dy: Activation, x: Activation, mask: Activation?, dx: Activation?,
                             mean: UnsafePointer<Float>, k: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                             sumG: UnsafeMutablePointer<Float>, sumGX: UnsafeMutablePointer<Float>) {
        let s = x.shape, b = x.channelBlock, plane = s.plane, groups = b / 8
        let m = Float(s.n * plane)
        Parallel.forEach(s.c / b, costPerItem: 2 * s.n * plane * b) { block in
            for q in 0..<groups {
                let c0 = block * b + q * 8, offset = block * plane * b + q * 8
                let mu = load(mean, c0), kv = load(k, c0)
                var sumsG = SIMD8<Double>(), sumsGX = SIMD8<Double>()
                for i in 0..<s.n {
                    let gp = UnsafePointer(dy.image(i) + offset), xp = UnsafePointer(x.image(i) + offset)
                    let mp = mask.map { UnsafePointer($0.image(i) + offset) }
                    let (a, c) = chunkedSums(plane) { p in
                        var g = load(gp, p * b)
                        if let mp { g = V().replacing(with: g, where: load(mp, p * b) .> 0) }
                        return (g, g * (load(xp, p * b) - mu) * kv)
                    }
                    sumsG += a; sumsGX += c
                }
                let totalG = V(sumsG), totalGX = V(sumsGX)
                for lane in 0..<8 { sumG[c0 + lane] = totalG[lane]; sumGX[c0 + lane] = totalGX[lane] }
                guard let dx else { continue }
                let scale = load(gamma, c0) * kv / m, kGX = kv * totalGX
                for i in 0..<s.n {
                    let gp = UnsafePointer(dy.image(i) + offset), xp = UnsafePointer(x.image(i) + offset)
                    let mp = mask.map { UnsafePointer($0.image(i) + offset) }, target = dx.image(i) + offset
                    for p in 0..<plane {
                        var g = load(gp, p * b)
                        if let mp { g = V().replacing(with: g, where: load(mp, p * b) .> 0) }
                        store(scale * (m * g - totalG - (load(xp, p * b) - mu) * kGX), target, p * b)
                    }
                }
            }
        }
    }

    /// Max pooling of a blocked batch `x` into `y` (same layout) over windows of `g`; with
    /// `winners`, each output's winning pixel (index within its plane) at the output's offset.
    /// The first maximum in row-major order wins, as in `MaxPool2D`'s NCHW loops.
    static func maxPool(_ x: Activation, _ y: Activation, _ g: ConvGeometry, winners: UnsafeMutablePointer<Int32>?) {
        let s = x.shape, b = x.channelBlock, plane = s.plane, outPlane = g.outHeight * g.outWidth
        let groups = b / 8, blocks = s.c / b
        Parallel.forEach(s.n * blocks, costPerItem: outPlane * b * g.kernelH * g.kernelW) { index in
            let i = index / blocks, block = index % blocks
            let source = UnsafePointer(x.image(i) + block * plane * b), target = y.image(i) + block * outPlane * b
            let outBase = i * y.imageStride + block * outPlane * b
            for oy in 0..<g.outHeight {
                let y0 = max(0, oy * g.stride - g.padding), y1 = min(s.h, oy * g.stride - g.padding + g.kernelH)
                for ox in 0..<g.outWidth {
                    let x0 = max(0, ox * g.stride - g.padding), x1 = min(s.w, ox * g.stride - g.padding + g.kernelW)
                    let o = (oy * g.outWidth + ox) * b
                    for q in 0..<groups {
                        var best = V(repeating: -.infinity)
                        var at = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: y0 * s.w + x0))
                        for iy in y0..<y1 {
                            for ix in x0..<x1 {
                                let pixel = iy * s.w + ix, v = load(source, pixel * b + q * 8), wins = v .> best
                                best.replace(with: v, where: wins)
                                at.replace(with: SIMD8(repeating: Int32(truncatingIfNeeded: pixel)), where: wins)
                            }
                        }
                        store(best, target, o + q * 8)
                        if let winners {
                            UnsafeMutableRawPointer(winners + outBase + o + q * 8).storeBytes(of: at, as: SIMD8<Int32>.self)
                        }
                    }
                }
            }
        }
    }

    /// dx = 0, then each output's gradient added at its winning input (`maxPool`'s `winners`),
    /// all three in the blocked layout of dx.
    static func maxPoolBackward(_ dy: Activation, _ dx: Activation, winners: UnsafePointer<Int32>) {
        let s = dx.shape, b = dx.channelBlock, plane = s.plane, outPlane = dy.shape.plane, blocks = s.c / b
        Parallel.forEach(s.n * blocks, costPerItem: (plane + outPlane) * b) { index in
            let i = index / blocks, block = index % blocks
            let target = dx.image(i) + block * plane * b, gradient = dy.image(i) + block * outPlane * b
            let win = winners + i * dy.imageStride + block * outPlane * b
            target.update(repeating: 0, count: plane * b)
            for o in 0..<outPlane {
                for lane in 0..<b { target[Int(win[o * b + lane]) * b + lane] += gradient[o * b + lane] }
            }
        }
    }
}
