import ArgumentParser

@main
struct XRay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xray",
        abstract: "XRayStream: streaming chest X-ray triage and continuous learning over Kafka.",
        discussion: """
            Every stage is its own process; run any number of each, and they share the work \
            through a Kafka consumer group named after the stage. The broker list comes from \
            --brokers or XRAY_BROKERS (default 127.0.0.1:9092); any librdkafka property can be \
            set with -X key=value.
            """,
        subcommands: [GatewayCommand.self, DecoderCommand.self, PreprocessorCommand.self, ScorerCommand.self, TrainerCommand.self, AggregatorCommand.self, EvaluatorCommand.self, PublishCommand.self, AlertsCommand.self, TailCommand.self, ConsoleCommand.self,
                      TopicsCommand.self, ModelCommand.self, PredictCommand.self, EvaluateCommand.self, TrainCommand.self, BenchCommand.self, VersionCommand.self])
}
