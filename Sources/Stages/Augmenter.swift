import Engine
import Foundation

/// The ranges training augmentation draws from. Every range is symmetric around "no change";
/// a zero (or a scale range of 1...1) turns that transform off.
public struct AugmentationPolicy: Sendable, Equatable, Codable {
    /// Mirror left-right with probability one half.
    public var flip = true
    /// Random resized crop: the share of the image's area the crop keeps, drawn uniformly.
    public var scale: ClosedRange<Float> = 1...1
    /// The crop's aspect ratio is exp(u), u uniform in [−log(aspect), log(aspect)].
    public var aspect: Float = 1
    /// Rotation, degrees, uniform in [−rotation, rotation].
    public var rotation: Float = 0
    /// Translation, as a share of the side, uniform in [−shift, shift] on each axis.
    public var shift: Float = 0
    /// Brightness factor b uniform in [1 − brightness, 1 + brightness]: pixel p → b·p.
    public var brightness: Float = 0.2
    /// Contrast factor c uniform in [1 − contrast, 1 + contrast]: p → (p − ½)·c + ½.
    public var contrast: Float = 0
    /// Gamma γ = exp(u), u uniform in [−gamma, gamma]: p → max(p, 0)^γ.
    public var gamma: Float = 0

    public init() {}

    /// The seeds' augmentation: flip and brightness ±0.2.
    public static let seeds = AugmentationPolicy()

    /// What is known to help chest X-rays, on top of the seeds': random resized crops of 70 to
    /// 100% of the area with aspect within ±15%, rotations up to 7°, shifts up to 5%, contrast
    /// ±20% and gamma within exp(±0.25).
    public static let radiograph: AugmentationPolicy = {
        var p = AugmentationPolicy()
        p.scale = 0.7...1
        p.aspect = 1.15
        p.rotation = 7
        p.shift = 0.05
        p.contrast = 0.2
        p.gamma = 0.25
        return p
    }()

    /// No augmentation at all.
    public static let none: AugmentationPolicy = {
        var p = AugmentationPolicy()
        p.flip = false
        p.brightness = 0
        return p
    }()

    /// Nil when every range is finite and sensible; otherwise what is wrong.
    public var problem: String? {
        let values = [scale.lowerBound, scale.upperBound, aspect, rotation, shift, brightness, contrast, gamma]
        guard values.allSatisfy(\.isFinite) else { return "augmentation ranges must be finite numbers" }
        if scale.lowerBound <= 0 || scale.upperBound > 1 { return "the crop's area share must be in (0, 1]" }
        if aspect < 1 || aspect > 2 { return "the aspect range must be in [1, 2]" }
        if rotation < 0 || rotation > 45 { return "rotation must be in [0, 45] degrees" }
        if shift < 0 || shift > 0.5 { return "shift must be in [0, 0.5]" }
        if brightness < 0 || brightness >= 1 || contrast < 0 || contrast >= 1 { return "brightness and contrast must be in [0, 1)" }
        if gamma < 0 || gamma > 1 { return "gamma must be in [0, 1]" }
        return nil
    }

    /// The policies by the names the commands take: `seeds`, `radiograph`, `none`.
    public static let named: [String: AugmentationPolicy] = ["seeds": .seeds, "radiograph": .radiograph, "none": .none]

    /// Whether any geometric transform besides the flip is on.
    var isGeometric: Bool { scale != 1...1 || aspect != 1 || rotation != 0 || shift != 0 }
}

/// Training augmentation of a preprocessed tensor (C, H, W), shared by `xray train` and the
/// streaming trainers: parameters drawn from a seeded generator (`Augmenter.seed`, from the
/// run's seed and the image, so a replayed batch is augmented the same way), then a left-right
/// flip, an affine warp (random resized crop, rotation, shift; bilinear, black outside the
/// image) and intensity changes (gamma, contrast, brightness) in pixel space, x·std + mean.
public struct Augmenter: Sendable {
    /// One draw of the parameters.
    public struct Draw: Sendable, Equatable {
        public var flip = false
        /// Area share and aspect ratio of the crop, rotation (radians), shift (share of the side).
        public var scale: Float = 1, aspect: Float = 1, rotation: Float = 0, shiftX: Float = 0, shiftY: Float = 0
        /// Where the crop sits, as a share of the room left on each axis, in [−1, 1].
        public var cropX: Float = 0, cropY: Float = 0
        public var brightness: Float = 1, contrast: Float = 1, gamma: Float = 1

        public init() {}

        var isGeometric: Bool { scale != 1 || aspect != 1 || rotation != 0 || shiftX != 0 || shiftY != 0 }
    }

    public var policy: AugmentationPolicy
    private var generator: SeededGenerator

    public init(policy: AugmentationPolicy = .seeds, seed: UInt64) {
        self.policy = policy
        generator = SeededGenerator(seed: seed)
    }

    /// The seed of one image's augmentation: the run's `seed`, the image id and, when given,
    /// which sample of the image this is (the record's acquisition stamp, or the epoch), so
    /// the same record read again gets the same draw and the image sent again a new one.
    public static func seed(_ seed: UInt64, imageID: String, sample: Int64? = nil) -> UInt64 {
        var s = seed ^ fnv1a64(imageID)
        if let sample { s ^= UInt64(bitPattern: sample) &* 0x9E37_79B9_7F4A_7C15 }
        return s
    }

