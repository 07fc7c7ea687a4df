import Foundation
import Testing
@testable import Imaging

/// The fast PNG path (libdeflate + own unfiltering) gives libpng's pixels or declines.
@Suite("Fast PNG decoding")
struct FastPNGTests {
    static let filterFixtures = ["filters_gray8.png", "filters_gray_alpha8.png", "filters_rgb8.png", "filters_rgba8.png",
                                 "filters_gray16.png", "filters_rgb16.png"]

    @Test("every row filter, on every kind of file it takes, decodes to the gray values Python computed",
          arguments: filterFixtures)
    func everyFilter(name: String) throws {
        let expected = try #require(try JSONDecoder().decode([String: ExpectedGray].self, from: Data(try fixture("expected.json")))[name])
        let bytes = try fixture(name)
        let (image, source) = try #require(FastPNGDecoder.decode(bytes, maxPixels: 1 << 20), "the fast path declined \(name)")
        #expect(image.width == expected.width && image.height == expected.height)
        #expect(image.pixels == expected.gray)
        // libpng, asked directly, agrees on pixels and on what it says about the file.
        let (viaLibpng, libpngSource) = try PNGDecoder.decode(bytes, maxPixels: 1 << 20, reader: .libpng)
        #expect(viaLibpng == image)
        #expect(libpngSource == source)
    }

    @Test("files it does not take go to libpng: palette, 16-bit with alpha, a gamma other than sRGB's")
    func declines() throws {
        for name in ["palette8.png", "rgba16.png", "gamma_linear_gray8.png"] {
            #expect(FastPNGDecoder.decode(try fixture(name), maxPixels: 1 << 20) == nil, "\(name)")
            _ = try ImageDecoder().decode(try fixture(name))  // and still decode
        }
        // libpng converts gamma 1.0 to sRGB: the pixels are not the file's samples.
        let linear = try ImageDecoder().decode(try fixture("gamma_linear_gray8.png")).image
        let srgb = try ImageDecoder().decode(try fixture("gamma_srgb_gray8.png")).image
        #expect(linear.pixels != srgb.pixels)
    }

    @Test("an 8-bit file marked sRGB (sRGB chunk, gAMA 45455) is taken: the samples are the pixels")
    func srgbTaken() throws {
        let expected = try #require(try JSONDecoder().decode([String: ExpectedGray].self, from: Data(try fixture("expected.json")))["gamma_srgb_gray8.png"])
        let bytes = try fixture("gamma_srgb_gray8.png")
        let fast = try #require(FastPNGDecoder.decode(bytes, maxPixels: 1 << 20))
        #expect(fast.0.pixels == expected.gray)
        #expect(try PNGDecoder.decode(bytes, maxPixels: 1 << 20, reader: .libpng).0 == fast.0)
    }

    @Test("real NIH PNGs (1024², 512², 64²) decode on the fast path to libpng's pixels")
    func realImages() throws {
        let folders = ["nih_cxr14_fullres_starter_subset/images", "nih_pneumonia_site_512", "nih_cxr14_64px_kcr2019/NIH1000/train"]
        var compared = 0
        for folder in folders {
            let url = SharedData.root.appendingPathComponent(folder)
            let files = (FileManager.default.enumerator(atPath: url.path)?.compactMap { $0 as? String } ?? [])
                .filter { $0.hasSuffix(".png") }.sorted().prefix(8)
            for file in files {
                let bytes = try SharedData.bytes("\(folder)/\(file)")
                let fast = try #require(FastPNGDecoder.decode(bytes, maxPixels: 1 << 22), "declined \(folder)/\(file)")
                let libpng = try PNGDecoder.decode(bytes, maxPixels: 1 << 22, reader: .libpng)
                #expect(fast.0 == libpng.0, "\(folder)/\(file)")
                #expect(fast.1 == libpng.1)
                compared += 1
            }
        }
        // The full-resolution subset's few RGBA files (sRGB, gAMA 45455, pHYs chunks).
        let full = SharedData.root.appendingPathComponent("nih_cxr14_fullres_starter_subset/images")
        let rgba = try FileManager.default.contentsOfDirectory(atPath: full.path).sorted().compactMap { name -> [UInt8]? in
            guard let data = FileManager.default.contents(atPath: full.appendingPathComponent(name).path),
                  data.count > 40, data[25] == 6 else { return nil }  // IHDR colour type 6
            return [UInt8](data)
        }.prefix(2)
        #expect(rgba.count == 2)
        for bytes in rgba {
            let fast = try #require(FastPNGDecoder.decode(bytes, maxPixels: 1 << 22))
            #expect(fast.0 == (try PNGDecoder.decode(bytes, maxPixels: 1 << 22, reader: .libpng)).0)
            compared += 1
        }
        #expect(compared >= 22)
    }

    @Test("a broken file is never decoded differently: cut, a flipped byte, a bad filter type, a wrong CRC")
    func brokenFiles() throws {
        let good = try fixture("filters_rgb8.png")
        var variants: [[UInt8]] = []
        for cut in stride(from: 8, to: good.count, by: 7) { variants.append(Array(good.prefix(cut))) }
        for position in 8..<good.count {
            var flipped = good
            flipped[position] ^= 0x5A
            variants.append(flipped)
        }
        var declined = 0
        for bytes in variants {
            let fast = FastPNGDecoder.decode(bytes, maxPixels: 1 << 20)
            let libpng = try? PNGDecoder.decode(bytes, maxPixels: 1 << 20, reader: .libpng)
            if let fast {
                // Only a change libpng ignores too (inside tIME or tEXt) may still decode here.
                #expect(fast.0 == libpng?.0, "the fast path decoded a file libpng decodes otherwise")
            } else {
                declined += 1
            }
            // Through the decoder, a broken file is an ImagingError or libpng's image: never a crash.
            do { _ = try ImageDecoder().decode(bytes) } catch { #expect(error is ImagingError) }
        }
        #expect(declined > variants.count / 2)
    }

    @Test("a filter type above 4 is refused by both paths")
    func badFilterType() throws {
        // Rows of 3 bytes: Sub, then a filter type 5 that PNG does not define.
        let filtered: [UInt8] = [1, 1, 2, 3, 5, 0, 0, 0]
        var rows = [UInt8](repeating: 0, count: 6)
        let ok = filtered.withUnsafeBufferPointer { source in
            rows.withUnsafeMutableBufferPointer { PNGRowFilters.unfilter(source, into: $0, rowBytes: 3, height: 2, bytesPerPixel: 1) }
        }
        #expect(!ok)
        #expect(Array(rows.prefix(3)) == [1, 3, 6])
        // A whole file with such a row: declined here, refused by libpng as corrupt.
        let bytes = try fixture("filters_bad_type.png")
        #expect(FastPNGDecoder.decode(bytes, maxPixels: 1 << 20) == nil)
        #expect {
            try ImageDecoder().decode(bytes)
        } throws: { error in
            guard case ImagingError.corrupt(format: "PNG", _) = error else { return false }
            return true
        }
    }

    @Test("Paeth's predictor picks the nearest of a, b, c with ties to a, then b",
          arguments: [(10, 20, 10, 20), (20, 10, 10, 20), (10, 10, 10, 10), (0, 255, 255, 0), (100, 50, 200, 50), (7, 9, 8, 8)])
    func paethPredictor(a: Int, b: Int, c: Int, expected: Int) {
        #expect(PNGRowFilters.predictor(a: UInt8(a), b: UInt8(b), c: UInt8(c)) == UInt8(expected))
    }
}
