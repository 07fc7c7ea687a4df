internal import CPNG

/// Encodes 8-bit RGB images as PNG with libpng's simplified write API (for reports such as ROC
/// plots).
public enum PNGEncoder {
    /// `pixels`: width·height·3 bytes, row-major RGB.
    public static func encodeRGB(width: Int, height: Int, pixels: [UInt8]) throws -> [UInt8] {
        precondition(pixels.count == width * height * 3, "RGB needs width·height·3 bytes")
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        image.width = png_uint_32(width)
        image.height = png_uint_32(height)
        image.format = png_uint_32(PNG_FORMAT_RGB)
        defer { png_image_free(&image) }
        // First call sizes the output, second writes it.
        var size = 0
        guard pixels.withUnsafeBytes({ png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, 0, nil) }) != 0 else {
            throw ImagingError.corrupt(format: "PNG", reason: "libpng could not size the image: \(message(image))")
        }
        var out = [UInt8](repeating: 0, count: size)
        let written = out.withUnsafeMutableBytes { dst in
            pixels.withUnsafeBytes { png_image_write_to_memory(&image, dst.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
        }
        guard written != 0 else { throw ImagingError.corrupt(format: "PNG", reason: "libpng could not write: \(message(image))") }
        return Array(out.prefix(size))
    }

    private static func message(_ image: png_image) -> String {
        withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
