internal import CRdKafka
public import Logging

/// Reads records from topics, in a consumer group or from fixed partitions.
///
/// A dedicated thread polls librdkafka into a small bounded buffer; when the buffer is full
/// the consumer pauses its partitions, so a slow stage holds little memory. The application
/// takes records with `next()` and calls `complete(_:)` once a record's output is
/// acknowledged; only completed offsets are ever committed (every second, on revoke and on
/// close). Call `close()` before dropping the consumer.
public final class KafkaConsumer: Sendable {
    /// Where the consumer reads.
    public enum Subscription: Sendable {
        /// Join `groupID`'s group for these topics; the group shares their partitions.
        case group(topics: [String])
        /// Read every partition of one topic, outside any group, with nothing committed.
        case wholeTopic(String, fromBeginning: Bool)
    }

    private let client: RDKafkaClient
    private let core: ConsumerCore
    private let pollThread: PollThread

    public init(configuration: ConsumerConfiguration, subscription: Subscription, logger: Logger) throws {
        try Librdkafka.requireMinimumVersion()
        // librdkafka wants a group.id even for assign(); without a subscription it joins nothing.
        let properties = configuration.librdkafkaProperties
        let inGroup: Bool
        switch subscription {
        case .group: inGroup = true
        case .wholeTopic: inGroup = false
        }
        let core = ConsumerCore(logger: logger, commitsEnabled: inGroup,
                                maxBuffered: configuration.maxBufferedRecords,
                                commitInterval: .milliseconds(configuration.commitIntervalMilliseconds))
        let client = try RDKafkaClient(kind: RD_KAFKA_CONSUMER, properties: properties) { conf in
            RDKafkaClient.installCommonCallbacks(conf, target: core)
            if inGroup {
                rd_kafka_conf_set_rebalance_cb(conf, consumerRebalanceCallback)
                rd_kafka_conf_set_offset_commit_cb(conf, consumerCommitCallback)
            }
        }
        rd_kafka_poll_set_consumer(client.pointer)

        switch subscription {
        case .group(let topics):
            let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
            let err = rd_kafka_subscribe(client.pointer, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "subscribing to \(topics)") }
        case .wholeTopic(let topic, let fromBeginning):
            let counts = try client.partitionCounts(topics: [topic], timeoutMilliseconds: 10_000)
            guard let count = counts[topic], count > 0 else {
                throw KafkaError.local("UNKNOWN_TOPIC", "topic \(topic) does not exist; create it with `xray topics apply`")
            }
            let list = rd_kafka_topic_partition_list_new(Int32(count))!
            defer { rd_kafka_topic_partition_list_destroy(list) }
            var tps: [TopicPartition] = []
            for p in 0..<Int32(count) {
                rd_kafka_topic_partition_list_add(list, topic, p).pointee.offset =
                    fromBeginning ? Int64(RD_KAFKA_OFFSET_BEGINNING) : Int64(RD_KAFKA_OFFSET_END)
                tps.append(TopicPartition(topic, p))
            }
            core.state.withLock { $0.tracker.assign(tps) }
            let err = rd_kafka_assign(client.pointer, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assigning \(topic)") }
        }
        self.client = client
        self.core = core
        self.pollThread = PollThread(name: "xray-consumer-poll") { core.pollOnce(client.pointer) }
    }

    deinit {
        pollThread.stopAndWait()
    }

    /// The next record, waiting as long as it takes (or up to `timeout`). Returns nil when the
    /// consumer is closed, the task is cancelled, or the timeout passes.
    public func next(timeout: Duration? = nil) async -> KafkaRecord? {
        await core.next(timeout: timeout)
    }

    /// Marks a record done: its output is acknowledged, so its offset may be committed once
    /// every earlier record of its partition is done too.
    public func complete(_ record: KafkaRecord) {
        core.complete(record)
    }

    /// The partitions this member holds now.
    public var assignment: Set<TopicPartition> {
        core.state.withLock { $0.tracker.assigned }
    }

    /// Per assigned partition, records on the broker this member has not fetched yet: the
    /// high watermark (from the latest fetch response, cached by librdkafka; no request is
    /// made) minus the fetch position. Partitions without both figures yet are left out.
    public var lag: [TopicPartition: Int64] {
        let partitions = Array(assignment)
        guard !partitions.isEmpty, let list = rd_kafka_topic_partition_list_new(Int32(partitions.count)) else { return [:] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for tp in partitions { rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition) }
        guard rd_kafka_position(client.pointer, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return [:] }
        var result: [TopicPartition: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[i]
            let tp = TopicPartition(String(cString: element.topic), element.partition)
            var low: Int64 = 0, high: Int64 = 0
            guard element.offset >= 0,
                  rd_kafka_get_watermark_offsets(client.pointer, element.topic, element.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
                  high >= 0 else { continue }
            result[tp] = max(0, high - element.offset)
        }
        return result
    }

    /// The (low, high) watermarks of each assigned partition, asked of the broker now: high is
    /// the offset the next record written will get. Throws if the broker does not answer
    /// within `timeout`.
    public func endOffsets(timeout: Duration = .seconds(10)) async throws -> [TopicPartition: (low: Int64, high: Int64)] {
        let partitions = Array(assignment)
        let milliseconds = Int32(timeout / .milliseconds(1))
        let answers = await onDedicatedThread("xray-watermarks") { [client] in
            partitions.map { tp -> Result<(low: Int64, high: Int64), KafkaError> in
                var low: Int64 = 0, high: Int64 = 0
                let err = rd_kafka_query_watermark_offsets(client.pointer, tp.topic, tp.partition, &low, &high, milliseconds)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(KafkaError(err, context: "asking where \(tp) ends")) }
                return .success((low, high))
            }
        }
        var ends: [TopicPartition: (low: Int64, high: Int64)] = [:]
        for (tp, answer) in zip(partitions, answers) { ends[tp] = try answer.get() }
        return ends
    }

    /// Reads every record written before the call (`endOffsets()`), handing each to `body`,
    /// and returns once the end is reached. `quiet` is how long a spell without records lasts
    /// before partitions with nothing left to fetch count as read (see `TopicEnd`).
    public func readToEnd(quiet: Duration = .seconds(1), _ body: (KafkaRecord) throws -> Void) async throws {
        var end = TopicEnd(ends: try await endOffsets())
        while !end.isReached {
            try Task.checkCancellation()
            guard let record = await next(timeout: quiet) else {
                end.quiet(lag: lag)
                continue
            }
            end.passed(record)
            complete(record)
            try body(record)
        }
    }

    /// Reads `topic` from its beginning to where it ends now, outside any group, handing each
    /// record to `body`, and closes the consumer.
    public static func readWholeTopic(_ topic: String, configuration: ConsumerConfiguration, logger: Logger,
                                      _ body: (KafkaRecord) throws -> Void) async throws {
        let consumer = try KafkaConsumer(configuration: configuration, subscription: .wholeTopic(topic, fromBeginning: true), logger: logger)
        do {
            try await consumer.readToEnd(body)
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    /// Commits what is done, leaves the group (handing partitions to the other members) and
    /// stops polling. Records handed out and not completed will be read again by the group.
    public func close() async {
        core.markClosed()
        await onDedicatedThread("xray-consumer-close") { [pollThread, core, client] in
            pollThread.stopAndWait()
            core.commit(client.pointer, synchronous: true)
            let err = rd_kafka_consumer_close(client.pointer)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                core.logger.warning("\(KafkaError(err, context: "closing the consumer"))")
            }
        }
    }
}
