/// Limits that protect a stage from hostile or broken input.
public struct DecodeLimits: Sendable, Equatable {
    /// The largest encoded image accepted, in bytes.
    public var maxEncodedBytes: Int
    /// The largest width*height accepted before decoding (decompression-bomb guard).
    public var maxPixels: Int
    /// Decoded images whose longer side exceeds this are downscaled to it (the working resolution).
    public var maxSide: Int
    /// The most one side may be a multiple of the other (chest X-rays are near 1:1.3).
    public var maxAspectRatio: Int

    public init(maxEncodedBytes: Int = 32 << 20, maxPixels: Int = 50_000_000, maxSide: Int = 1024,
                maxAspectRatio: Int = Preprocessor.maxAspectRatio) {
        self.maxEncodedBytes = maxEncodedBytes
        self.maxPixels = maxPixels
        self.maxSide = maxSide
        self.maxAspectRatio = maxAspectRatio
    }
}

/// How PNG files are read: `.fast` (the default) inflates and unfilters the common kinds itself
/// (libdeflate) and hands every other file to libpng; `.libpng` reads every file with libpng.
/// Both give the same pixels; `.libpng` is there to compare against (`xray bench decode --png`).
public enum PNGReader: String, Sendable, CaseIterable {
    case fast, libpng
}

/// Turns an encoded chest X-ray (PNG or JPEG) into an 8-bit gray image at a bounded working
/// resolution. Thread-safe; holds no state but its limits.
public struct ImageDecoder: Sendable {
    public var limits: DecodeLimits
    public var pngReader: PNGReader

    public init(limits: DecodeLimits = DecodeLimits(), pngReader: PNGReader = .fast) {
        self.limits = limits
        self.pngReader = pngReader
    }

    /// Decodes `bytes`, detecting the format from its signature. Throws `ImagingError` for
    /// empty, unknown, oversized, corrupt or truncated input, and for proportions no
    /// radiograph has.
    public func decode(_ bytes: [UInt8]) throws -> (image: GrayImage, source: SourceImageInfo) {
        guard !bytes.isEmpty else { throw ImagingError.empty }
        guard bytes.count <= limits.maxEncodedBytes else {
            throw ImagingError.encodedTooLarge(bytes: bytes.count, limit: limits.maxEncodedBytes)
        }
        let decoded: (GrayImage, SourceImageInfo)
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            decoded = try PNGDecoder.decode(bytes, maxPixels: limits.maxPixels, reader: pngReader)
        } else if bytes.starts(with: [0xFF, 0xD8]) {
            decoded = try JPEGDecoder.decode(bytes, maxPixels: limits.maxPixels)
        } else {
            throw ImagingError.unknownFormat(firstBytes: Array(bytes.prefix(8)))
        }
        try ImagingError.checkAspectRatio(width: decoded.0.width, height: decoded.0.height, limit: limits.maxAspectRatio)
        return (fitWithin(decoded.0, maxSide: limits.maxSide), decoded.1)
    }

    /// Throws `badAspectRatio` for proportions no radiograph has (for decoders of other formats).
    public func checkProportions(_ image: GrayImage) throws {
        try ImagingError.checkAspectRatio(width: image.width, height: image.height, limit: limits.maxAspectRatio)
    }

    /// Downscales so that the longer side is at most `maxSide`, keeping the aspect ratio.
    public func fitWithin(_ image: GrayImage, maxSide: Int) -> GrayImage {
        let longer = max(image.width, image.height)
        guard longer > maxSide else { return image }
        let w = max(1, Int((Double(image.width) * Double(maxSide) / Double(longer)).rounded()))
        let h = max(1, Int((Double(image.height) * Double(maxSide) / Double(longer)).rounded()))
        let resized = Resampler.resize(image, width: w, height: h)
        return GrayImage(width: w, height: h, pixels: resized.map { UInt8(max(0, min(255, $0.rounded()))) })
    }
}
