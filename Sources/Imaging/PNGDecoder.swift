internal import CPNG

/// Decodes PNG with libpng's simplified `png_image` API: 8- and 16-bit gray, gray+alpha, RGB,
/// RGBA and palette images, read in the file's own bit depth (asking for another would make
/// libpng convert gamma) and then reduced to 8-bit gray here: RGB by ITU-R 601 luma with
/// Pillow's integer weights, 16-bit by rounding v/257, alpha dropped (as Pillow's "L").
///
/// With `.fast`, the files `FastPNGDecoder` takes (most radiographs) are decoded there, to the
/// same pixels; libpng decodes the rest and says what is wrong with a corrupt file.
enum PNGDecoder {
    static func decode(_ bytes: [UInt8], maxPixels: Int, reader: PNGReader = .fast) throws -> (GrayImage, SourceImageInfo) {
        if reader == .fast, let decoded = FastPNGDecoder.decode(bytes, maxPixels: maxPixels) { return decoded }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        let began = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard began != 0 else { throw ImagingError.corrupt(format: "PNG", reason: message(of: &image)) }

        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width.multipliedReportingOverflow(by: height).partialValue <= maxPixels,
              !width.multipliedReportingOverflow(by: height).overflow else {
            throw ImagingError.tooManyPixels(width: width, height: height, limit: maxPixels)
        }
        // Expand palettes to their colour type; keep the file's channels and bit depth.
        image.format &= ~UInt32(PNG_FORMAT_FLAG_COLORMAP)
        let format = image.format
        let channels = Int(xray_png_image_sample_channels(format))
        let componentSize = Int(xray_png_image_sample_component_size(format))
        let size = xray_png_image_buffer_size(&image)

        var raw = [UInt8](repeating: 0, count: size)
        let finished = raw.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        guard finished != 0 else { throw ImagingError.corrupt(format: "PNG", reason: message(of: &image)) }
        // A warning (for example a bad CRC in an ancillary chunk) still gives an image; an
        // error gives none. libpng reports missing data (truncation) as an error.
        let gray = toGray(raw, pixels: width * height, channels: channels, sixteenBit: componentSize == 2,
                          bgr: format & UInt32(PNG_FORMAT_FLAG_BGR) != 0,
                          alphaFirst: format & UInt32(PNG_FORMAT_FLAG_AFIRST) != 0)
        let info = SourceImageInfo(format: .png, width: width, height: height, bitDepth: componentSize * 8,
                                   channels: channels)
        return (GrayImage(width: width, height: height, pixels: gray), info)
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { buffer in
            String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Reduces interleaved samples (16-bit ones in native order) to one 8-bit gray value per pixel.
    static func toGray(_ raw: [UInt8], pixels: Int, channels: Int, sixteenBit: Bool,
                               bgr: Bool, alphaFirst: Bool) -> [UInt8] {
        if channels == 1 && !sixteenBit { return raw }
        var out = [UInt8](repeating: 0, count: pixels)
        let hasAlpha = channels == 2 || channels == 4
        let colour = channels >= 3
        let first = (hasAlpha && alphaFirst) ? 1 : 0  // index of the first colour sample
        raw.withUnsafeBytes { bytes in
            out.withUnsafeMutableBufferPointer { dst in
                if sixteenBit {
                    let src = bytes.bindMemory(to: UInt16.self)  // native-endian, as libpng writes them
                    for i in 0..<pixels {
                        let base = i * channels + first
                        let value: UInt32
                        if colour {
                            let r = UInt32(src[base + (bgr ? 2 : 0)]), g = UInt32(src[base + 1]), b = UInt32(src[base + (bgr ? 0 : 2)])
                            value = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
                        } else {
                            value = UInt32(src[base])
                        }
                        dst[i] = UInt8((value * 255 + 32767) / 65535)
                    }
                } else {
                    let src = bytes.bindMemory(to: UInt8.self)
                    for i in 0..<pixels {
                        let base = i * channels + first
                        if colour {
                            let r = UInt32(src[base + (bgr ? 2 : 0)]), g = UInt32(src[base + 1]), b = UInt32(src[base + (bgr ? 0 : 2)])
                            dst[i] = UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
                        } else {
                            dst[i] = src[base]
                        }
                    }
                }
            }
        }
        return out
    }
}
