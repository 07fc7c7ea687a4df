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
