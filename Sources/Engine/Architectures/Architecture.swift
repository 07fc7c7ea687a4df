/// The network families the engine builds. Parameter names follow torchvision's state dicts
/// (`resnet18`, `resnet50`, `densenet121`), head aside, so PyTorch weights load directly.
public enum Architecture: String, CaseIterable, Codable, Sendable {
    /// Four conv-bn-relu-maxpool blocks (32, 64, 128, 256 channels), global average pooling and
    /// a dense head: for tests, demos and quick experiments.
    case smallCNN = "small-cnn"
    case resnet18
    case resnet50
    case densenet121

    /// The shortest input side the architecture takes: every stride and pool still leaves
    /// at least one pixel.
    public var minimumInputSide: Int {
        switch self {
        case .smallCNN: 16
        case .resnet18, .resnet50, .densenet121: 32
        }
    }

    /// Nil when the network can take inputs of `height` x `width`; otherwise why not.
    public func inputProblem(height: Int, width: Int) -> String? {
        let range = minimumInputSide...Network.maxInputSide
        guard range.contains(height), range.contains(width) else {
            return "\(rawValue) takes inputs from \(range.lowerBound) to \(range.upperBound) pixels a side, not \(height)x\(width)"
        }
        return nil
    }

    /// The name of the final dense layer in the state dict.
    public var headName: String {
        switch self {
        case .smallCNN, .densenet121: "classifier"
        case .resnet18, .resnet50: "fc"
        }
    }
}

/// Which parameters train when fine-tuning.
public enum TrainableScope: Equatable, Sendable {
    /// Only the final dense layer (transfer learning on frozen features).
    case head
    /// The last `count` stages before the head, and the head (ResNet's `layer4` is one stage).
    case lastStages(Int)
    /// Everything.
    case all
}

/// The stages of a built architecture, in order; the last one is the head (pooling + dense).
struct ArchitectureLayout {
    var stages: [Layer]
    var head: Dense
    /// Between the pooled features and the head; the identity until configured.
    var headDropout: Dropout
}

extension Architecture {
    /// Declares the parameters in `store` and returns the stages.
    func build(labels: Int, inputChannels: Int, store: ParameterStore) -> ArchitectureLayout {
        switch self {
        case .smallCNN: SmallCNNBuilder(store: store).build(labels: labels, inputChannels: inputChannels)
        case .resnet18: ResNetBuilder(store: store).build(blocks: [2, 2, 2, 2], bottleneck: false,
                                                          labels: labels, inputChannels: inputChannels)
        case .resnet50: ResNetBuilder(store: store).build(blocks: [3, 4, 6, 3], bottleneck: true,
                                                          labels: labels, inputChannels: inputChannels)
        case .densenet121: DenseNetBuilder(store: store).build(blocks: [6, 12, 24, 16], growth: 32,
                                                               labels: labels, inputChannels: inputChannels)
        }
    }
}

extension TrainableScope: LosslessStringConvertible {
    /// `all`, `head` or `last:K`.
    public init?(_ text: String) {
        switch text {
        case "all": self = .all
        case "head": self = .head
        default:
            guard text.hasPrefix("last:"), let k = Int(text.dropFirst(5)), k > 0 else { return nil }
            self = .lastStages(k)
        }
    }

    public var description: String {
        switch self {
        case .all: "all"
        case .head: "head"
        case .lastStages(let k): "last:\(k)"
        }
    }
}
