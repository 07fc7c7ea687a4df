import ArgumentParser
import Engine
import KafkaIO
import ModelVersions
import Stages

struct ScorerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scorer",
        abstract: "Score xray.tensors with the serving model on xray.models; write xray.predictions and xray.alerts.",
        discussion: """
            Batches adaptively: up to --batch records, or those that arrived within --batch-wait-ms \
            of the first. Follows xray.models through its heads (xray.models.heads): the serving \
            version (the newest published or promoted one, or the one an operator rolled back \
            to; trained versions serve only once the evaluator's gate or `xray model promote` \
            promotes them) is read alone, loaded in the background and serves from the next \
            batch; a corrupt, incomplete or removed version is refused and the current one \
            keeps serving. Waits for a first model before reading any tensor.
            """)

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var stage: StageOptions
    @Option(help: "Most images scored together.") var batch: Int = 16
    @Option(help: "Longest wait, in milliseconds, for a batch to fill after its first image.") var batchWaitMs: Int = 20
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard batchWaitMs >= 0 else { throw ValidationError("--batch-wait-ms must not be negative") }
    }

    func run() async throws {
        engine.apply()
        let slot = ModelSlot()
        let scorer = ScorerStage(topics: kafka.topics, slot: slot,
                                 batching: Batching(maxRecords: batch, maxWait: .milliseconds(batchWaitMs)),
                                 logger: kafka.logger("xray.scorer"))
        let clientKafka = try kafka.kafka(clientID: "xray-scorer-models")
        var models = stage.consumer(clientKafka, stage: scorer, prefix: kafka.topicPrefix)
        models.groupID += "-models"
        let follower = ModelFollower.serving(into: slot, topic: kafka.topics.models, consumer: models, logger: kafka.logger("xray.scorer.models"))
        try await stage.run(scorer, kafka: kafka, companions: [follower], beforeConsuming: { try await follower.ready() })
    }
}
