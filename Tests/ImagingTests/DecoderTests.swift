import Foundation
import Testing
@testable import Imaging

/// Paths of the shared datasets (../shared/datasets beside the repository).
enum SharedData {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets")
    static func bytes(_ relative: String) throws -> [UInt8] {
        let url = root.appendingPathComponent(relative)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw BadFixture("missing shared dataset file \(url.path)")
        }
        return [UInt8](data)
    }
    static let nihFullRes = "nih_cxr14_fullres_starter_subset/images/00000075_000.png"
    static let nih64 = "nih_cxr14_64px_kcr2019/NIH1000/train/0_normal"
    static let kermanyJPEG = "kermany_pneumonia_224/train/NORMAL/IM-0115-0001.jpeg"
}

struct BadFixture: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func fixture(_ name: String) throws -> [UInt8] {
    guard let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil),
          let data = FileManager.default.contents(atPath: url.path) else { throw BadFixture("missing fixture \(name)") }
    return [UInt8](data)
}

struct ExpectedGray: Decodable { var width: Int; var height: Int; var gray: [UInt8] }

@Suite("PNG and JPEG decoding")
struct DecoderTests {
    let decoder = ImageDecoder()

    @Test("generated PNGs decode to the gray values computed independently in Python",
          arguments: ["gray16.png", "gray_alpha8.png", "rgb8.png", "rgba8.png", "rgba16.png", "palette8.png"])
    func generatedPNG(name: String) throws {
        let expected = try JSONDecoder().decode([String: ExpectedGray].self, from: Data(try fixture("expected.json")))[name]!
        let (image, source) = try decoder.decode(try fixture(name))
        #expect(image.width == expected.width && image.height == expected.height)
        #expect(image.pixels == expected.gray)
        #expect(source.format == .png)
    }

    @Test("source info reports the file's bit depth and channels")
    func sourceInfo() throws {
        #expect(try decoder.decode(try fixture("gray16.png")).source.bitDepth == 16)
        #expect(try decoder.decode(try fixture("gray16.png")).source.channels == 1)
        #expect(try decoder.decode(try fixture("gray_alpha8.png")).source.channels == 2)
        #expect(try decoder.decode(try fixture("rgba16.png")).source == SourceImageInfo(format: .png, width: 4, height: 3, bitDepth: 16, channels: 4))
    }

    @Test("a header claiming 10^10 pixels is refused before any pixel is decoded")
    func decompressionBomb() throws {
        #expect(throws: ImagingError.tooManyPixels(width: 100_000, height: 100_000, limit: DecodeLimits().maxPixels)) {
            try decoder.decode(try fixture("bomb.png"))
        }
    }

    @Test("a real 1024x1024 NIH PNG decodes at full size, 8-bit gray")
    func nihFullResolution() throws {
        let (image, source) = try decoder.decode(try SharedData.bytes(SharedData.nihFullRes))
        #expect(image.width == 1024 && image.height == 1024)
        #expect(source == SourceImageInfo(format: .png, width: 1024, height: 1024, bitDepth: 8, channels: 1))
        let mean = image.pixels.reduce(0) { $0 + Int($1) } / image.pixels.count
        #expect(mean > 30 && mean < 220)  // an X-ray, not a blank
        #expect(Set(image.pixels).count > 100)
    }

    @Test("the NIH 64 px PNGs (RGB and RGBA with R=G=B) decode to 64x64 gray")
    func nih64RGB() throws {
        let folder = SharedData.root.appendingPathComponent(SharedData.nih64)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().prefix(20)
        #expect(names.count == 20)
        for name in names {
            let bytes = try SharedData.bytes("\(SharedData.nih64)/\(name)")
            let (image, source) = try decoder.decode(bytes)
            #expect(image.width == 64 && image.height == 64)
            #expect(source.channels == 3 || source.channels == 4)
            #expect(Set(image.pixels).count > 20)
        }
    }

    @Test("a real Kermany JPEG decodes to 224x224 gray")
    func kermanyJPEG() throws {
        let (image, source) = try decoder.decode(try SharedData.bytes(SharedData.kermanyJPEG))
        #expect(image.width == 224 && image.height == 224)
        #expect(source.format == .jpeg && source.channels == 3)
        #expect(Set(image.pixels).count > 50)
    }

    @Test("truncated PNG and JPEG files are refused as corrupt")
    func truncated() throws {
        let png = try SharedData.bytes(SharedData.nihFullRes)
        for cut in [100, 5_000, png.count / 2, png.count - 20] {
            #expect(throws: ImagingError.self) { try decoder.decode(Array(png.prefix(cut))) }
        }
        let jpeg = try SharedData.bytes(SharedData.kermanyJPEG)
        for cut in [10, 300, jpeg.count / 2] {
            do {
                _ = try decoder.decode(Array(jpeg.prefix(cut)))
                Issue.record("a JPEG cut to \(cut) of \(jpeg.count) bytes was accepted")
            } catch let error as ImagingError {
                guard case .corrupt(format: "JPEG", _) = error else { Issue.record("unexpected \(error)"); continue }
            }
        }
    }

    @Test("unknown, empty and oversized input get their own errors")
    func badInput() throws {
        #expect(throws: ImagingError.empty) { try decoder.decode([]) }
        #expect(throws: ImagingError.unknownFormat(firstBytes: Array("GIF89a..".utf8))) {
            try decoder.decode(Array("GIF89a..and more".utf8))
        }
        let small = ImageDecoder(limits: DecodeLimits(maxEncodedBytes: 1000))
        let png = try fixture("rgb8.png")
        #expect(png.count < 1000)
        let big = try SharedData.bytes(SharedData.nihFullRes)
        #expect(throws: ImagingError.encodedTooLarge(bytes: big.count, limit: 1000)) { try small.decode(big) }
        #expect(ImagingError.encodedTooLarge(bytes: 5, limit: 1).description.contains("limit"))
    }

    @Test("images larger than the working resolution are downscaled, keeping the aspect ratio")
    func workingResolution() throws {
        let limited = ImageDecoder(limits: DecodeLimits(maxSide: 256))
        let (image, source) = try limited.decode(try SharedData.bytes(SharedData.nihFullRes))
        #expect(image.width == 256 && image.height == 256)
        #expect(source.width == 1024)
        let wide = GrayImage(width: 40, height: 10, pixels: [UInt8](repeating: 77, count: 400))
        let fitted = limited.fitWithin(wide, maxSide: 20)
        #expect(fitted.width == 20 && fitted.height == 5)
        #expect(fitted.pixels.allSatisfy { $0 == 77 })
    }
}
