public import Engine
import Foundation
public import KafkaIO
public import Logging
import Metrics
import ModelVersions
public import ServiceLifecycle
import Synchronization
public import Wire

/// What an aggregator runs: which model, which rules, which optimiser.
public struct AggregatorSettings: Sendable {
    public var topics: TopicCatalog
    /// The consumer group over xray.gradients (partition = shard).
    public var groupID = "aggregator"
    /// The published version the run starts from; nil: the latest on xray.models.
    public var base: String?
    /// The run's name, the prefix of its versions; nil: "<base>-ft".
    public var run: String?
    public var mode = AggregationMode.synchronous(trainers: 1, barrierTimeout: .seconds(30))
    public var optimizer = OptimizerSettings(kind: .adam, weightDecay: 1e-4)
    public var schedule = LearningRateSchedule.warmupPlateau(WarmupPlateau(base: 1e-3, warmupSteps: 50, factor: 0.3, patience: 2))
    public var scope = TrainableScope.all
    /// How long its consumers may see records waiting and receive none before they report a
    /// stall and reconnect (`ConsumerConfiguration.stallAfterMilliseconds`).
    public var stallAfter: Duration = .seconds(30)

    public init(topics: TopicCatalog) { self.topics = topics }
}

/// An aggregator instance: owns the parameter shards of the xray.gradients partitions the
/// group assigns it, turns trainers' contributions into optimiser steps (`ShardAggregator`),
/// and after each step writes the shard's checkpoint to xray.checkpoints, then the shard of
/// the new version to xray.models, and only then marks the contributions' records done. So a
/// killed aggregator loses no applied step: its successor (or itself, restarted) restores
/// the newest checkpoint, recognises contributions already applied by their ids, applies
/// again those whose step was not checkpointed, and republishes a version shard the trainers
/// may be waiting for.
public final class Aggregator: Service, @unchecked Sendable {
    public let settings: AggregatorSettings
    private let kafka: KafkaConfiguration
    private let logger: Logger
    private let published = Mutex<[(version: String, file: [UInt8])]>([])
    /// The latest version shards seen on xray.models.heads ("version#shard"), at most 4096.
    private let seenShards = Mutex(RecentSet(capacity: 4096))
    /// The newest shard head seen on xray.models.heads per run and shard ("run#shard"), for
    /// at most `maxTrackedShards` of them (the least recently written go first).
    private let newestShards = Mutex<[String: ModelHead]>([:])
    static let maxTrackedShards = 4096
    private let evaluations = Mutex<[VersionEvaluation]>([])
    /// The head of the run's base version (trained heads name where its file is). Set once,
    /// before aggregation starts.
    private var baseHead: ModelHead?

    public init(settings: AggregatorSettings, kafka: KafkaConfiguration, logger: Logger) {
        self.settings = settings
        self.kafka = kafka
        self.logger = logger
    }

