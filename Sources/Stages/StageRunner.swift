public import KafkaIO
public import Logging
public import ServiceLifecycle
import Wire
import Foundation

/// How a stage instance talks to Kafka.
public struct StageRunnerConfiguration: Sendable {
    public var consumer: ConsumerConfiguration
    public var producer: ProducerConfiguration
    /// Where refused inputs go.
    public var deadLetterTopic: String
    /// Records whose outputs may be awaiting acknowledgement at once.
    public var maxInFlight: Int = 32
    /// Awaited before the first record is read (the scorer waits for a model).
    public var beforeConsuming: (@Sendable () async throws -> Void)?

    public init(consumer: ConsumerConfiguration, producer: ProducerConfiguration, deadLetterTopic: String) {
        self.consumer = consumer
        self.producer = producer
        self.deadLetterTopic = deadLetterTopic
    }
}

/// Runs one stage instance: consume → process → produce → commit, as a `Service`.
///
/// - A batch's offsets are committed only after all of its outputs are acknowledged
///   (`KafkaConsumer.complete` after `KafkaProducer.send`) and the stage has settled it
///   (`Stage.settle`): at-least-once. (A trainer's gradient is the output of its whole batch.)
/// - A record the stage refuses goes to the dead-letter topic with the reason; the stage goes on.
/// - An output the broker refuses for good (too large, say) sends the input to the dead-letter
///   topic instead; retriable failures (a broker away) are retried with backoff, forever, so
///   nothing is skipped while the cluster is down.
/// - Memory stays bounded: at most `maxInFlight` records await acknowledgement, and the
///   consumer pauses its partitions while its own small buffer is full.
/// - On SIGTERM/SIGINT (graceful shutdown) it stops taking records, waits for those in flight,
///   commits, and leaves the group.
public final class StageRunner: Service {
    public let stage: any Stage
    public let configuration: StageRunnerConfiguration
    public let statistics: StageStatistics
    private let logger: Logger

    public init(stage: any Stage, configuration: StageRunnerConfiguration, logger: Logger) {
        self.stage = stage
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "stage"] = "\(stage.name)"
        self.logger = logger
        statistics = StageStatistics(stage: stage.name)
    }

    public func run() async throws {
        let producer = try KafkaProducer(configuration: configuration.producer, logger: logger)
        let consumer = try KafkaConsumer(configuration: configuration.consumer,
                                         subscription: .group(topics: [stage.inputTopic]), logger: logger)
        logger.info("consuming \(stage.inputTopic) in group \(configuration.consumer.groupID)")
        do {
            try await cancelWhenGracefulShutdown {
                try await self.configuration.beforeConsuming?()
                try await self.consume(consumer, producer)
            }
        } catch is CancellationError {
            // graceful shutdown: fall through to close
        } catch {
            await consumer.close()
            await producer.close()
            throw error
        }
        await consumer.close()
        await producer.close()
        logger.info("stopped: \(describe(statistics.snapshot))")
    }

    private func consume(_ consumer: KafkaConsumer, _ producer: KafkaProducer) async throws {
        var lastReport = ContinuousClock.now, lastLag = ContinuousClock.now
        try await withThrowingTaskGroup(of: Int.self) { group in
            var inFlight = 0
            while let first = await consumer.next() {
                let batch = await fill([first], from: consumer)
                try await stage.beforeBatch()
                let outputs = transform(batch)
                while inFlight > 0 && inFlight + batch.count > configuration.maxInFlight {
                    inFlight -= try await group.next() ?? 0
                }
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { deliveries in
                        for (record, outputs) in zip(batch, outputs) {
                            deliveries.addTask { try await self.deliver(outputs, for: record, producer) }
                        }
                        try await deliveries.waitForAll()
                    }
                    try await self.stage.settle(batch)
                    for record in batch { consumer.complete(record) }
                    return batch.count
                }
                inFlight += batch.count
                if ContinuousClock.now - lastLag > .seconds(2) {
                    lastLag = .now
                    for (tp, records) in consumer.lag { statistics.lag(records, topic: tp.topic, partition: tp.partition) }
                }
                if ContinuousClock.now - lastReport > .seconds(10) {
                    lastReport = .now
                    logger.info("\(describe(statistics.snapshot))")
                }
            }
            while try await group.next() != nil {}
        }
    }

    /// Adds records to `batch` until the stage's batch is full or its wait is over.
    private func fill(_ batch: [KafkaRecord], from consumer: KafkaConsumer) async -> [KafkaRecord] {
        let batching = stage.batching
        var batch = batch
        let deadline = ContinuousClock.now + batching.maxWait
        while batch.count < batching.maxRecords {
            let remaining = deadline - .now
            guard remaining > .zero, let record = await consumer.next(timeout: remaining) else { break }
            batch.append(record)
        }
        return batch
    }

    /// Each record's outputs, or the dead letter of a refused input.
    func transform(_ batch: [KafkaRecord]) -> [[OutgoingRecord]] {
        let start = ContinuousClock.now
        let results = stage.process(batch: batch)
        precondition(results.count == batch.count, "\(stage.name) returned \(results.count) results for \(batch.count) records")
        var refused: [String] = []
        let outputs = zip(batch, results).map { record, result -> [OutgoingRecord] in
            switch result {
            case .success(let outputs):
                return outputs
            case .failure(let error):
                let code = faultCode(error)
                refused.append(code)
                logger.warning("dead-lettering \(record.topic)[\(record.partition)]@\(record.offset) key=\(record.keyText ?? "-") (\(code)): \(error)")
                return [DeadLetter.record(for: record, stage: stage.name, error: error, topic: configuration.deadLetterTopic)]
            }
        }
        statistics.batch(records: batch.count, refused: refused, seconds: (ContinuousClock.now - start) / .seconds(1))
        return outputs
    }

    /// Sends the outputs until they are acknowledged. Retriable failures back off and retry;
    /// a permanent refusal dead-letters the input in their place.
    private func deliver(_ outputs: [OutgoingRecord], for record: KafkaRecord, _ producer: KafkaProducer) async throws {
        var pending = outputs
        while true {
            do {
                let sending = pending
                _ = try await retryingWhileBrokerAway("sending the outputs of \(record.topic)[\(record.partition)]@\(record.offset)",
                                                  logger: logger, onRetry: { statistics.retried() }) {
                    try await producer.sendAll(sending)
                }
                if pending.first?.topic != configuration.deadLetterTopic { statistics.produced(pending.count) }
                return
            } catch let error as KafkaError {
                if pending.first?.topic == configuration.deadLetterTopic {
                    logger.error("the dead-letter topic refused \(record.topic)[\(record.partition)]@\(record.offset): \(error); skipping it")
                    return
                }
                logger.warning("output of \(record.topic)[\(record.partition)]@\(record.offset) refused, dead-lettering: \(error)")
                statistics.outputsRefused()
                pending = [DeadLetter.record(for: record, stage: stage.name, reason: "output refused by the broker: \(error)",
                                             code: "output-refused", topic: configuration.deadLetterTopic)]
            }
        }
    }

    private func describe(_ s: StageStatistics.Snapshot) -> String {
        let perRecord = s.consumed > 0 ? s.processingSeconds / Double(s.consumed) * 1000 : 0
        return "consumed \(s.consumed), produced \(s.produced), dead-lettered \(s.deadLettered), retries \(s.retries), \(String(format: "%.1f", perRecord)) ms/record"
    }
}
