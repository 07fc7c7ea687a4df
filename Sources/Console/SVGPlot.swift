import Foundation

/// A small line-and-dot chart drawn as SVG text on the server (no script, no CDN): series of
/// (x, y) points on shared axes, with the axis ranges, a caption and a legend.
public struct SVGPlot: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var color: String
        public var points: [(x: Double, y: Double)]
        /// Draw the points joined by a line (else as dots only).
        public var line: Bool
        public init(name: String, color: String, points: [(x: Double, y: Double)], line: Bool = true) {
            self.name = name; self.color = color; self.points = points; self.line = line
        }
    }

    public var title: String
    public var xLabel: String
    public var series: [Series]
    /// Fixed y range (else from the data).
    public var yRange: ClosedRange<Double>?
    public var width = 460.0, height = 190.0

    public init(title: String, xLabel: String, series: [Series], yRange: ClosedRange<Double>? = nil) {
        self.title = title; self.xLabel = xLabel; self.series = series; self.yRange = yRange
    }

    public var svg: String {
        let legend = series.count > 1
        let left = 52.0, right = 10.0, top = legend ? 34.0 : 22.0, bottom = 30.0
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(HTML.escape(title))\">"
        out += "<text x=\"\(left)\" y=\"14\" class=\"plot-title\">\(HTML.escape(title))</text>"
        if legend {
            out += "<text x=\"\(left)\" y=\"27\" class=\"plot-legend\">"
            for (i, s) in series.enumerated() {
                out += "<tspan style=\"fill:\(s.color)\" dx=\"\(i == 0 ? 0 : 8)\">● \(HTML.escape(s.name))</tspan>"
            }
            out += "</text>"
        }
        out += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width - left - right)\" height=\"\(height - top - bottom)\" fill=\"none\" stroke=\"#bbb\"/>"
        guard let minX = all.map(\.x).min(), let maxX = all.map(\.x).max() else {
            return out + "<text x=\"\(left + 10)\" y=\"\(height / 2)\" class=\"plot-empty\">no data yet</text></svg>"
        }
        var lowY = yRange?.lowerBound ?? (all.map(\.y).min() ?? 0)
        var highY = yRange?.upperBound ?? (all.map(\.y).max() ?? 1)
        if highY - lowY < 1e-12 {  // one value: a band around it
            let pad = max(abs(highY) * 0.1, 1e-9)
            lowY -= pad; highY += pad
        }
        let spanX = maxX - minX < 1e-12 ? 1 : maxX - minX
        func px(_ x: Double) -> Double { left + (x - minX) / spanX * (width - left - right) }
        func py(_ y: Double) -> Double { top + (1 - (min(max(y, lowY), highY) - lowY) / (highY - lowY)) * (height - top - bottom) }
        out += "<text x=\"4\" y=\"\(top + 8)\" class=\"plot-axis\">\(Self.number(highY))</text>"
        out += "<text x=\"4\" y=\"\(height - bottom)\" class=\"plot-axis\">\(Self.number(lowY))</text>"
        out += "<text x=\"\(left)\" y=\"\(height - 8)\" class=\"plot-axis\">\(HTML.escape(xLabel))</text>"
        for s in series {
            let points = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            if s.line && points.count > 1 {
                let path = points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
                out += "<polyline class=\"series\" data-series=\"\(HTML.escape(s.name))\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\" points=\"\(path)\"/>"
            }
            for p in points {
                out += "<circle class=\"point\" cx=\"" + String(format: "%.1f", px(p.x)) + "\" cy=\"" + String(format: "%.1f", py(p.y))
                    + "\" r=\"2.5\" fill=\"\(s.color)\"/>"
            }
        }
        return out + "</svg>"
    }

    static func number(_ v: Double) -> String {
        abs(v) >= 100 ? String(format: "%.0f", v) : abs(v) >= 1 ? String(format: "%.2f", v) : String(format: "%.3g", v)
    }
}

/// HTML text escaping.
enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