    public func run() async throws {
        let topics = settings.topics
        let follower = ModelFollower(topic: topics.models, consumer: consumerConfiguration(suffix: "-models"), logger: logger,
                                     stage: "aggregator", assembling: [.published], alsoNamed: settings.base,
                                     use: { [self] a, file, _ in
                                         self.published.withLock { kept in
                                             kept.append((a.version, file))
                                             if kept.count > 4 { kept.removeFirst() }
                                         }
                                     },
                                     observe: { [self] event in
                                         switch event {
                                         case .trainedShard(let s):
                                             guard let run = s.run, let shard = s.shard, let step = s.step else { return }
                                             self.seenShards.withLock { $0.insert("\(s.version)#\(shard)") }
                                             self.newestShards.withLock { newest in
                                                 let key = "\(run)#\(shard)"
                                                 guard step > newest[key]?.step ?? 0 else { return }
                                                 if newest[key] == nil, newest.count >= Self.maxTrackedShards,
                                                    let oldest = newest.min(by: { $0.value.writtenAt < $1.value.writtenAt })?.key {
                                                     newest[oldest] = nil
                                                 }
                                                 newest[key] = s
                                             }
                                         case .evaluation(let e): self.evaluations.withLock { $0.append(e) }
                                         case .decision: break
                                         }
                                     })
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await follower.run() }
            // A graceful shutdown cancels the wait for the models as much as the aggregation.
            do {
                try await cancelWhenGracefulShutdown {
                    try await follower.ready()
                    try await self.aggregate()
                }
            } catch is CancellationError {}
            group.cancelAll()
        }
    }

    private func consumerConfiguration(suffix: String) -> ConsumerConfiguration {
        var consumer = ConsumerConfiguration(kafka: kafka, groupID: settings.groupID + suffix)
        consumer.stallAfterMilliseconds = Int(settings.stallAfter / .milliseconds(1))
        return consumer
    }

    private func aggregate() async throws {
        let topics = settings.topics
        evaluations.withLock { $0.removeAll() }  // history: the checkpoint's schedule has seen it
        let bases = published.withLock { $0 }
        guard let base = settings.base.flatMap({ name in bases.last { $0.version == name } }) ?? bases.last else {
            throw BadInput("base version \(settings.base ?? "?") is not on \(topics.models); publish it with xray model publish")
        }
        let run = settings.run ?? "\(base.version)-ft"
        let index = ModelHeadIndex(modelsTopic: topics.models, configuration: consumerConfiguration(suffix: "-heads"), logger: logger)
        // The follower found the base through its head, so a miss here is a slow broker: ask
        // again for up to a minute (a loaded broker can take that long to serve the heads).
        var found: ModelHead?
        for attempt in 1...30 where found == nil {
            found = try await retryingWhileBrokerAway("reading \(index.headsTopic)", logger: logger) { try await index.newestHead(named: base.version) }
            if found == nil, attempt < 30 { try await Task.sleep(for: .seconds(2)) }
        }
        guard let baseHead = found else {
            throw BadInput("base version \(base.version) has no head on \(index.headsTopic); publish it again with xray model publish")
        }
        self.baseHead = baseHead
        let model = try ModelFile.decode(base.file, name: "base version \(base.version)")
        model.network.setTrainable(settings.scope)
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        let counts = try await retryingWhileBrokerAway("reading the partitions of \(topics.gradients)", logger: logger) {
            try await admin.partitionCounts(topics: [topics.gradients])
        }
        guard let shards = counts[topics.gradients] else {
            throw BadInput("\(topics.gradients) does not exist; create the topics with xray topics apply")
        }
        guard let layout = try? ShardLayout.checked(parameterCount: model.network.store.count, shards: shards) else {
            throw ConfigurationError("\(topics.gradients) has \(shards) partitions; the parameter shards need 1 to \(ShardLayout.maxShards)")
        }
        logger.info("run \(run) from \(base.version): \(model.manifest.architecture), \(layout.parameterCount) parameters in \(shards) shards, \(settings.mode)")

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration(suffix: ""), subscription: .group(topics: [topics.gradients]),
                                         logger: logger)
        var owned: [Int: ShardAggregator] = [:]
        var assembler = GradientAssembler()
        var lastExpiry = ContinuousClock.now
        do {
            while !Task.isCancelled {
                let record = await consumer.next(timeout: .milliseconds(200))
                let assigned = Set(consumer.assignment.map { Int($0.partition) })
                let lost = Set(owned.keys).subtracting(assigned)
                if !lost.isEmpty {
                    for s in lost { owned[s] = nil }
                    assembler.drop(shards: lost)
                    logger.info("shards \(lost.sorted()) moved to another aggregator")
                }
                if let record {
                    let s = Int(record.partition)
                    if owned[s] == nil {
                        // Checkpoints read now, not at start-up: another aggregator may have
                        // advanced the shard since. Every newly assigned shard is taken at once.
                        let checkpoints = try await readCheckpoints(run: run)
                        for taken in assigned.union([s]).subtracting(owned.keys).sorted() {
                            var shard = try restore(taken, run: run, base: base.version, layout: layout, model: model, checkpoints: checkpoints)
                            shard = try await catchUpWithPublished(shard, model: model)
                            owned[taken] = shard
                            try await republishIfMissing(shard, model: model, producer)
                        }
                    }
                    do {
                        if let c = try assembler.add(record), let shard = owned[s] { try await arrive(c, at: shard, consumer, producer) }
                    } catch {
                        count(faultCode(error) == "non-finite" ? "non-finite" : "malformed")
                        try await deadLetter(record, error, producer, consumer)
                    }
                }
                if ContinuousClock.now - lastExpiry >= .seconds(1) {
                    lastExpiry = .now
                    try await expire(&assembler, owned: owned, consumer)
                }
                let observed = evaluations.withLock { e in defer { e.removeAll() }; return e }
                for e in observed where e.version == base.version || e.version.hasPrefix(run + "-") {
                    guard let auc = e.meanAUC else { continue }
                    for shard in owned.values { shard.observe(Float(1 - auc)) }
                }
                for shard in owned.values.sorted(by: { $0.shard < $1.shard }) {
                    try await stepIfDue(shard, model: model, producer, consumer)
                }
            }
        } catch is CancellationError {}
        await consumer.close()
        await producer.close()
    }

    /// Sends a record to the dead-letter topic with why, and marks it done.
    private func deadLetter(_ record: KafkaRecord, _ error: any Error, _ producer: KafkaProducer, _ consumer: KafkaConsumer) async throws {
        logger.warning("dead-lettering \(record.topic)[\(record.partition)]@\(record.offset) (\(faultCode(error))): \(error)")
        try await producer.sendInOrder([DeadLetter.record(for: record, stage: "aggregator", error: error,
                                                          topic: settings.topics.deadletter)], logger: logger)
        consumer.complete(record)
    }

    /// Gives up partial contributions and waiting ones that will never complete, so their
    /// records stop holding back the commits of their partitions.
    private func expire(_ assembler: inout GradientAssembler, owned: [Int: ShardAggregator], _ consumer: KafkaConsumer) async throws {
        for a in assembler.expire(now: .now) {
            count("expired")
            logger.warning("gave up contribution \(a.contribution) shard \(a.shard): \(a.reason)")
            for r in a.records { consumer.complete(r) }
        }
        for shard in owned.values {
            for c in shard.expire(now: .now) {
                count("expired")
                logger.warning("dropped contribution \(c.id) from \(c.trainer) on shard \(shard.shard): it waited more than \(ShardAggregator.pendingExpiry) for its step (computed at step \(c.baseStep), the shard is at \(shard.step))")
                for r in c.records { consumer.complete(r) }
            }
        }
    }

    private func arrive(_ c: ShardContribution, at shard: ShardAggregator, _ consumer: KafkaConsumer,
                        _ producer: KafkaProducer) async throws {
        let arrival = shard.add(c, now: .now)
        switch arrival {
        case .pending: return
        case .duplicate:
            count("duplicate")
            logger.info("contribution \(c.id) from \(c.trainer) was applied before; skipping it")
        case .stale(let behind):
            count("stale")
            logger.warning("dropped contribution \(c.id) from \(c.trainer): computed at \(c.baseVersion), \(behind) steps behind shard \(shard.shard)")
        case .foreign:
            count("foreign")
            logger.warning("dropped contribution \(c.id) from \(c.trainer): computed at \(c.baseVersion), not a version of run \(shard.run)")
        case .malformed(let reason):
            count("malformed")
            logger.warning("dropped contribution \(c.id) from \(c.trainer): \(reason)")
        case .overflow:
            count("overflow")
            logger.warning("dropped contribution \(c.id) from \(c.trainer): \(ShardAggregator.maxPending) contributions already wait on shard \(shard.shard)")
        }
        for r in c.records { consumer.complete(r) }
    }

    private func stepIfDue(_ shard: ShardAggregator, model: ModelFile, _ producer: KafkaProducer, _ consumer: KafkaConsumer) async throws {
        while let due = shard.nextStep(now: .now) {
            for c in due.dropped {
                count("stale")
                logger.warning("dropped contribution \(c.id) from \(c.trainer): computed at step \(c.baseStep), more than the allowed staleness behind")
                for r in c.records { consumer.complete(r) }
            }
            for trainer in due.missed { logger.warning("trainer \(trainer) missed the barrier of step \(shard.step + 1) on shard \(shard.shard); continuing without it") }
            guard let summary = shard.apply(due) else { continue }
            try await writeCheckpoint(shard.checkpoint, producer)
            try await sendShard(shard, model: model, summary: summary, producer)
            for c in due.contributions { for r in c.records { consumer.complete(r) } }
            count("applied", by: summary.contributions)
            let d = [("shard", String(shard.shard))]
            Gauge(label: "xray_aggregator_step", dimensions: d).record(summary.step)
            if shard.shard == 0 {
                Gauge(label: "xray_training_loss").record(Double(summary.loss))
                Gauge(label: "xray_learning_rate").record(Double(summary.learningRate))
            }
            logger.info("\(shard.version) shard \(shard.shard): \(summary.contributions) contribution(s) from \(summary.trainers.joined(separator: ",")), \(summary.samples) images, loss \(String(format: "%.4f", summary.loss)), lr \(String(format: "%.2e", summary.learningRate))")
            if let skipped = summary.skipped {
                Counter(label: "xray_aggregator_steps_skipped_total", dimensions: d).increment()
                logger.error("\(shard.version) shard \(shard.shard) kept the weights of the step before: \(skipped). The contributions are counted as applied; check the trainers' inputs and the learning rate.")
            }
        }
    }

    /// Writes the shard of the shard's current version and its head.
    private func sendShard(_ shard: ShardAggregator, model: ModelFile, summary: ShardAggregator.Summary?, _ producer: KafkaProducer) async throws {
        try await producer.sendVersion(try versionRecords(shard, model: model, summary: summary), headsTopic: settings.topics.modelHeads,
                                       base: baseHead, logger: logger)
    }

    private func versionRecords(_ shard: ShardAggregator, model: ModelFile, summary: ShardAggregator.Summary?) throws -> [OutgoingRecord] {
        var manifest = model.manifest
        manifest.origin = "trained: run \(shard.run) step \(shard.step) from \(shard.base)"
        manifest.createdAt = isoNow()
        manifest.metrics = summary.map { ["train.loss": Double($0.loss), "train.images": Double($0.samples),
                                          "train.learning_rate": Double($0.learningRate)].filter(\.value.isFinite) }
        let range = shard.layout.range(shard.shard)
        var announcement = ShardAnnouncement(version: shard.version, run: shard.run, step: shard.step, base: shard.base,
                                             shard: shard.shard, shards: shard.layout.shards, start: range.lowerBound,
                                             count: range.count, chunks: 0, crc32: "", manifest: manifest, publishedAt: isoNow())
        announcement.contributions = shard.lastApplied
        announcement.recentContributions = shard.recentlyApplied(ModelVersionRecord.recentContributions)
        return try ModelVersionCodec.shardRecords(values: shard.values, state: shard.state, announcement: announcement,
                                              topic: settings.topics.models)
    }

    /// The shard from its newest usable checkpoint of the run (a corrupt one is refused with
    /// a log line and the one before it tried), or fresh from the base if the run has none.
    private func restore(_ s: Int, run: String, base: String, layout: ShardLayout, model: ModelFile,
                         checkpoints: CheckpointReader) throws -> ShardAggregator {
        let candidates = checkpoints.checkpoints(shard: s)
        for c in candidates {
            guard c.shards == layout.shards, c.base == base else {
                throw ConfigurationError("the checkpoint of run \(run) shard \(s) is for \(c.shards) shards from \(c.base); start a new run",
                                         flag: "--run")
            }
            do {
                let shard = try ShardAggregator(restoring: c, network: model.network, mode: settings.mode)
                logger.info("shard \(s): continuing run \(run) from its checkpoint at step \(c.step)")
                return shard
            } catch {
                logger.error("refused \(error); trying the checkpoint before it")
            }
        }
        if !candidates.isEmpty {
            throw CorruptState("run \(run) shard \(s)", "no checkpoint of it can be restored; start a new run with --run")
        }
        logger.info("shard \(s): starting run \(run) at \(base)")
        return ShardAggregator(run: run, base: base, shard: s, layout: layout, network: model.network, mode: settings.mode,
                               optimizer: settings.optimizer, schedule: settings.schedule)
    }

    /// After a restore: if xray.models holds a later step of the shard than its newest
    /// checkpoint, the broker lost an acknowledged checkpoint (Tansu's S3 storage was seen to
    /// after a SIGKILL; Kafka can, with acks=1 or an unclean leader election). Left behind, the
    /// shard would wait forever for contributions computed at a version the trainers have left,
    /// and training would stop. The shard continues instead from the published weights (and
    /// statistics) of that step, with the optimiser moments and schedule of the checkpoint it
    /// has, and says so loudly. If the version cannot be read whole, the checkpoint's shard
    /// stays.
    private func catchUpWithPublished(_ shard: ShardAggregator, model: ModelFile) async throws -> ShardAggregator {
        guard let newer = newestShards.withLock({ $0["\(shard.run)#\(shard.shard)"] }), let newerStep = newer.step, newerStep > shard.step,
              newer.base == shard.base, newer.shards == shard.layout.shards else { return shard }
        Counter(label: "xray_aggregator_checkpoints_behind_total", dimensions: [("shard", String(shard.shard))]).increment()
        logger.error("shard \(shard.shard): its newest checkpoint is at step \(shard.step), but \(settings.topics.models) holds its step \(newerStep) (\(newer.version)): the broker lost an acknowledged checkpoint; check its durability (acks=all, replication).")
        guard let file = try await readVersion(newer.version) else {
            logger.warning("shard \(shard.shard): \(newer.version) is not on \(settings.topics.models) whole (another shard never reached step \(newerStep)); staying at step \(shard.step)")
            return shard
        }
        do {
            let published = try ModelFile.decode(file, name: "model version \(newer.version)")
            let range = shard.layout.range(shard.shard)
            guard published.network.store.count == shard.layout.parameterCount else {
                throw BadInput("it has \(published.network.store.count) parameters, the run \(shard.layout.parameterCount)")
            }
            var c = shard.checkpoint
            c.step = newerStep
            c.values = Array(published.network.store.flatValues[range])
            c.state = shard.shard == 0 ? published.network.floatState : nil
            c.lastApplied = newer.contributions ?? []
            c.applied += c.lastApplied
            let caughtUp = try ShardAggregator(restoring: c, network: model.network, mode: settings.mode)
            logger.warning("shard \(shard.shard): continuing run \(shard.run) from \(newer.version) at step \(newerStep), with the optimiser state of step \(shard.step)")
            return caughtUp
        } catch {
            logger.error("shard \(shard.shard): cannot continue from \(newer.version) (\(error)); staying at step \(shard.step)")
            return shard
        }
    }

    /// The model file of the trained `version`, read through its heads; nil if it is not on
    /// xray.models whole.
    private func readVersion(_ version: String) async throws -> [UInt8]? {
        let index = ModelHeadIndex(modelsTopic: settings.topics.models, configuration: consumerConfiguration(suffix: "-recovery"), logger: logger)
        return try await retryingWhileBrokerAway("reading \(settings.topics.models)", logger: logger) {
            guard let heads = try await index.trainedHeads(of: version) else { return nil }
            var assembler = ModelVersionAssembler(assembling: [.published, .trained])
            var count = ModelHeadIndex.ReadCount()
            guard case .complete(_, let file) = try await index.load(heads, into: &assembler, count: &count) else { return nil }
            return file
        }
    }

    /// After a restore: the shard of the current version, if its head never reached
    /// xray.models.heads (the previous owner stopped between checkpoint and head), so waiting
    /// trainers go on.
    private func republishIfMissing(_ shard: ShardAggregator, model: ModelFile, _ producer: KafkaProducer) async throws {
        guard shard.step > 0, !seenShards.withLock({ $0.contains("\(shard.version)#\(shard.shard)") }) else { return }
        logger.info("republishing \(shard.version) shard \(shard.shard), which its checkpoint has and xray.models.heads lacks")
        try await sendShard(shard, model: model, summary: nil, producer)
    }

    /// Writes a shard checkpoint to xray.checkpoints and, once acknowledged, its head.
    private func writeCheckpoint(_ checkpoint: ShardCheckpoint, _ producer: KafkaProducer) async throws {
        let records = try CheckpointCodec.records(checkpoint, topic: settings.topics.checkpoints)
        let reports = try await producer.sendInOrder(records, logger: logger)
        let offsets = reports.map(\.offset).filter { $0 >= 0 }
        guard let first = offsets.min(), let last = offsets.max(), let partition = reports.last?.partition else {
            logger.warning("the broker acknowledged shard \(checkpoint.shard)'s checkpoint without offsets; a restart will read xray.checkpoints whole")
            return
        }
        let head = CheckpointHead(run: checkpoint.run, shard: checkpoint.shard, slot: checkpoint.step % 2, step: checkpoint.step,
                                  partition: partition, first: first, last: last, writtenAt: isoNow())
        try await producer.sendInOrder([try ModelVersionCodec.record(head, headsTopic: settings.topics.modelHeads)], logger: logger)
    }

    /// The checkpoints of `run`: through their heads (the newest of each shard's slots near the
    /// end of the heads' checkpoint partition), or, when none of the run is there (a new run,
    /// or checkpoints written before heads), from xray.checkpoints read whole.
    private func readCheckpoints(run: String) async throws -> CheckpointReader {
        try await retryingWhileBrokerAway("reading \(settings.topics.checkpoints)", logger: logger) {
            var reader = CheckpointReader(run: run)
            let configuration = consumerConfiguration(suffix: "-checkpoints")
            let index = ModelHeadIndex(modelsTopic: settings.topics.models, configuration: configuration, logger: logger)
            let bounds = try await index.ends()[TopicPartition(index.headsTopic, ModelHead.Partition.checkpoints)] ?? (0, 0)
            var newest: [String: CheckpointHead] = [:]
            for record in try await index.records(ModelHead.Partition.checkpoints, in: bounds, last: ModelHeadIndex.tailRecords).records {
                guard let head = try? JSONDecoder().decode(CheckpointHead.self, from: Data(record.value)), head.problem == nil,
                      head.run == run else { continue }
                newest["\(head.shard)#\(head.slot)"] = head
            }
            if newest.isEmpty {
                try await KafkaConsumer.readWholeTopic(settings.topics.checkpoints, configuration: configuration, logger: logger) { reader.add($0) }
                return reader
            }
            for head in newest.values.sorted(by: { $0.first < $1.first }) {
                do {
                    try await KafkaConsumer.readRange(TopicPartition(settings.topics.checkpoints, head.partition), first: head.first, last: head.last,
                                                      configuration: configuration, logger: logger) { reader.add($0) }
                } catch let error as KafkaError where error.name == "OFFSET_OUT_OF_RANGE" {
                    logger.warning("the checkpoint of run \(run) shard \(head.shard) step \(head.step) is gone from \(settings.topics.checkpoints): \(error.message)")
                }
            }
            return reader
        }
    }

    private func count(_ outcome: String, by n: Int = 1) {
        Counter(label: "xray_gradients_total", dimensions: [("outcome", outcome)]).increment(by: n)
    }
}
