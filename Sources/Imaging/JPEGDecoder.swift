internal import CTurboJPEG

/// Decodes baseline and progressive JPEG with libjpeg-turbo's TurboJPEG API straight to 8-bit
/// gray (the luma channel of YCbCr files). Warnings such as "premature end of JPEG file" are
/// treated as errors: a truncated image is refused, not half-decoded.
enum JPEGDecoder {
    static func decode(_ bytes: [UInt8], maxPixels: Int) throws -> (GrayImage, SourceImageInfo) {
        guard let handle = tjInitDecompress() else {
            throw ImagingError.corrupt(format: "JPEG", reason: "could not create a TurboJPEG decompressor")
        }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let headerStatus = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colorspace)
        }
        guard headerStatus == 0 else { throw ImagingError.corrupt(format: "JPEG", reason: errorText(handle)) }
        let w = Int(width), h = Int(height)
        guard w > 0, h > 0 else {
            throw ImagingError.corrupt(format: "JPEG", reason: "the header gives no image size (truncated?)")
        }
        guard w * h <= maxPixels else {
            throw ImagingError.tooManyPixels(width: w, height: h, limit: maxPixels)
        }
        var pixels = [UInt8](repeating: 0, count: w * h)
        let status = bytes.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(src.count), dst.baseAddress, width, 0, height,
                              Int32(TJPF_GRAY.rawValue), TJFLAG_STOPONWARNING)
            }
        }
        guard status == 0 else { throw ImagingError.corrupt(format: "JPEG", reason: errorText(handle)) }
        let channels = colorspace == Int32(TJCS_GRAY.rawValue) ? 1 : (colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue) ? 4 : 3)
        let info = SourceImageInfo(format: .jpeg, width: w, height: h, bitDepth: 8, channels: channels)
        return (GrayImage(width: w, height: h, pixels: pixels), info)
    }

    private static func errorText(_ handle: tjhandle) -> String {
        guard let text = tjGetErrorStr2(handle) else { return "unknown TurboJPEG error" }
        return String(cString: text)
    }
}
