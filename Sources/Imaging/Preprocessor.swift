/// The seeds' preprocessing chain on a gray image: resize the shorter side to `resize`
/// (keeping the aspect ratio, as torchvision's `Resize(int)`), take the centre `crop` square
/// (as `CenterCrop`), scale to [0, 1] and normalise each output channel:
/// out[c] = (x / 255 - mean[c]) / std[c], the gray value replicated across `channels`.
public struct Preprocessor: Sendable {
    public var resize: Int
    public var crop: Int
    public var mean: [Float]
    public var std: [Float]
    public var channels: Int { mean.count }

    public init(resize: Int, crop: Int, mean: [Float], std: [Float]) {
        precondition(crop <= resize && crop > 0, "crop must be in 1...resize")
        precondition(mean.count == std.count && !mean.isEmpty, "one mean and std per channel")
        self.resize = resize
        self.crop = crop
        self.mean = mean
        self.std = std
    }

    /// The size after resizing the shorter side to `resize` (torchvision truncates the longer).
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        if width <= height {
            return (resize, max(resize, Int(Double(resize) * Double(height) / Double(width))))
        }
        return (max(resize, Int(Double(resize) * Double(width) / Double(height))), resize)
    }

    /// The top-left corner of the centre crop (torchvision: round half to even).
    func cropOrigin(width: Int, height: Int) -> (x: Int, y: Int) {
        (Int((Double(width - crop) / 2).rounded(.toNearestOrEven)),
         Int((Double(height - crop) / 2).rounded(.toNearestOrEven)))
    }

    /// The most one side of an input image may be a multiple of the other.
    public static let maxAspectRatio = 10

    /// The model input for `image`: shape (C, crop, crop), row-major. Throws
    /// `ImagingError.badAspectRatio` for an image no radiograph looks like (a 1 x 60,000 strip
    /// would be resized to 256 x 15 million).
    public func tensor(from image: GrayImage) throws -> [Float] {
        try ImagingError.checkAspectRatio(width: image.width, height: image.height, limit: Self.maxAspectRatio)
        let size = resizedSize(width: image.width, height: image.height)
        let origin = cropOrigin(width: size.width, height: size.height)
        let plane = Resampler.resize(image, width: size.width, height: size.height,
                                     window: (origin.x, origin.y, crop, crop))
        let n = crop * crop
        var out = [Float](repeating: 0, count: channels * n)
        out.withUnsafeMutableBufferPointer { dst in
            plane.withUnsafeBufferPointer { src in
                for c in 0..<channels {
                    let scale = 1 / (255 * std[c]), shift = mean[c] / std[c]
                    for i in 0..<n { dst[c * n + i] = src[i] * scale - shift }
                }
            }
        }
        return out
    }
}
