import Testing
@testable import Imaging

@Suite("Resampling and preprocessing")
struct PreprocessTests {
    @Test("2x downscale uses the antialiased triangle taps 3/7, 3/7, 1/7 (Pillow's rule)")
    func downscaleTaps() {
        let taps = Resampler.taps(from: 4, to: 2)
        #expect(taps.start == [0, 1])
        #expect(taps.count == [3, 3])
        let w0 = Array(taps.weights[0..<3]), w1 = Array(taps.weights[taps.width..<taps.width + 3])
        for (a, b) in zip(w0 + w1, [3.0 / 7, 3.0 / 7, 1.0 / 7, 1.0 / 7, 3.0 / 7, 3.0 / 7] as [Float]) {
            #expect(abs(a - b) < 1e-6)
        }
        // Row [0, 70, 140, 210] → [(0*3 + 70*3 + 140)/7, (70 + 140*3 + 210*3)/7] = [50, 160].
        let out = Resampler.resize(GrayImage(width: 4, height: 1, pixels: [0, 70, 140, 210]), width: 2, height: 1)
        #expect(abs(out[0] - 50) < 1e-4 && abs(out[1] - 160) < 1e-4)
    }

    /// The resize as one direct two-dimensional sum over both axes' taps: the naive definition
    /// the two-pass fast path must agree with.
    static func naiveResize(_ image: GrayImage, width: Int, height: Int,
                            window: (x: Int, y: Int, width: Int, height: Int)) -> [Float] {
        let h = Resampler.taps(from: image.width, to: width), v = Resampler.taps(from: image.height, to: height)
        var out: [Float] = []
        for y in window.y..<window.y + window.height {
            for x in window.x..<window.x + window.width {
                var sum: Double = 0
                for j in 0..<v.count[y] {
                    for k in 0..<h.count[x] {
                        let pixel = Double(image.pixels[(v.start[y] + j) * image.width + h.start[x] + k])
                        sum += Double(v.weights[y * v.width + j]) * Double(h.weights[x * h.width + k]) * pixel
                    }
                }
                out.append(Float(sum))
            }
        }
        return out
    }

    @Test("the two-pass resize equals the direct 2-D sum: odd sizes, up and down, windows")
    func fastPathMatchesNaive() {
        var state: UInt64 = 12345
        func next() -> UInt8 { state = state &* 6364136223846793005 &+ 1442695040888963407; return UInt8(truncatingIfNeeded: state >> 56) }
        let image = GrayImage(width: 131, height: 97, pixels: (0..<(131 * 97)).map { _ in next() })
        for (w, h, window) in [(40, 50, (3, 5, 30, 41)), (131, 97, (0, 0, 131, 97)), (300, 200, (17, 9, 250, 180)),
                               (7, 3, (0, 0, 7, 3)), (64, 97, (10, 20, 40, 40))] {
            let fast = Resampler.resize(image, width: w, height: h, window: window)
            let naive = Self.naiveResize(image, width: w, height: h, window: window)
            let worst = zip(fast, naive).map { abs($0 - $1) }.max() ?? .infinity
            #expect(fast.count == naive.count && worst < 1e-3, "\(w)x\(h) window \(window): max difference \(worst)")
        }
    }

    @Test("resizing to the same size is the identity")
    func identity() {
        let pixels = (0..<30).map { UInt8($0 * 7) }
        let out = Resampler.resize(GrayImage(width: 6, height: 5, pixels: pixels), width: 6, height: 5)
        #expect(out == pixels.map(Float.init))
    }

    @Test("crop takes the centre (torchvision's rounding) and normalises per channel")
    func cropAndNormalise() throws {
        // 8 wide, 4 high; resize 4 keeps the size (shorter side is already 4); crop 4 starts at x = 2.
        let pixels = (0..<32).map { UInt8($0 * 8) }
        let p = Preprocessor(resize: 4, crop: 4, mean: [0, 0.5], std: [1, 0.25])
        let out = try p.tensor(from: GrayImage(width: 8, height: 4, pixels: pixels))
        #expect(out.count == 2 * 16)
        for y in 0..<4 {
            for x in 0..<4 {
                let v = Float(pixels[y * 8 + x + 2]) / 255
                #expect(abs(out[y * 4 + x] - v) < 1e-6)
                #expect(abs(out[16 + y * 4 + x] - (v - 0.5) / 0.25) < 1e-5)
            }
        }
    }

    @Test("the seeds' chain: shorter side 256, longer truncated, crop 224, ImageNet statistics")
    func seedsChain() throws {
        let p = Preprocessor(resize: 256, crop: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
        #expect(p.resizedSize(width: 300, height: 200) == (384, 256))
        #expect(p.resizedSize(width: 200, height: 301) == (256, 385))
        #expect(p.cropOrigin(width: 384, height: 256) == (80, 16))
        #expect(p.cropOrigin(width: 257, height: 256) == (16, 16))  // 16.5 rounds to even
        let out = try p.tensor(from: GrayImage(width: 300, height: 200, pixels: [UInt8](repeating: 51, count: 60_000)))
        #expect(out.count == 3 * 224 * 224)
        for c in 0..<3 {
            let expected = (Float(0.2) - p.mean[c]) / p.std[c]
            let plane = out[(c * 50176)..<((c + 1) * 50176)]
            #expect(plane.allSatisfy { abs($0 - expected) < 1e-4 })
        }
    }
}
