public import KafkaIO
import Synchronization
public import Wire
import Imaging

/// xray.decoded → xray.tensors: resize, centre crop and normalise as a `PreprocessSpec` says.
/// The spec starts as given and follows the model version in force when the preprocessor
/// follows xray.models (`use(_:)`), so tensors always fit the model the scorers serve.
public struct PreprocessorStage: Stage {
    public let name = "preprocessor"
    public let inputTopic: String
    let outputTopic: String
    private let state: PreprocessState

    /// Throws if the spec is invalid (the operator's configuration, not an input fault).
    public init(topics: TopicCatalog, spec: PreprocessSpec = .imagenet224) throws {
        inputTopic = topics.decoded
        outputTopic = topics.tensors
        state = try PreprocessState(spec)
    }

    /// The spec in force.
    public var spec: PreprocessSpec { state.current.spec }

    /// Switches to a model version's preprocessing; throws (keeping the old one) if invalid.
    public func use(_ manifest: ModelManifest) throws {
        try state.replace(manifest.preprocess)
    }

    public func process(_ record: KafkaRecord) throws -> [OutgoingRecord] {
        let id = try record.imageID()
        let decoded = try DecodedImage(decoding: record.value)
        let image = GrayImage(width: decoded.width, height: decoded.height, pixels: decoded.pixels)
        let (spec, preprocessor) = state.current
        let tensor = Tensor(shape: spec.outputShape, values: try preprocessor.tensor(from: image))
        return [record.passedOn(to: outputTopic, imageID: id, value: tensor.encoded(), contentType: ContentType.tensor,
                                schema: Tensor.schemaVersion, timestampHeader: HeaderName.preprocessedAt)]
    }
}

/// The spec in force and its preprocessor, swapped atomically.
private final class PreprocessState: Sendable {
    private let state: Mutex<(spec: PreprocessSpec, preprocessor: Preprocessor)>

    init(_ spec: PreprocessSpec) throws {
        state = Mutex((spec, try Self.preprocessor(spec)))
    }

    var current: (spec: PreprocessSpec, preprocessor: Preprocessor) { state.withLock { $0 } }

    func replace(_ spec: PreprocessSpec) throws {
        let preprocessor = try Self.preprocessor(spec)
        state.withLock { $0 = (spec, preprocessor) }
    }

    static func preprocessor(_ spec: PreprocessSpec) throws -> Preprocessor {
        if let problem = spec.problem { throw BadInput("invalid preprocessing: \(problem)") }
        return Preprocessor(resize: spec.resize, crop: spec.crop, mean: spec.mean, std: spec.std)
    }
}
