/// Separable image resampling with an antialiased triangle (bilinear) filter: when shrinking,
/// the filter widens by the scale factor so every source pixel contributes (Pillow's BILINEAR
/// `resize`, and torchvision's `Resize(antialias=True)`). Values stay float between passes.
enum Resampler {
    /// The filter taps of each output position along one axis.
    struct Taps {
        /// First source index of each output position.
        var start: [Int]
        /// Taps of each output position; weights of position i are weights[i*width ..< i*width+count[i]].
        var count: [Int]
        var weights: [Float]
        var width: Int
    }

    /// Pillow's coefficient rule: centre = (i + 0.5) * scale, support = scale (at least 1),
    /// weight = triangle((x - centre + 0.5) / max(scale, 1)), normalised to sum 1.
    static func taps(from inSize: Int, to outSize: Int) -> Taps {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filterScale  // the triangle's support is 1
        let width = Int(support.rounded(.up)) * 2 + 1
        var taps = Taps(start: [], count: [], weights: [Float](repeating: 0, count: outSize * width), width: width)
        for i in 0..<outSize {
            let centre = (Double(i) + 0.5) * scale
            let lo = max(Int(centre - support + 0.5), 0)
            let hi = min(Int(centre + support + 0.5), inSize)
            var ws: [Double] = []
            for x in lo..<hi {
                let t = abs((Double(x) - centre + 0.5) / filterScale)
                ws.append(t < 1 ? 1 - t : 0)
            }
            let total = ws.reduce(0, +)
            taps.start.append(lo)
            taps.count.append(ws.count)
            for (k, w) in ws.enumerated() { taps.weights[i * width + k] = Float(total > 0 ? w / total : 0) }
        }
        return taps
    }

    /// Resizes `image` to width x height and returns the pixels of `window` (default: all) as
    /// floats on the 0...255 scale, row-major (window height, window width). Only the source
    /// rows and columns the window needs are filtered.
    ///
    /// The vertical pass runs first, over contiguous source rows (a loop the compiler turns into
    /// SIMD: 8-bit pixels to floats, multiply-add), so the shrinking pass does the large part of
    /// the work; the horizontal pass then filters only the window's rows. Same taps either way;
    /// the tests compare it with a direct two-dimensional sum.
    static func resize(_ image: GrayImage, width: Int, height: Int,
                       window: (x: Int, y: Int, width: Int, height: Int)? = nil) -> [Float] {
        let win = window ?? (0, 0, width, height)
        precondition(win.x >= 0 && win.y >= 0 && win.x + win.width <= width && win.y + win.height <= height,
                     "window outside the resized image")
        let hTaps = taps(from: image.width, to: width)
        let vTaps = taps(from: image.height, to: height)
        let firstColumn = hTaps.start[win.x]
        let lastColumn = (win.x..<win.x + win.width).map { hTaps.start[$0] + hTaps.count[$0] }.max() ?? firstColumn
        let columns = lastColumn - firstColumn
        let ww = win.width

        // Vertical pass: source columns firstColumn..<lastColumn → (win.height, columns).
        var temp = [Float](repeating: 0, count: win.height * columns)
        image.pixels.withUnsafeBufferPointer { src in
            temp.withUnsafeMutableBufferPointer { tmp in
                guard let source = src.baseAddress, let rows = tmp.baseAddress else { return }
                for oy in 0..<win.height {
                    let y = win.y + oy, base = y * vTaps.width
                    let acc = rows + oy * columns
                    for k in 0..<vTaps.count[y] {
                        let w = vTaps.weights[base + k]
                        let row = source + (vTaps.start[y] + k) * image.width + firstColumn
                        for c in 0..<columns { acc[c] += w * Float(row[c]) }
                    }
                }
            }
        }
        // Horizontal pass: (win.height, columns) → (win.height, ww).
        var out = [Float](repeating: 0, count: win.height * ww)
        temp.withUnsafeBufferPointer { tmp in
            out.withUnsafeMutableBufferPointer { dst in
                hTaps.weights.withUnsafeBufferPointer { w in
                    hTaps.start.withUnsafeBufferPointer { starts in
                        hTaps.count.withUnsafeBufferPointer { counts in
                            guard let rows = tmp.baseAddress, let outRows = dst.baseAddress, let weights = w.baseAddress,
                                  let start = starts.baseAddress, let count = counts.baseAddress else { return }
                            for oy in 0..<win.height {
                                let row = rows + oy * columns, outRow = outRows + oy * ww
                                for ox in 0..<ww {
                                    let x = win.x + ox
                                    let taps = row + (start[x] - firstColumn), tw = weights + x * hTaps.width
                                    var sum: Float = 0
                                    for k in 0..<count[x] { sum += taps[k] * tw[k] }
                                    outRow[ox] = sum
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
