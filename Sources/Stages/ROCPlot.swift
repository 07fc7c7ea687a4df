public import Engine
import Imaging

/// ROC curves drawn as a PNG: the unit square with a grid every 0.2, the chance diagonal, one
/// coloured curve per label (colours in `palette` order, listed by `xray evaluate`).
public enum ROCPlot {
    public static let palette: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("blue", (31, 119, 180)), ("orange", (255, 127, 14)), ("green", (44, 160, 44)), ("red", (214, 39, 40)),
        ("purple", (148, 103, 189)), ("brown", (140, 86, 75)), ("pink", (227, 119, 194)), ("olive", (188, 189, 34)),
        ("cyan", (23, 190, 207)), ("navy", (0, 0, 128)), ("teal", (0, 128, 128)), ("maroon", (128, 0, 0)),
        ("gold", (218, 165, 32)), ("black", (0, 0, 0)),
    ]

    /// PNG bytes of a `size`x`size` plot of `curves`.
    public static func png(_ curves: [ROC], size: Int = 600) throws -> [UInt8] {
        var pixels = [UInt8](repeating: 255, count: size * size * 3)
        let margin = size / 12, span = size - 2 * margin
        func point(_ x: Double, _ y: Double) -> (Int, Int) {
            (margin + Int((x * Double(span)).rounded()), size - margin - Int((y * Double(span)).rounded()))
        }
        func plot(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8), thickness: Int) {
            for dy in 0..<thickness { for dx in 0..<thickness {
                let px = x + dx - thickness / 2, py = y + dy - thickness / 2
                guard px >= 0, px < size, py >= 0, py < size else { continue }
                let i = (py * size + px) * 3
                pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
            } }
        }
        func line(_ a: (Double, Double), _ b: (Double, Double), _ c: (UInt8, UInt8, UInt8), thickness: Int = 1, dashed: Bool = false) {
            let (x0, y0) = point(a.0, a.1), (x1, y1) = point(b.0, b.1)
            let steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for s in 0...steps where !dashed || (s / 6) % 2 == 0 {
                plot(x0 + (x1 - x0) * s / steps, y0 + (y1 - y0) * s / steps, c, thickness: thickness)
            }
        }
        let grid: (UInt8, UInt8, UInt8) = (225, 225, 225)
        for k in 1..<5 {
            let v = Double(k) / 5
            line((v, 0), (v, 1), grid); line((0, v), (1, v), grid)
        }
        line((0, 0), (1, 1), (150, 150, 150), dashed: true)
        for (a, b) in [((0.0, 0.0), (1.0, 0.0)), ((0, 0), (0, 1)), ((1, 0), (1, 1)), ((0, 1), (1, 1))] { line(a, b, (0, 0, 0)) }
        for (index, roc) in curves.enumerated() {
            let colour = palette[index % palette.count].rgb
            for (p, q) in zip(roc.points, roc.points.dropFirst()) { line(p, q, colour, thickness: 3) }
        }
        return try PNGEncoder.encodeRGB(width: size, height: size, pixels: pixels)
    }
}
