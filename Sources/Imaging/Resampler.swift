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
    /// rows the window needs are filtered.
    static func resize(_ image: GrayImage, width: Int, height: Int,
                       window: (x: Int, y: Int, width: Int, height: Int)? = nil) -> [Float] {
        let win = window ?? (0, 0, width, height)
        precondition(win.x >= 0 && win.y >= 0 && win.x + win.width <= width && win.y + win.height <= height,
                     "window outside the resized image")
        let hTaps = taps(from: image.width, to: width)
        let vTaps = taps(from: image.height, to: height)
        let firstRow = vTaps.start[win.y]
        let lastRow = (win.y..<win.y + win.height).map { vTaps.start[$0] + vTaps.count[$0] }.max() ?? firstRow
        let ww = win.width

        // Horizontal pass: source rows firstRow..<lastRow → (rows, ww).
        var temp = [Float](repeating: 0, count: (lastRow - firstRow) * ww)
        image.pixels.withUnsafeBufferPointer { src in
            temp.withUnsafeMutableBufferPointer { tmp in
                hTaps.weights.withUnsafeBufferPointer { w in
                    for row in firstRow..<lastRow {
                        let srcRow = row * image.width
                        let dstRow = (row - firstRow) * ww
                        for ox in 0..<ww {
                            let x = win.x + ox
                            let start = hTaps.start[x], base = x * hTaps.width
                            var sum: Float = 0
                            for k in 0..<hTaps.count[x] { sum += Float(src[srcRow + start + k]) * w[base + k] }
                            tmp[dstRow + ox] = sum
                        }
                    }
                }
            }
        }
        // Vertical pass: (rows, ww) → (win.height, ww).
        var out = [Float](repeating: 0, count: win.height * ww)
        temp.withUnsafeBufferPointer { tmp in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<win.height {
                    let y = win.y + oy
                    let start = vTaps.start[y] - firstRow, base = y * vTaps.width
                    let dstRow = oy * ww
                    for k in 0..<vTaps.count[y] {
                        let w = vTaps.weights[base + k]
                        let srcRow = (start + k) * ww
                        for ox in 0..<ww { dst[dstRow + ox] += w * tmp[srcRow + ox] }
                    }
                }
            }
        }
        return out
    }
}
