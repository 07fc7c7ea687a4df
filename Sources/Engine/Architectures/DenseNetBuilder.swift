/// torchvision's DenseNet-BC: `features.conv0` 7x7/2, `norm0`, ReLU, max pool 3x3/2; dense
/// blocks `denseblock1`…`4` of layers norm1-relu-conv1 (1x1 to 4·growth) and norm2-relu-conv2
/// (3x3 to growth), with `transition1`…`3` (norm, ReLU, 1x1 conv halving the channels, 2x2
/// average pool) between them; `norm5`, ReLU, global average pooling, `classifier`.
struct DenseNetBuilder {
    let store: ParameterStore

    func build(blocks: [Int], growth: Int, labels: Int, inputChannels: Int) -> ArchitectureLayout {
        let initial = 2 * growth, bottleneckWidth = 4 * growth
        var stages: [Layer] = [Sequential([
            Conv2D("features.conv0", store, inChannels: inputChannels, outChannels: initial, kernelSize: 7, stride: 2, padding: 3),
            BatchNorm2D("features.norm0", store, channels: initial, relu: true),
            MaxPool2D(kernelSize: 3, stride: 2, padding: 1),
        ])]
        var channels = initial
        for (blockIndex, count) in blocks.enumerated() {
            let blockName = "features.denseblock\(blockIndex + 1)"
            let layers = (0..<count).map { layerIndex in
                let name = "\(blockName).denselayer\(layerIndex + 1)"
                let inChannels = channels + layerIndex * growth
                return Sequential([
                    BatchNorm2D(name + ".norm1", store, channels: inChannels, relu: true),
                    Conv2D(name + ".conv1", store, inChannels: inChannels, outChannels: bottleneckWidth, kernelSize: 1),
                    BatchNorm2D(name + ".norm2", store, channels: bottleneckWidth, relu: true),
                    Conv2D(name + ".conv2", store, inChannels: bottleneckWidth, outChannels: growth, kernelSize: 3, padding: 1),
                ])
            }
            let block = DenseBlock(layers: layers, inputChannels: channels, growth: growth)
            channels += count * growth
            if blockIndex < blocks.count - 1 {
                let name = "features.transition\(blockIndex + 1)"
                stages.append(Sequential([
                    block,
                    BatchNorm2D(name + ".norm", store, channels: channels, relu: true),
                    Conv2D(name + ".conv", store, inChannels: channels, outChannels: channels / 2, kernelSize: 1),
                    AvgPool2D(kernelSize: 2, stride: 2),
                ]))
                channels /= 2
            } else {
                stages.append(Sequential([block, BatchNorm2D("features.norm5", store, channels: channels, relu: true)]))
            }
        }
        let head = Dense("classifier", store, inFeatures: channels, outFeatures: labels)
        let dropout = Dropout(probability: 0, seed: 0)
        stages.append(Sequential([GlobalAvgPool(), dropout, head]))
        return ArchitectureLayout(stages: stages, head: head, headDropout: dropout)
    }
}
