/// Element-wise loops written with SIMD vectors, for memory-bound passes the compiler does not
/// vectorise on its own (a select on a comparison).
enum Vectorized {
    typealias V = SIMD16<Float>

    /// d[j] = y[j] > 0 ? g[j] : 0 for j in 0..<count: ReLU's backward from its output.
    static func reluBackward(_ d: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        let dr = UnsafeMutableRawPointer(d), gr = UnsafeRawPointer(g), yr = UnsafeRawPointer(y)
        var j = 0
        while j + V.scalarCount <= count {
            let yv = yr.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            let gv = gr.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            dr.storeBytes(of: V().replacing(with: gv, where: yv .> 0), toByteOffset: j * 4, as: V.self)
            j += V.scalarCount
        }
        while j < count { d[j] = y[j] > 0 ? g[j] : 0; j += 1 }
    }
}

extension Vectorized {
    /// (Σ p[j], Σ p[j]²) over count floats, with 16 lanes of float partial sums.
    static func sumAndSquares(_ p: UnsafePointer<Float>, count: Int) -> (Double, Double) {
        let raw = UnsafeRawPointer(p)
        var sum = V(), squares = V(), j = 0
        while j + V.scalarCount <= count {
            let v = raw.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            sum += v; squares += v * v
            j += V.scalarCount
        }
        var s = Double(sum.sum()), q = Double(squares.sum())
        while j < count { s += Double(p[j]); q += Double(p[j] * p[j]); j += 1 }
        return (s, q)
    }

    /// Batch norm's backward sums over one plane: (Σ g, Σ g·(x − mean)·k), with g masked to 0
    /// where `mask` (the ReLU output) is ≤ 0, if given.
    static func normSums(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
                         mean: Float, k: Float, count: Int) -> (Float, Float) {
        let gr = UnsafeRawPointer(g), xr = UnsafeRawPointer(x), mr = mask.map(UnsafeRawPointer.init)
        var sumG = V(), sumGX = V(), j = 0
        let mu = V(repeating: mean), kv = V(repeating: k)
        while j + V.scalarCount <= count {
            var gv = gr.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            if let mr { gv = V().replacing(with: gv, where: mr.loadUnaligned(fromByteOffset: j * 4, as: V.self) .> 0) }
            let xv = xr.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            sumG += gv; sumGX += gv * (xv - mu) * kv
            j += V.scalarCount
        }
        var a = sumG.sum(), b = sumGX.sum()
        while j < count {
            let gj = mask.map { $0[j] > 0 } ?? true ? g[j] : 0
            a += gj; b += gj * (x[j] - mean) * k
            j += 1
        }
        return (a, b)
    }

    /// Batch norm's input gradient over one plane:
    /// d = scale · (m·g − sumG − (x − mean)·k·sumGX), g masked as in `normSums`.
    static func normInputGradient(_ d: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                  mask: UnsafePointer<Float>?, mean: Float, k: Float, scale: Float, m: Float,
                                  sumG: Float, sumGX: Float, count: Int) {
        let dr = UnsafeMutableRawPointer(d), gr = UnsafeRawPointer(g), xr = UnsafeRawPointer(x)
        let mr = mask.map(UnsafeRawPointer.init)
        let mu = V(repeating: mean), kv = V(repeating: k * sumGX), sv = V(repeating: scale)
        let mv = V(repeating: m), sg = V(repeating: sumG)
        var j = 0
        while j + V.scalarCount <= count {
            var gv = gr.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            if let mr { gv = V().replacing(with: gv, where: mr.loadUnaligned(fromByteOffset: j * 4, as: V.self) .> 0) }
            let xv = xr.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            dr.storeBytes(of: sv * (mv * gv - sg - (xv - mu) * kv), toByteOffset: j * 4, as: V.self)
            j += V.scalarCount
        }
        while j < count {
            let gj = mask.map { $0[j] > 0 } ?? true ? g[j] : 0
            d[j] = scale * (m * gj - sumG - (x[j] - mean) * k * sumGX)
            j += 1
        }
    }
}

extension Vectorized {
    /// d[j] += s[j] for j in 0..<count.
    static func add(_ d: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, count: Int) {
        let dr = UnsafeMutableRawPointer(d), sr = UnsafeRawPointer(s)
        var j = 0
        while j + V.scalarCount <= count {
            let sum = dr.loadUnaligned(fromByteOffset: j * 4, as: V.self) + sr.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            dr.storeBytes(of: sum, toByteOffset: j * 4, as: V.self)
            j += V.scalarCount
        }
        while j < count { d[j] += s[j]; j += 1 }
    }
}
