/// The geometry of a 2-D convolution or pooling window over one image.
struct ConvGeometry: Hashable {
    var channels: Int, height: Int, width: Int
    var kernelH: Int, kernelW: Int
    var stride: Int, padding: Int

    var outHeight: Int { (height + 2 * padding - kernelH) / stride + 1 }
    var outWidth: Int { (width + 2 * padding - kernelW) / stride + 1 }
    /// Rows of the column matrix: C·KH·KW.
    var columnRows: Int { channels * kernelH * kernelW }
    /// Columns of the column matrix: OH·OW.
    var columnCols: Int { outHeight * outWidth }
    /// A 1x1, stride-1, unpadded convolution reads its input as the column matrix directly.
    var isPointwise: Bool { kernelH == 1 && kernelW == 1 && stride == 1 && padding == 0 }

    /// The output columns ox whose input column ox·stride − padding + kw lies inside the image.
    func insideColumns(kernelColumn kw: Int) -> Range<Int> {
        let first = max(0, (padding - kw + stride - 1) / stride)
        let last = min(outWidth, (width + padding - kw + stride - 1) / stride)
        return first..<max(first, last)
    }
}

/// Unfolds one image (C, H, W) into the column matrix (C·KH·KW, OH·OW), zeros where the window
/// overhangs the padding, so the convolution is one matrix product. `rowStride` is the
/// distance between the matrix's rows (OH·OW, or more when several images share a matrix).
func im2col(_ columns: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>, _ g: ConvGeometry,
            rowStride: Int? = nil) {
    let oh = g.outHeight, ow = g.outWidth, rowStride = rowStride ?? oh * ow
    Parallel.forEach(g.channels, costPerItem: g.kernelH * g.kernelW * oh * ow) { c in
        let plane = image + c * g.height * g.width
        for kh in 0..<g.kernelH {
            for kw in 0..<g.kernelW {
                let row = columns + ((c * g.kernelH + kh) * g.kernelW + kw) * rowStride
                let inside = g.insideColumns(kernelColumn: kw), firstX = inside.lowerBound, lastX = inside.upperBound
                for oy in 0..<oh {
                    let dst = row + oy * ow
                    let iy = oy * g.stride - g.padding + kh
                    guard iy >= 0, iy < g.height, firstX < lastX else {
                        dst.update(repeating: 0, count: ow)
                        continue
                    }
                    if firstX > 0 { dst.update(repeating: 0, count: firstX) }
                    if lastX < ow { (dst + lastX).update(repeating: 0, count: ow - lastX) }
                    let src = plane + iy * g.width - g.padding + kw
                    if g.stride == 1 {
                        (dst + firstX).update(from: src + firstX, count: lastX - firstX)
                    } else {
                        for ox in firstX..<lastX { dst[ox] = src[ox * g.stride] }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: adds each column-matrix entry back into the image position it was
/// read from. `image` must be zeroed (or hold gradient to add to) beforehand.
func col2im(_ image: UnsafeMutablePointer<Float>, _ columns: UnsafePointer<Float>, _ g: ConvGeometry,
            rowStride: Int? = nil) {
    let oh = g.outHeight, ow = g.outWidth, rowStride = rowStride ?? oh * ow
    Parallel.forEach(g.channels, costPerItem: g.kernelH * g.kernelW * oh * ow) { c in
        let plane = image + c * g.height * g.width
        for kh in 0..<g.kernelH {
            for kw in 0..<g.kernelW {
                let row = columns + ((c * g.kernelH + kh) * g.kernelW + kw) * rowStride
                let inside = g.insideColumns(kernelColumn: kw), firstX = inside.lowerBound, lastX = inside.upperBound
                guard firstX < lastX else { continue }
                for oy in 0..<oh {
                    let iy = oy * g.stride - g.padding + kh
                    guard iy >= 0, iy < g.height else { continue }
                    let src = row + oy * ow
                    let dst = plane + iy * g.width - g.padding + kw
                    if g.stride == 1 {
                        Vectorized.add(dst + firstX, src + firstX, count: lastX - firstX)
                    } else {
                        for ox in firstX..<lastX { dst[ox * g.stride] += src[ox] }
                    }
                }
            }
        }
    }
}
