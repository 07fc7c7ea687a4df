import ArgumentParser
import Engine
import Foundation
import KafkaIO
import ModelVersions
import Stages

struct TrainerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trainer",
        abstract: "Compute gradients of labelled xray.tensors at the latest model version; write them to xray.gradients.",
        discussion: """
            Takes mini-batches of --batch labelled tensors (or those that arrived within \
            --batch-wait-ms of the first), passes over unlabelled images and the held-out patients \
            (--validation, the evaluator's split), augments each image (--augmentation, seeded by \
            --seed, the image id and the record's acquisition stamp, so a batch read again is \
            augmented the same way), mixes in --rehearse-share of old sites' images (--rehearse; \
            chosen by the batch's id), and \
            publishes the gradient of each batch in one slice per parameter shard (partition of \
            xray.gradients), with the version it was computed at. Follows xray.models: published \
            models and the aggregators' trained versions. Synchronous by default: after each \
            batch it waits, as long as it takes, for the version that batch makes, and commits \
            the batch only then, so a trainer stopped before that reads it again; a batch that a \
            trained version lists as applied is passed over. --async goes on at the version it \
            has (run the aggregator with --mode async).
            """)

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var stage: StageOptions
    @OptionGroup var engine: EngineOptions
    @Option(help: "Images per mini-batch.") var batch: Int = 16
    @Option(help: "Longest wait, in milliseconds, for a batch to fill after its first image.") var batchWaitMs: Int = 5_000
    @Flag(help: "Do not wait for a new version after each batch (asynchronous training).") var async = false
    @Option(help: "What trains: all, head, or last:K (must match the aggregator's --train).", transform: parseScope)
    var train: TrainableScope = .all
    @Option(help: "Share of patients held out for evaluation (must match the evaluator's).") var validation: Double = 0.15
    @Flag(help: "Train on the images as they are (the same as --augmentation none).") var noAugment = false
    @Option(help: "Augmentation: seeds (flip, brightness), radiograph (also crops, rotations, shifts, contrast, gamma) or none.",
            transform: parseAugmentation)
    var augmentation: AugmentationPolicy = .seeds
    @Option(help: "Augmentation seed (mixed with each image id).") var seed: UInt64 = 1
    @Option(help: "Dropout before the head (share of pooled features zeroed; masks seeded by the batch, so a replay computes the same gradient; 0 for none).")
    var dropout: Float = 0
    @Option(help: ArgumentHelp("Labelled images of the sites the model learnt before (folders or files; repeatable), mixed into every batch against forgetting them (rehearsal). Held-out patients are left out.", valueName: "path"))
    var rehearse: [String] = []
    @Option(help: "NIH label table (Data_Entry_2017*.csv) for NIH images given to --rehearse.") var rehearseLabels: String?
    @Option(help: "Share of each batch that rehearsal images make.") var rehearseShare: Double = 0.25
    @Option(help: "Rehearsal images kept in memory (chosen by --seed).") var rehearseLimit: Int = 512
    @Option(help: ArgumentHelp("A label's positive weight in the loss, LABEL=W (negatives/positives); repeatable.", valueName: "label=w"))
    var positiveWeight: [String] = []
    @Flag(help: "Class-balanced loss: each batch weights a label's positives by its negatives/positives in the batch (within 0.1–10), instead of --positive-weight.")
    var balanceClasses = false
    @Option(help: "This trainer's name in the barrier (default: host-pid).") var id: String?

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard (0..<1).contains(validation) else { throw ValidationError("--validation must be in [0, 1)") }
        guard rehearseShare > 0, rehearseShare < 1, rehearseLimit >= 1 else {
            throw ValidationError("--rehearse-share must be in (0, 1) and --rehearse-limit positive")
        }
        guard (0...Dropout.maxProbability).contains(dropout) else { throw ValidationError("--dropout must be in [0, \(Dropout.maxProbability)]") }
        _ = try weights()
        if balanceClasses && !positiveWeight.isEmpty { throw ValidationError("--balance-classes and --positive-weight: choose one") }
    }

    func weights() throws -> [String: Float] {
        var weights: [String: Float] = [:]
        for item in positiveWeight {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let w = Float(parts[1]), w > 0 else { throw ValidationError("--positive-weight \(item): expected LABEL=W, W > 0") }
            weights[String(parts[0])] = w
        }
        return weights
    }

    func run() async throws {
        engine.apply()
        let logger = kafka.logger("xray.trainer")
        let clientKafka = try kafka.kafka(clientID: "xray-trainer")
        let topics = kafka.topics
        let admin = try KafkaAdmin(configuration: clientKafka, logger: logger)
        let counts = try await retryingWhileBrokerAway("reading the partitions of \(topics.gradients)", logger: logger) {
            try await admin.partitionCounts(topics: [topics.gradients])
        }
        guard let shards = counts[topics.gradients] else {
            throw ValidationError("\(topics.gradients) does not exist; run xray topics apply")
        }
        var settings = TrainerSettings(trainerID: id ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)",
                                       gradientsTopic: topics.gradients, inputTopic: topics.tensors, shards: shards,
                                       batching: Batching(maxRecords: batch, maxWait: .milliseconds(batchWaitMs)))
        settings.scope = train
        settings.split = PatientSplit(validationFraction: validation)
        settings.augment = !noAugment
        settings.augmentation = augmentation
        settings.seed = seed
        settings.dropout = dropout
        settings.positiveWeights = try weights()
        settings.balanceClasses = balanceClasses
        settings.synchronous = !async
        if !rehearse.isEmpty {
            let table = try rehearseLabels.map { path -> NIHLabelTable in
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read the label table \(path)") }
                return try NIHLabelTable(csv: text)
            }
            let files = try DatasetScanner.scan(rehearse, nihLabels: table).filter { $0.metadata.labels != nil }
            guard !files.isEmpty else { throw ValidationError("no labelled images under --rehearse \(rehearse.joined(separator: ", "))") }
            settings.rehearsal = RehearsalSource(files: files, limit: rehearseLimit, share: rehearseShare)
            logger.info("rehearsal: \(files.count) labelled images under \(rehearse.joined(separator: ", ")); up to \(rehearseLimit) kept, \(Int(rehearseShare * 100))% of each batch")
        }
        let slot = TrainingSlot()
        let trainer = TrainerStage(settings: settings, slot: slot, logger: logger)
        var models = stage.consumer(clientKafka, stage: trainer, prefix: kafka.topicPrefix)
        models.groupID += "-models"
        let follower = ModelFollower(topic: topics.models, consumer: models, logger: kafka.logger("xray.trainer.models"),
                                     stage: "trainer", assembling: [.published, .trained],
                                     use: { announcement, _, model in slot.offer(announcement, model: model) })
        logger.info("trainer \(settings.trainerID): \(shards) shards, batch \(batch), \(async ? "asynchronous" : "synchronous"), trains \(train)")
        try await stage.run(trainer, kafka: kafka, companions: [follower], beforeConsuming: { try await follower.ready() })
    }
}
