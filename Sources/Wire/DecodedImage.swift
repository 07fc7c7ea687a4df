/// An 8-bit grayscale image: the value of `xray.decoded` (see Topics/xray.decoded.md).
///
/// Layout (little-endian), schema version 1:
/// ```
/// 0   4  magic "XRDI"
/// 4   2  schema version (1)
/// 6   1  pixel format (1 = 8-bit gray)
/// 7   1  reserved (0)
/// 8   4  width              12  4  height
/// 16  4  original width     20  4  original height
/// 24  1  original bit depth 25  1  original channels
/// 26  2  reserved (0)
/// 28  width*height bytes, row-major, top row first
/// ```
public struct DecodedImage: Sendable, Equatable {
    public static let schemaVersion: UInt16 = 1
    public static let headerSize = 28
    /// The longest side a decoded-image record may have (its width·height bytes must also fit
    /// the topic's record limit).
    public static let maxSide = 16_384

    public var width: Int
    public var height: Int
    /// Pixels, row-major (H, W).
    public var pixels: [UInt8]
    /// The source image before any downscaling: its size, bits per sample and channels.
    public var originalWidth: Int
    public var originalHeight: Int
    public var originalBitDepth: Int
    public var originalChannels: Int

    public init(width: Int, height: Int, pixels: [UInt8], originalWidth: Int? = nil, originalHeight: Int? = nil,
                originalBitDepth: Int = 8, originalChannels: Int = 1) {
        precondition(pixels.count == width * height, "pixels must be width*height")
        self.width = width
        self.height = height
        self.pixels = pixels
        self.originalWidth = originalWidth ?? width
        self.originalHeight = originalHeight ?? height
        self.originalBitDepth = originalBitDepth
        self.originalChannels = originalChannels
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.headerSize + pixels.count)
        w.append("XRDI")
        w.append(Self.schemaVersion)
        w.append(UInt8(1))
        w.append(UInt8(0))
        w.append(UInt32(width)); w.append(UInt32(height))
        w.append(UInt32(originalWidth)); w.append(UInt32(originalHeight))
        w.append(UInt8(originalBitDepth)); w.append(UInt8(originalChannels))
        w.append(UInt16(0))
        w.bytes.append(contentsOf: pixels)
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes, what: "decoded image")
        try r.expectMagic("XRDI")
        let version = try r.read(UInt16.self)
        guard version == Self.schemaVersion else { throw WireError.unsupportedVersion("decoded image", version) }
        let format = try r.read(UInt8.self)
        guard format == 1 else { throw WireError.invalid("decoded image", "pixel format \(format) is not 8-bit gray (1)") }
        _ = try r.read(UInt8.self)
        let width = Int(try r.read(UInt32.self)), height = Int(try r.read(UInt32.self))
        let ow = Int(try r.read(UInt32.self)), oh = Int(try r.read(UInt32.self))
        let depth = Int(try r.read(UInt8.self)), channels = Int(try r.read(UInt8.self))
        _ = try r.read(UInt16.self)
        guard width > 0, height > 0 else { throw WireError.invalid("decoded image", "size \(width)x\(height)") }
        guard width <= Self.maxSide, height <= Self.maxSide else {
            throw WireError.tooLarge("decoded image", "\(width)x\(height) has a side over \(Self.maxSide) pixels")
        }
        guard r.remaining == width * height else {
            throw WireError.invalid("decoded image", "\(r.remaining) pixel bytes for \(width)x\(height)")
        }
        self.init(width: width, height: height, pixels: Array(bytes[Self.headerSize...]),
                  originalWidth: ow, originalHeight: oh, originalBitDepth: depth, originalChannels: channels)
    }
}
