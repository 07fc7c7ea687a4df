/// An 8-bit grayscale image in memory.
public struct GrayImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// Row-major (H, W), top row first.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height, "pixels must be width*height")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// What the decoder found in the file besides the pixels.
public struct SourceImageInfo: Sendable, Equatable {
    public enum Format: String, Sendable { case png, jpeg, dicom }
    public var format: Format
    public var width: Int
    public var height: Int
    /// Bits per sample (8 or 16 for PNG; 8 for JPEG; bits stored for DICOM).
    public var bitDepth: Int
    /// Samples per pixel in the file (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).
    public var channels: Int

    public init(format: Format, width: Int, height: Int, bitDepth: Int, channels: Int) {
        self.format = format
        self.width = width
        self.height = height
        self.bitDepth = bitDepth
        self.channels = channels
    }
}

/// Why an image could not be decoded. Every case says what is wrong with the input; none is
/// retriable: the same bytes will fail the same way.
public enum ImagingError: Error, Equatable, CustomStringConvertible {
    case unknownFormat(firstBytes: [UInt8])
    case encodedTooLarge(bytes: Int, limit: Int)
    case tooManyPixels(width: Int, height: Int, limit: Int)
    case corrupt(format: String, reason: String)
    case empty
    /// Width and height too far from a radiograph's proportions (a 1 x 60,000 strip).
    case badAspectRatio(width: Int, height: Int, limit: Int)

    public var description: String {
        switch self {
        case .unknownFormat(let first):
            "unknown image format (first bytes \(first.prefix(8).map { String(format2hex: $0) }.joined(separator: " "))); expected PNG or JPEG"
        case .encodedTooLarge(let bytes, let limit):
            "encoded image of \(bytes) bytes exceeds the \(limit)-byte limit"
        case .tooManyPixels(let w, let h, let limit):
            "image of \(w)x\(h) pixels exceeds the \(limit)-pixel limit (decompression-bomb guard)"
        case .corrupt(let format, let reason):
            "corrupt or truncated \(format): \(reason)"
        case .empty:
            "empty image record"
        case .badAspectRatio(let w, let h, let limit):
            "image of \(w)x\(h) pixels is not a radiograph: one side is more than \(limit) times the other"
        }
    }

    /// A short, stable name for the kind of fault, for metrics and the `xray.dlq.reason` header.
    public var reasonCode: String {
        switch self {
        case .unknownFormat: "unknown-format"
        case .encodedTooLarge, .tooManyPixels: "too-large"
        case .corrupt: "corrupt-image"
        case .empty: "empty"
        case .badAspectRatio: "bad-aspect-ratio"
        }
    }

    /// Throws `badAspectRatio` unless each side is at most `limit` times the other.
    static func checkAspectRatio(width: Int, height: Int, limit: Int) throws {
        // Both sides are positive and below 2^32 here, so the products cannot overflow.
        guard width <= height * limit, height <= width * limit else {
            throw ImagingError.badAspectRatio(width: width, height: height, limit: limit)
        }
    }
}

extension String {
    init(format2hex byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
    }
}
