/// How a decoded image becomes a model input: the seeds' chain (resize the shorter side,
/// centre crop, scale to [0, 1], per-channel normalise). A model's manifest carries one.
public struct PreprocessSpec: Codable, Sendable, Equatable {
    /// The shorter side is resized to this many pixels, keeping the aspect ratio.
    public var resize: Int
    /// Then the centre `crop` x `crop` square is taken.
    public var crop: Int
    /// Output channels; the gray image is replicated (3 for ImageNet-pretrained models).
    public var channels: Int
    /// Per-channel mean and standard deviation on the [0, 1] scale: out = (x/255 - mean) / std.
    public var mean: [Float]
    public var std: [Float]

    public init(resize: Int, crop: Int, channels: Int, mean: [Float], std: [Float]) {
        self.resize = resize
        self.crop = crop
        self.channels = channels
        self.mean = mean
        self.std = std
    }

    /// The seeds' chain: 256, centre crop 224, ImageNet statistics, 3 channels.
    public static let imagenet224 = PreprocessSpec(resize: 256, crop: 224, channels: 3,
                                                   mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    /// The output shape (C, H, W).
    public var outputShape: [Int] { [channels, crop, crop] }

    /// The largest `resize` (and so `crop`) a spec may ask for.
    public static let maxSide = 2048
    /// The most output channels.
    public static let maxChannels = 4

    /// Nil when valid; otherwise what is wrong. Sizes are bounded (a crop of 10^6 would ask
    /// for terabytes), the statistics finite and the standard deviations not vanishingly small,
    /// so every output value is a finite number.
    public var problem: String? {
        if resize < 1 || crop < 1 { return "resize and crop must be positive" }
        if resize > Self.maxSide { return "resize \(resize) is above \(Self.maxSide)" }
        if crop > resize { return "crop \(crop) is larger than resize \(resize)" }
        if channels < 1 || channels > Self.maxChannels || mean.count != channels || std.count != channels {
            return "mean and std need one value per channel (\(channels), at most \(Self.maxChannels))"
        }
        if mean.contains(where: { !($0.magnitude <= 1000) }) { return "mean values must be finite numbers within ±1000" }
        if std.contains(where: { !($0 >= 1e-4 && $0 <= 1000) }) { return "std values must be in [0.0001, 1000]" }
        return nil
    }
}
