import ArgumentParser
import Stages
import Wire

struct PreprocessorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocessor",
        abstract: "Resize, centre-crop and normalise xray.decoded images into xray.tensors.")

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

    func run() async throws {
        let means = mean.split(separator: ",").compactMap { Float($0) }
        let stds = std.split(separator: ",").compactMap { Float($0) }
        let spec = PreprocessSpec(resize: resize, crop: crop, channels: means.count, mean: means, std: stds)
        if let problem = spec.problem { throw ValidationError(problem) }
        try await stage.run(try PreprocessorStage(topics: kafka.topics, spec: spec), kafka: kafka)
    }
}
