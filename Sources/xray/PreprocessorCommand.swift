import ArgumentParser
import ModelVersions
import Stages
import Wire

struct PreprocessorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocessor",
        abstract: "Resize, centre-crop and normalise xray.decoded images into xray.tensors.",
        discussion: """
            The preprocessing options apply until a model version is in force on xray.models \
            (the preprocessor reads the serving version's head before its first image); from then on the preprocessor follows the preprocessing in the serving version's \
            manifest, so tensors fit the model the scorers serve. --no-follow-models keeps the \
            options for good.
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

    @Flag(inversion: .prefixedNo, help: "Take the preprocessing from the model version in force on xray.models.")
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
        try await stage.run(preprocessor, kafka: kafka, companions: [follower], beforeConsuming: { try await follower.startedUp() })
    }
}
