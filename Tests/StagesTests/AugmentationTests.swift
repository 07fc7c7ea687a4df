import Foundation
@testable import Stages
import Testing

/// The training augmentation's transforms: exact where they can be undone, within their
/// stated ranges, and the same on replay.
@Suite("Augmentation")
struct AugmentationTests {
    static let shape = [2, 12, 16]
    static let mean: [Float] = [0.4, 0.5], std: [Float] = [0.2, 0.25]

    /// A smooth image in pixel values [0.1, 0.9] and its normalised tensor.
    static func image() -> (pixels: [Float], x: [Float]) {
        let (c, h, w) = (shape[0], shape[1], shape[2])
        var pixels = [Float](repeating: 0, count: c * h * w)
        for ch in 0..<c { for r in 0..<h { for col in 0..<w {
            pixels[(ch * h + r) * w + col] = 0.1 + 0.8 * Float(r * w + col + ch * 7) / Float(h * w + 7)
        } } }
        let x = pixels.enumerated().map { i, p in (p - mean[i / (h * w)]) / std[i / (h * w)] }
        return (pixels, x)
    }

    static func pixels(_ x: [Float]) -> [Float] {
        let plane = shape[1] * shape[2]
        return x.enumerated().map { i, v in v * std[i / plane] + mean[i / plane] }
    }

