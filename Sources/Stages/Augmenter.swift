import Engine

/// The seeds' training augmentation on a preprocessed tensor (C, H, W): a horizontal flip with
/// probability one half, and a brightness factor b drawn from [1 − δ, 1 + δ] applied to the
/// pixel values before normalisation, i.e. x' = b·x + (b − 1)·mean/std per channel.
public struct Augmenter: Sendable {
    public var brightness: Float
    private var generator: SeededGenerator

    public init(brightness: Float = 0.2, seed: UInt64) {
        self.brightness = brightness
        generator = SeededGenerator(seed: seed)
    }

    public mutating func augment(_ x: inout [Float], shape: [Int], mean: [Float], std: [Float]) {
        let c = shape[0], h = shape[1], w = shape[2]
        precondition(x.count == c * h * w && mean.count == c && std.count == c)
        if generator.uniform() < 0.5 {
            for ch in 0..<c { for row in 0..<h {
                let start = (ch * h + row) * w
                x[start..<(start + w)].reverse()
            } }
        }
        let b = 1 + (generator.uniform() * 2 - 1) * brightness
        for ch in 0..<c {
            let shift = (b - 1) * mean[ch] / std[ch]
            for i in (ch * h * w)..<((ch + 1) * h * w) { x[i] = b * x[i] + shift }
        }
    }
}
