/// torchvision's ResNet (v1.5: a bottleneck strides in its 3x3 convolution): stem `conv1`
/// 7x7/2, `bn1`, ReLU, max pool 3x3/2; stages `layer1`…`layer4` of basic or bottleneck blocks
/// at 64, 128, 256, 512 widths; global average pooling; `fc`.
struct ResNetBuilder {
    let store: ParameterStore

    func build(blocks: [Int], bottleneck: Bool, labels: Int, inputChannels: Int) -> ArchitectureLayout {
        var stages: [Layer] = [Sequential([
            Conv2D("conv1", store, inChannels: inputChannels, outChannels: 64, kernelSize: 7, stride: 2, padding: 3),
            BatchNorm2D("bn1", store, channels: 64, relu: true),
            MaxPool2D(kernelSize: 3, stride: 2, padding: 1),
        ])]
        let expansion = bottleneck ? 4 : 1
        var channels = 64
        for (stageIndex, count) in blocks.enumerated() {
            let width = 64 << stageIndex
            var stage: [Layer] = []
            for blockIndex in 0..<count {
                let name = "layer\(stageIndex + 1).\(blockIndex)"
                let stride = blockIndex == 0 && stageIndex > 0 ? 2 : 1
                let out = width * expansion
                let main = bottleneck
                    ? bottleneckPath(name, channels, width, out, stride)
                    : basicPath(name, channels, width, stride)
                let shortcut: [Layer]? = stride != 1 || channels != out ? [
                    Conv2D(name + ".downsample.0", store, inChannels: channels, outChannels: out, kernelSize: 1, stride: stride),
                    BatchNorm2D(name + ".downsample.1", store, channels: out),
                ] : nil
                stage.append(ResidualBlock(main: main, shortcut: shortcut))
                channels = out
            }
            stages.append(Sequential(stage))
        }
        let head = Dense("fc", store, inFeatures: channels, outFeatures: labels)
        let dropout = Dropout(probability: 0, seed: 0)
        stages.append(Sequential([GlobalAvgPool(), dropout, head]))
        return ArchitectureLayout(stages: stages, head: head, headDropout: dropout)
    }

    private func basicPath(_ name: String, _ channels: Int, _ width: Int, _ stride: Int) -> [Layer] {
        [
            Conv2D(name + ".conv1", store, inChannels: channels, outChannels: width, kernelSize: 3, stride: stride, padding: 1),
            BatchNorm2D(name + ".bn1", store, channels: width, relu: true),
            Conv2D(name + ".conv2", store, inChannels: width, outChannels: width, kernelSize: 3, padding: 1),
            BatchNorm2D(name + ".bn2", store, channels: width),
        ]
    }

    private func bottleneckPath(_ name: String, _ channels: Int, _ width: Int, _ out: Int, _ stride: Int) -> [Layer] {
        [
            Conv2D(name + ".conv1", store, inChannels: channels, outChannels: width, kernelSize: 1),
            BatchNorm2D(name + ".bn1", store, channels: width, relu: true),
            Conv2D(name + ".conv2", store, inChannels: width, outChannels: width, kernelSize: 3, stride: stride, padding: 1),
            BatchNorm2D(name + ".bn2", store, channels: width, relu: true),
            Conv2D(name + ".conv3", store, inChannels: width, outChannels: out, kernelSize: 1),
            BatchNorm2D(name + ".bn3", store, channels: out),
        ]
    }
}
