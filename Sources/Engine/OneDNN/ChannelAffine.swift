/// A batch norm (and ReLU) on NHWC activations, for the layers where it comes before a
/// convolution and cannot be folded into its weights (DenseNet's pre-activations): y =
/// relu?(x·scale + shift) per channel, with the batch norm's current statistics at each run.
///
/// source: `pixels` pixels of `channels` values, `sourceStride` floats apart (the first
/// channels of a wider buffer, as a dense block's layers read it) → destination: the same
/// pixels packed (pixel stride `channels`).
struct ChannelAffine {
    let batchNorm: BatchNorm2D
    let relu: Bool
    let pixels: Int, channels: Int, sourceStride: Int

    func run(source: UnsafePointer<Float>, destination: UnsafeMutablePointer<Float>) {
        let (scale, shift) = batchNorm.inferenceAffine()
        let c = channels, stride = sourceStride, relu = relu
        scale.withUnsafeBufferPointer { scale in
            shift.withUnsafeBufferPointer { shift in
                guard let a = scale.baseAddress, let b = shift.baseAddress else { return }
                // Rows of 64 pixels per work item: enough to repay the hand-off, many enough to share.
                let rows = (pixels + 63) / 64
                Parallel.forEach(rows, costPerItem: 64 * c) { row in
                    for pixel in (row * 64)..<min(pixels, row * 64 + 64) {
                        let x = source + pixel * stride, y = destination + pixel * c
                        if relu { for j in 0..<c { y[j] = max(x[j] * a[j] + b[j], 0) } }
                        else { for j in 0..<c { y[j] = x[j] * a[j] + b[j] } }
                    }
                }
            }
        }
    }
}