    static func applied(_ d: Augmenter.Draw, _ x: [Float]) -> [Float] {
        var y = x
        Augmenter.apply(d, to: &y, shape: shape, mean: mean, std: std)
        return y
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

    @Test("no change at all leaves the tensor as it was; a flip applied twice is the identity")
    func identityAndFlip() {
        let (_, x) = Self.image()
        #expect(Self.maxDifference(Self.applied(Augmenter.Draw(), x), x) < 1e-5)
        var flip = Augmenter.Draw()
        flip.flip = true
        let once = Self.applied(flip, x)
        #expect(Self.maxDifference(once, x) > 0.1)
        #expect(Self.maxDifference(Self.applied(flip, once), x) < 1e-5)
        // A shape, mean or std that does not fit leaves the tensor alone instead of trapping.
        var unfit = x
        Augmenter.apply(flip, to: &unfit, shape: [2, 12, 15], mean: Self.mean, std: Self.std)
        Augmenter.apply(flip, to: &unfit, shape: Self.shape, mean: [0.4], std: Self.std)
        #expect(unfit == x)
    }

    @Test("a whole-pixel shift moves every pixel exactly; shifting back restores the part that stayed inside")
    func shift() {
        let (pixels, x) = Self.image()
        let (h, w) = (Self.shape[1], Self.shape[2])
        var right = Augmenter.Draw()
        right.shiftX = 2 / Float(w)  // the source is 2 px right of each output pixel
        right.shiftY = -1 / Float(h)
        let moved = Self.pixels(Self.applied(right, x))
        for ch in 0..<2 { for r in 0..<h { for c in 0..<w {
            let sr = r - 1, sc = c + 2
            let expected: Float = sr >= 0 && sc < w ? pixels[(ch * h + sr) * w + sc] : 0
            #expect(abs(moved[(ch * h + r) * w + c] - expected) < 1e-5, "pixel (\(ch), \(r), \(c))")
        } } }
        var back = Augmenter.Draw()
        back.shiftX = -right.shiftX; back.shiftY = -right.shiftY
        let restored = Self.pixels(Self.applied(back, Self.applied(right, x)))
        for ch in 0..<2 { for r in 0..<(h - 1) { for c in 2..<w {
            #expect(abs(restored[(ch * h + r) * w + c] - pixels[(ch * h + r) * w + c]) < 1e-5)
        } } }
    }

    @Test("gamma and contrast are undone by their inverses; brightness scales pixel values")
    func intensity() {
        let (pixels, x) = Self.image()
        var d = Augmenter.Draw()
        d.gamma = 1.25; d.contrast = 1.2
        let changed = Self.pixels(Self.applied(d, x))
        #expect(zip(changed, pixels).allSatisfy { abs($0 - ((pow($1, 1.25) - 0.5) * 1.2 + 0.5)) < 1e-5 })
        var inverse = Augmenter.Draw()
        inverse.contrast = 1 / 1.2
        let uncontrasted = Self.applied(inverse, Self.applied(d, x))
        var ungamma = Augmenter.Draw()
        ungamma.gamma = 1 / 1.25
        let restored = Self.pixels(Self.applied(ungamma, uncontrasted))
        #expect(Self.maxDifference(restored, pixels) < 1e-5)
        var bright = Augmenter.Draw()
        bright.brightness = 0.8
        #expect(Self.maxDifference(Self.pixels(Self.applied(bright, x)), pixels.map { $0 * 0.8 }) < 1e-5)
    }

    @Test("a rotation there and back again restores the image's centre within interpolation error")
    func rotation() {
        let (pixels, x) = Self.image()
        var there = Augmenter.Draw()
        there.rotation = 5 * .pi / 180
        var back = Augmenter.Draw()
        back.rotation = -there.rotation
        let restored = Self.pixels(Self.applied(back, Self.applied(there, x)))
        let (h, w) = (Self.shape[1], Self.shape[2])
        var worst: Float = 0
        for ch in 0..<2 { for r in 3..<(h - 3) { for c in 3..<(w - 3) {
            worst = max(worst, abs(restored[(ch * h + r) * w + c] - pixels[(ch * h + r) * w + c]))
        } } }
        // The image is linear in each axis within a row, so bilinear sampling is nearly exact
        // inside; it is not exact across row ends.
        #expect(worst < 0.05, "worst interior difference \(worst)")
        #expect(Self.maxDifference(Self.pixels(Self.applied(there, x)), pixels) > 0.01)
    }

    @Test("every draw stays within the policy's ranges, and the output within black and the brightest pixel")
    func ranges() {
        let policy = AugmentationPolicy.radiograph
        #expect(policy.problem == nil)
        let (pixels, x) = Self.image()
        var flips = 0
        for seed in 0..<300 {
            var augmenter = Augmenter(policy: policy, seed: UInt64(seed))
            let d = augmenter.draw()
            if d.flip { flips += 1 }
            #expect(policy.scale.contains(d.scale))
            #expect(d.aspect >= 1 / policy.aspect - 1e-5 && d.aspect <= policy.aspect + 1e-5)
            #expect(abs(d.rotation) <= policy.rotation * .pi / 180 + 1e-6)
            #expect(abs(d.shiftX) <= policy.shift && abs(d.shiftY) <= policy.shift && abs(d.cropX) <= 1 && abs(d.cropY) <= 1)
            #expect(abs(d.brightness - 1) <= policy.brightness + 1e-6 && abs(d.contrast - 1) <= policy.contrast + 1e-6)
            #expect(d.gamma >= exp(-policy.gamma) - 1e-5 && d.gamma <= exp(policy.gamma) + 1e-5)
            if seed < 40 {
                let out = Self.pixels(Self.applied(d, x))
                // Bounds of (p^γ − ½)·c + ½ scaled by b, for p in [0, max].
                let top = pixels.max() ?? 1
                let high = d.brightness * max(0.5 - 0.5 * d.contrast, (pow(top, d.gamma) - 0.5) * d.contrast + 0.5)
                let low = d.brightness * min(0.5 - 0.5 * d.contrast, 0)
                #expect(out.allSatisfy { $0.isFinite && $0 >= low - 1e-4 && $0 <= high + 1e-4 })
            }
        }
        #expect(flips > 110 && flips < 190)
        // The policy's own limits.
        var bad = AugmentationPolicy.radiograph
        bad.rotation = .nan
        #expect(bad.problem != nil)
        bad = .radiograph
        bad.scale = 0...1
        #expect(bad.problem != nil)
    }

    @Test("the same seed, image and sample give the same augmentation; another image or sample another")
    func replay() {
        let (_, x) = Self.image()
        func augmented(_ id: String, sample: Int64?) -> [Float] {
            var augmenter = Augmenter(policy: .radiograph, seed: Augmenter.seed(7, imageID: id, sample: sample))
            var y = x
            augmenter.augment(&y, shape: Self.shape, mean: Self.mean, std: Self.std)
            return y
        }
        #expect(augmented("img-1", sample: 1_700_000_000_000) == augmented("img-1", sample: 1_700_000_000_000))
        #expect(augmented("img-1", sample: nil) == augmented("img-1", sample: nil))
        #expect(augmented("img-1", sample: 1) != augmented("img-2", sample: 1))
        #expect(augmented("img-1", sample: 1) != augmented("img-1", sample: 2))
        // Without a sample the seed is the one the trainers always used (the run's seed and the id).
        #expect(Augmenter.seed(7, imageID: "img-1") == 7 ^ fnv1a64("img-1"))
    }
}
