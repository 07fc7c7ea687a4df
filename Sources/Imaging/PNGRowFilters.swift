import CheckedArithmetic

/// Reverses PNG's per-row filters (PNG specification, section 9): each filtered row is a
/// filter-type byte followed by the row's bytes, each byte predicted from the byte one pixel to
/// the left (a), the byte above (b) and the byte above-left (c), all arithmetic modulo 256.
enum PNGRowFilters {
    /// Unfilters `height` rows of `rowBytes` bytes from `filtered` (height * (1 + rowBytes)
    /// bytes) into `rows` (height * rowBytes). `bytesPerPixel` is the distance to `a` and `c`.
    /// Returns false, leaving `rows` partly written, when a filter type is not 0...4 or the
    /// buffers' sizes do not match.
    static func unfilter(_ filtered: UnsafeBufferPointer<UInt8>, into rows: UnsafeMutableBufferPointer<UInt8>,
                         rowBytes: Int, height: Int, bytesPerPixel bpp: Int) -> Bool {
        guard rowBytes > 0, height > 0, bpp > 0, bpp <= rowBytes,
              let lineBytes = CheckedSize.sum(rowBytes, 1),
              filtered.count == CheckedSize.product([height, lineBytes]), rows.count == CheckedSize.product([height, rowBytes]),
              let source = filtered.baseAddress, let destination = rows.baseAddress else { return false }
        let zeroRow = UnsafeMutablePointer<UInt8>.allocate(capacity: rowBytes)
        zeroRow.initialize(repeating: 0, count: rowBytes)
        defer { zeroRow.deallocate() }
        for y in 0..<height {
            let line = source + y * (rowBytes + 1)
            let raw = line + 1
            let out = destination + y * rowBytes
            let prior = y == 0 ? UnsafePointer(zeroRow) : UnsafePointer(out - rowBytes)
            switch line[0] {
            case 0: out.update(from: raw, count: rowBytes)
            case 1: sub(raw, out, rowBytes, bpp)
            case 2: up(raw, prior, out, rowBytes)
            case 3: average(raw, prior, out, rowBytes, bpp)
            case 4: paeth(raw, prior, out, rowBytes, bpp)
            default: return false
            }
        }
        return true
    }

    // Each filter: raw (n), prior (n) → out (n); the first bpp bytes have no left neighbour.
    // Sub, Average and Paeth depend on the byte just written; for gray 8-bit (bpp 1, every
    // radiograph) that byte is carried in a register, not reloaded from `out`, which waits on
    // the store each time (in perf, that reload was the loops' hottest instruction; with it gone,
    // and the buffers no longer zeroed first, decoding an NIH PNG went from 9.5–9.75 to 7.1–7.2
    // ms). For 2 to 4 bytes per pixel (gray + alpha, RGB, RGBA) the pixel is carried as one
    // vector of bpp lanes.

    private static func sub(_ raw: UnsafePointer<UInt8>, _ out: UnsafeMutablePointer<UInt8>, _ n: Int, _ bpp: Int) {
        if bpp == 1 {
            var a: UInt8 = 0
            for i in 0..<n {
                a = raw[i] &+ a
                out[i] = a
            }
            return
        }
        if bpp <= 4 {
            var a = Pixel(repeating: 0)
            for i in stride(from: 0, to: n, by: bpp) {
                a = (pixel(raw + i, bpp) &+ a) & 0xFF
                store(a, out + i, bpp)
            }
            return
        }
        for i in 0..<bpp { out[i] = raw[i] }
        for i in bpp..<n { out[i] = raw[i] &+ out[i &- bpp] }
    }

    private static func up(_ raw: UnsafePointer<UInt8>, _ prior: UnsafePointer<UInt8>,
                           _ out: UnsafeMutablePointer<UInt8>, _ n: Int) {
        for i in 0..<n { out[i] = raw[i] &+ prior[i] }
    }

