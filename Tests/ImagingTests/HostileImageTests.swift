import Foundation
import Testing
@testable import Imaging

@Suite("Hostile images")
struct HostileImageTests {
    let decoder = ImageDecoder()

    @Test("an image no radiograph looks like (1 x 600, 1 x 60,000) is refused before it is resampled")
    func aspectRatio() throws {
        let strip = try PNGEncoder.encodeRGB(width: 1, height: 600, pixels: [UInt8](repeating: 90, count: 1800))
        #expect(throws: ImagingError.badAspectRatio(width: 1, height: 600, limit: 10)) { try decoder.decode(strip) }
        #expect(ImagingError.badAspectRatio(width: 1, height: 600, limit: 10).reasonCode == "bad-aspect-ratio")
        let preprocessor = Preprocessor(resize: 256, crop: 224, mean: [0.5], std: [0.25])
        let tall = GrayImage(width: 1, height: 60_000, pixels: [UInt8](repeating: 0, count: 60_000))
        #expect(throws: ImagingError.badAspectRatio(width: 1, height: 60_000, limit: 10)) { try preprocessor.tensor(from: tall) }
        let wide = GrayImage(width: 100, height: 10, pixels: [UInt8](repeating: 0, count: 1000))
        #expect(try preprocessor.tensor(from: wide).count == 224 * 224)
    }

    @Test("a PNG cut at every byte, and one with a corrupted byte anywhere in its header, gives an ImagingError")
    func pngCutAndCorrupted() throws {
        let png = try fixture("rgba16.png")
        let whole = try decoder.decode(png).image
        for cut in 0..<png.count {
            // Only the closing IEND chunk (12 bytes) may be missing: the pixels are all there.
            if cut < png.count - 12 {
                #expect(throws: ImagingError.self) { try decoder.decode(Array(png.prefix(cut))) }
            } else {
                #expect(try decoder.decode(Array(png.prefix(cut))).image == whole)
            }
        }
        for index in 0..<min(png.count, 64) {
            var bad = png
            bad[index] ^= 0xFF
            // Either decodes (an ancillary byte) or throws an ImagingError; never traps.
            do { _ = try decoder.decode(bad) } catch is ImagingError {} catch { Issue.record("\(index): \(error)") }
        }
    }

    @Test("a JPEG cut at every 64th byte, or with a corrupted byte in its first kilobyte, gives an ImagingError or an image")
    func jpegCutAndCorrupted() throws {
        let jpeg = try SharedData.bytes(SharedData.kermanyJPEG)
        for cut in stride(from: 0, to: jpeg.count, by: 64) {
            #expect(throws: ImagingError.self) { try decoder.decode(Array(jpeg.prefix(cut))) }
        }
        for index in stride(from: 0, to: min(jpeg.count, 1024), by: 7) {
            var bad = jpeg
            bad[index] ^= 0x5A
            do { _ = try decoder.decode(bad) } catch is ImagingError {} catch { Issue.record("\(index): \(error)") }
        }
    }

    @Test("a PNG header claiming 100,000 x 100,000 pixels is refused before decoding")
    func decompressionBomb() throws {
        let bomb = try fixture("bomb.png")
        #expect(throws: ImagingError.self) { try decoder.decode(bomb) }
        do { _ = try decoder.decode(bomb) } catch let error as ImagingError {
            guard case .tooManyPixels = error else { Issue.record("expected tooManyPixels, got \(error)"); return }
        }
    }
}
