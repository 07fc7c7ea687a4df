import Foundation
import Imaging
import Testing
@testable import Dicom

@Suite("DICOM decoding against pydicom + numpy", .enabled(if: DicomFixtures.available, "XRAY_DICOM_FIXTURES not set: run Ops/test"))
struct DicomDecoderTests {
    /// Full working resolution: the fixtures are 256 px, so nothing is resized.
    let decoder = DicomDecoder()

    @Test("each transfer syntax, bit depth and photometric interpretation renders to the grey levels PS3.3 gives",
          arguments: DicomFixtures.manifest?.images ?? [])
    func rendersAsTheStandardSays(image: DicomFixtures.Image) throws {
        let (decoded, source, info) = try decoder.decode(try DicomFixtures.bytes(image.file))
        let expected = try DicomFixtures.bytes(image.expected)
        #expect(decoded.width == image.width && decoded.height == image.height)
        #expect(source.format == .dicom)
        let differences = zip(decoded.pixels, expected).map { abs(Int($0) - Int($1)) }
        let worst = differences.max() ?? 255
        let mean = Double(differences.reduce(0, +)) / Double(max(1, differences.count))
        print("\(image.name) (\(image.note)): \(info.window.rawValue), max abs \(worst), mean abs \(mean)")
        // DCMTK and the formula here round differently (a level apart at most, about half the
        // pixels for a min-max window); lossy codecs move a few levels more.
        #expect(worst <= (image.lossy ? 12 : 1), "\(image.name): worst pixel \(worst) levels off")
        #expect(mean <= (image.lossy ? 1.5 : 0.6))
        #expect(expected.count == decoded.pixels.count)
    }

    @Test("the window, VOI LUT and MONOCHROME1 are the ones used")
    func greyPipelineChoices() throws {
        let manifest = try #require(DicomFixtures.manifest)
        func info(_ name: String) throws -> DicomImageInfo {
            try decoder.decode(try DicomFixtures.bytes(try #require(manifest.images.first { $0.name == name }).file)).dicom
        }
        #expect(try info("dx-12bit-voi-lut").window == .voiLUT)
        #expect(try info("cr-12bit-mono2-window").window == .window)
        let mono1 = try info("cr-12bit-mono1-rle")
        #expect(mono1.monochrome1 && mono1.window == .minMax && mono1.bitsStored == 12)
        #expect(try info("dx-16bit-signed-rescale").signed)
    }

    @Test("multi-frame, pixel-less, truncated objects and a length that lies are refused with their reasons")
    func refusals() throws {
        let manifest = try #require(DicomFixtures.manifest)
        for refused in manifest.refused {
            do {
                _ = try decoder.decode(try DicomFixtures.bytes(refused.file))
                Issue.record("\(refused.file) decoded")
            } catch let error as DicomError {
                print("\(refused.file): \(error.reasonCode): \(error)")
                if refused.reason == "corrupt" {
                    #expect(error.kind == .unreadable || error.kind == .corruptImage, "\(refused.file)")
                } else {
                    #expect(error.reasonCode == refused.reason, "\(refused.file)")
                }
                #expect(error.description.contains(refused.says), "\(refused.file): \(error)")
            }
        }
    }

    @Test("the pixel limit is checked before decompressing, and the working resolution applies")
    func limits() throws {
        let bytes = try DicomFixtures.bytes("cr-12bit-jpeg2000.dcm")
        #expect(throws: DicomError.self) { try DicomDecoder(limits: DecodeLimits(maxPixels: 256 * 255)).decode(bytes) }
        let small = try DicomDecoder(limits: DecodeLimits(maxSide: 128)).decode(bytes)
        #expect(small.image.width == 128 && small.image.height == 128 && small.source.width == 256)
        #expect(throws: ImagingError.self) { try DicomDecoder(limits: DecodeLimits(maxEncodedBytes: 1000)).decode(bytes) }
    }
}

@Suite("Real DICOM chest radiographs from other software")
struct RealDicomSampleTests {
    let decoder = DicomDecoder(limits: DecodeLimits(maxSide: 2048))

    @Test("a JPEG baseline CR from the SIIM-ACR set, and its MONOCHROME1 copy rendered inverted")
    func siimSample() throws {
        let plain = try decoder.decode(try DicomFixtures.sample("torchxrayvision_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"))
        let inverted = try decoder.decode(try DicomFixtures.sample("torchxrayvision_Fake_MONOHR1.dcm"))
        #expect(plain.image.width == 1024 && plain.image.height == 1024)
        #expect(inverted.dicom.monochrome1 && !plain.dicom.monochrome1)
        // The same stored pixels, the header says MONOCHROME1: each grey level mirrors the other.
        let mirrored = zip(plain.image.pixels, inverted.image.pixels).map { abs(Int($0) + Int($1) - 255) }
        #expect((mirrored.max() ?? 255) <= 1)
    }

    @Test("an implicit VR DX, and an old file without preamble or DICM marker (MONOCHROME1, 10 bits)")
    func otherSamples() throws {
        let dx = try decoder.decode(try DicomFixtures.sample("nhsx_1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888.dcm"))
        #expect(dx.image.width == 1024 && dx.image.height == 1024)
        let bytes = try DicomFixtures.sample("fo-dicom_CR-MONO1-10-chest")
        #expect(!DicomObject.isPart10(bytes) && DicomDecoder.isDicom(bytes, contentType: "application/dicom"))
        let old = try decoder.decode(bytes)
        #expect(old.image.width == 440 && old.dicom.monochrome1 && old.dicom.bitsStored == 10)
        // Lungs dark, mediastinum and bone bright: the centre column is brighter than the lung fields.
        let row = 220 * 440
        let centre = Int(old.image.pixels[row + 220]), lung = Int(old.image.pixels[row + 110])
        #expect(centre > lung, "MONOCHROME1 rendered with bone bright (centre \(centre), lung \(lung))")
    }
}