    private static func average(_ raw: UnsafePointer<UInt8>, _ prior: UnsafePointer<UInt8>,
                                _ out: UnsafeMutablePointer<UInt8>, _ n: Int, _ bpp: Int) {
        if bpp == 1 {
            var a: UInt32 = 0
            for i in 0..<n {
                a = (UInt32(raw[i]) &+ ((a &+ UInt32(prior[i])) >> 1)) & 0xFF
                out[i] = UInt8(truncatingIfNeeded: a)
            }
            return
        }
        if bpp <= 4 {
            var a = Pixel(repeating: 0)
            for i in stride(from: 0, to: n, by: bpp) {
                a = (pixel(raw + i, bpp) &+ ((a &+ pixel(prior + i, bpp)) &>> 1)) & 0xFF
                store(a, out + i, bpp)
            }
            return
        }
        for i in 0..<bpp { out[i] = raw[i] &+ prior[i] >> 1 }
        for i in bpp..<n {
            out[i] = raw[i] &+ UInt8(truncatingIfNeeded: (UInt16(out[i &- bpp]) &+ UInt16(prior[i])) >> 1)
        }
    }

    private static func paeth(_ raw: UnsafePointer<UInt8>, _ prior: UnsafePointer<UInt8>,
                              _ out: UnsafeMutablePointer<UInt8>, _ n: Int, _ bpp: Int) {
        if bpp == 1 {
            var a: Int32 = 0, c: Int32 = 0
            for i in 0..<n {
                let b = Int32(prior[i])
                a = (Int32(raw[i]) &+ predictor(a, b, c)) & 0xFF
                out[i] = UInt8(truncatingIfNeeded: a)
                c = b
            }
            return
        }
        if bpp <= 4 {
            var a = Pixel(repeating: 0), c = Pixel(repeating: 0)
            for i in stride(from: 0, to: n, by: bpp) {
                let b = pixel(prior + i, bpp)
                let pa = magnitude(b &- c), pb = magnitude(a &- c), pc = magnitude(a &+ b &- c &- c)
                let bOrC = c.replacing(with: b, where: pb .<= pc)
                let predictor = bOrC.replacing(with: a, where: (pa .<= pb) .& (pa .<= pc))
                a = (pixel(raw + i, bpp) &+ predictor) & 0xFF
                store(a, out + i, bpp)
                c = b
            }
            return
        }
        // With no left neighbour a = c = 0, and the predictor is b.
        for i in 0..<bpp { out[i] = raw[i] &+ prior[i] }
        for i in bpp..<n {
            out[i] = raw[i] &+ predictor(a: out[i &- bpp], b: prior[i], c: prior[i &- bpp])
        }
    }

    /// Paeth's predictor: of a, b and c, the one nearest to a + b - c (ties to a, then b).
    @inline(__always)
    static func predictor(a: UInt8, b: UInt8, c: UInt8) -> UInt8 {
        UInt8(truncatingIfNeeded: predictor(Int32(a), Int32(b), Int32(c)))
    }

    /// The same on values 0...255, written without branches (selects) for the bpp-1 loop.
    @inline(__always)
    private static func predictor(_ a: Int32, _ b: Int32, _ c: Int32) -> Int32 {
        let pa = (b &- c).magnitude, pb = (a &- c).magnitude, pc = (a &+ b &- c &- c).magnitude
        let bOrC = pb <= pc ? b : c
        return pa <= min(pb, pc) ? a : bOrC
    }

    /// One pixel's bytes (2 to 4 lanes used, the rest 0), wide enough for a + b - 2c.
    private typealias Pixel = SIMD4<Int16>

    @inline(__always)
    private static func pixel(_ p: UnsafePointer<UInt8>, _ bpp: Int) -> Pixel {
        if bpp == 4 { return Pixel(truncatingIfNeeded: UnsafeRawPointer(p).loadUnaligned(as: SIMD4<UInt8>.self)) }
        var v = Pixel(repeating: 0)
        for j in 0..<bpp { v[j] = Int16(p[j]) }
        return v
    }

    @inline(__always)
    private static func store(_ v: Pixel, _ p: UnsafeMutablePointer<UInt8>, _ bpp: Int) {
        if bpp == 4 {
            UnsafeMutableRawPointer(p).storeBytes(of: SIMD4<UInt8>(truncatingIfNeeded: v), as: SIMD4<UInt8>.self)
            return
        }
        for j in 0..<bpp { p[j] = UInt8(truncatingIfNeeded: v[j]) }
    }

    @inline(__always)
    private static func magnitude(_ v: Pixel) -> Pixel { v.replacing(with: 0 &- v, where: v .< 0) }
}