    /// Draws the next parameters (always the same number of draws, whatever is on).
    public mutating func draw() -> Draw {
        var d = Draw()
        let u = (0..<11).map { _ in generator.uniform() }
        let symmetric = { (i: Int, range: Float) in (u[i] * 2 - 1) * range }
        d.flip = policy.flip && u[0] < 0.5
        d.scale = policy.scale.lowerBound + u[1] * (policy.scale.upperBound - policy.scale.lowerBound)
        d.aspect = exp(symmetric(2, log(policy.aspect)))
        d.rotation = symmetric(3, policy.rotation) * .pi / 180
        d.shiftX = symmetric(4, policy.shift)
        d.shiftY = symmetric(5, policy.shift)
        d.cropX = policy.isGeometric ? u[6] * 2 - 1 : 0
        d.cropY = policy.isGeometric ? u[7] * 2 - 1 : 0
        d.brightness = 1 + symmetric(8, policy.brightness)
        d.contrast = 1 + symmetric(9, policy.contrast)
        d.gamma = exp(symmetric(10, policy.gamma))
        return d
    }

    /// Draws parameters and applies them to `x` (C, H, W), normalised with `mean` and `std`.
    public mutating func augment(_ x: inout [Float], shape: [Int], mean: [Float], std: [Float]) {
        let d = draw()
        Self.apply(d, to: &x, shape: shape, mean: mean, std: std)
    }

    /// Applies `d` to `x` (C, H, W) normalised with `mean` and `std` per channel; leaves `x`
    /// as it is when the shape, `mean` or `std` does not fit it (callers check the shape first).
    public static func apply(_ d: Draw, to x: inout [Float], shape: [Int], mean: [Float], std: [Float]) {
        guard shape.count == 3, shape.allSatisfy({ $0 > 0 }), x.count == shape.reduce(1, { $0.multipliedReportingOverflow(by: $1).partialValue }),
              mean.count == shape[0], std.count == shape[0] else { return }
        let c = shape[0], h = shape[1], w = shape[2], plane = h * w
        // x: (C, H, W) → pixel values p = x·std + mean.
        for ch in 0..<c { for i in (ch * plane)..<((ch + 1) * plane) { x[i] = x[i] * std[ch] + mean[ch] } }
        if d.flip {
            for row in 0..<(c * h) { x[(row * w)..<(row * w + w)].reverse() }
        }
        if d.isGeometric { x = warp(x, channels: c, height: h, width: w, d) }
        let intensity = d.gamma != 1 || d.contrast != 1
        for ch in 0..<c {
            for i in (ch * plane)..<((ch + 1) * plane) {
                var p = x[i]
                if intensity {
                    if d.gamma != 1 { p = pow(max(p, 0), d.gamma) }
                    p = (p - 0.5) * d.contrast + 0.5
                }
                x[i] = (d.brightness * p - mean[ch]) / std[ch]
            }
        }
    }

    /// The affine warp: output pixel centre (u, v), relative to the image centre, scaled to
    /// the crop box, rotated and shifted, is where it is sampled from (bilinear; 0 outside).
    static func warp(_ p: [Float], channels c: Int, height h: Int, width w: Int, _ d: Draw) -> [Float] {
        let W = Float(w), H = Float(h)
        let cropW = min(W, W * (d.scale * d.aspect).squareRoot()), cropH = min(H, H * (d.scale / d.aspect).squareRoot())
        let dx = d.cropX * (W - cropW) / 2 + d.shiftX * W, dy = d.cropY * (H - cropH) / 2 + d.shiftY * H
        let cosR = cos(d.rotation), sinR = sin(d.rotation)
        let kx = cropW / W, ky = cropH / H
        var out = [Float](repeating: 0, count: p.count)
        let plane = h * w
        func at(_ ch: Int, _ row: Int, _ col: Int) -> Float {
            row >= 0 && row < h && col >= 0 && col < w ? p[ch * plane + row * w + col] : 0
        }
        for v in 0..<h {
            for u in 0..<w {
                let a = (Float(u) + 0.5 - W / 2) * kx, b = (Float(v) + 0.5 - H / 2) * ky
                let sx = W / 2 + cosR * a - sinR * b + dx - 0.5, sy = H / 2 + sinR * a + cosR * b + dy - 0.5
                guard sx > -1, sy > -1, sx < W, sy < H else { continue }
                let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
                let fx = sx - Float(x0), fy = sy - Float(y0)
                for ch in 0..<c {
                    var value = at(ch, y0, x0) * (1 - fx) * (1 - fy)
                    if fx != 0 { value += at(ch, y0, x0 + 1) * fx * (1 - fy) }
                    if fy != 0 { value += at(ch, y0 + 1, x0) * (1 - fx) * fy }
                    if fx != 0 && fy != 0 { value += at(ch, y0 + 1, x0 + 1) * fx * fy }
                    out[ch * plane + v * w + u] = value
                }
            }
        }
        return out
    }
}
