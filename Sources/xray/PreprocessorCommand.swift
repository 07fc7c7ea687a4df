import ArgumentParser
import ModelVersions
import Stages
import Wire

struct PreprocessorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocessor",
        abstract: "Resize, centre-crop and normalise xray.decoded images into xray.tensors.",
        discussion: """
            Follows the preprocessing in the manifest of the serving model version on \
            xray.models, so tensors fit the model the scorers serve: like the scorer, it waits \
            for a first version in force before reading any image (a tensor made before the \
            model's preprocessing is known could fit no scorer). The options apply only with \
            --no-follow-models.
            """)

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var stage: StageOptions

    @Option(help: "Resize the shorter side to this many pixels.")
    var resize: Int = PreprocessSpec.imagenet224.resize
    @Option(help: "Centre crop size.")
    var crop: Int = PreprocessSpec.imagenet224.crop
    @Option(help: "Per-channel means on the [0,1] scale, comma-separated (the channel count follows).")
    var mean: String = PreprocessSpec.imagenet224.mean.map { "\($0)" }.joined(separator: ",")
    @Option(help: "Per-channel standard deviations, comma-separated.")
    var std: String = PreprocessSpec.imagenet224.std.map { "\($0)" }.joined(separator: ",")

    @Flag(inversion: .prefixedNo, help: "Take the preprocessing from the model version in force on xray.models (waiting for one); without, the options above.")
    var followModels = true

    func run() async throws {
        let means = mean.split(separator: ",").compactMap { Float($0) }
        let stds = std.split(separator: ",").compactMap { Float($0) }
        let spec = PreprocessSpec(resize: resize, crop: crop, channels: means.count, mean: means, std: stds)
        if let problem = spec.problem { throw ValidationError(problem) }
        let preprocessor = try PreprocessorStage(topics: kafka.topics, spec: spec)
        guard followModels else { return try await stage.run(preprocessor, kafka: kafka) }
        var models = stage.consumer(try kafka.kafka(clientID: "xray-preprocessor-models"), stage: preprocessor, prefix: kafka.topicPrefix)
        models.groupID += "-models"
        let follower = ModelFollower.manifests(topic: kafka.topics.models, consumer: models,
                                               logger: kafka.logger("xray.preprocessor.models")) { manifest in
            try preprocessor.use(manifest)
        }
        try await stage.run(preprocessor, kafka: kafka, companions: [follower], beforeConsuming: { try await follower.ready() })
    }
}
