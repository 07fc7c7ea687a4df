public import KafkaIO
public import Wire
import Imaging

/// xray.decoded → xray.tensors: resize, centre crop and normalise as a `PreprocessSpec` says.
public struct PreprocessorStage: Stage {
    public let name = "preprocessor"
    public let inputTopic: String
    let outputTopic: String
    public let spec: PreprocessSpec
    let preprocessor: Preprocessor

    /// Throws if the spec is invalid (the operator's configuration, not an input fault).
    public init(topics: TopicCatalog, spec: PreprocessSpec = .imagenet224) throws {
        if let problem = spec.problem { throw BadInput("invalid preprocessing: \(problem)") }
        inputTopic = topics.decoded
        outputTopic = topics.tensors
        self.spec = spec
        preprocessor = Preprocessor(resize: spec.resize, crop: spec.crop, mean: spec.mean, std: spec.std)
    }

    public func process(_ record: KafkaRecord) throws -> [OutgoingRecord] {
        let id = try record.imageID()
        let decoded = try DecodedImage(decoding: record.value)
        let image = GrayImage(width: decoded.width, height: decoded.height, pixels: decoded.pixels)
        let tensor = Tensor(shape: spec.outputShape, values: preprocessor.tensor(from: image))
        return [record.passedOn(to: outputTopic, imageID: id, value: tensor.encoded(), contentType: ContentType.tensor,
                                schema: Tensor.schemaVersion, timestampHeader: HeaderName.preprocessedAt)]
    }
}
