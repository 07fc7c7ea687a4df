/// features.{0…3}: conv 3x3 (no bias) → batch norm → ReLU → max pool 2x2, with 32, 64, 128
/// and 256 channels; then global average pooling and `classifier` (256 → labels).
struct SmallCNNBuilder {
    let store: ParameterStore
    static let widths = [32, 64, 128, 256]

    func build(labels: Int, inputChannels: Int) -> ArchitectureLayout {
        var stages: [Layer] = []
        var channels = inputChannels
        for (index, width) in Self.widths.enumerated() {
            let name = "features.\(index)"
            stages.append(Sequential([
                Conv2D(name + ".conv", store, inChannels: channels, outChannels: width, kernelSize: 3, padding: 1),
                BatchNorm2D(name + ".bn", store, channels: width, relu: true),
                MaxPool2D(kernelSize: 2, stride: 2),
            ]))
            channels = width
        }
        let head = Dense("classifier", store, inFeatures: channels, outFeatures: labels)
        let dropout = Dropout(probability: 0, seed: 0)
        stages.append(Sequential([GlobalAvgPool(), dropout, head]))
        return ArchitectureLayout(stages: stages, head: head, headDropout: dropout)
    }
}
