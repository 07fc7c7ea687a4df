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
        /// Read these partitions from these offsets, outside any group, with nothing committed.
        case partitions([TopicPartition: Int64])
    }

    private let connection: ConsumerConnection
    private let core: ConsumerCore
    private let pollThread: PollThread

    public init(configuration: ConsumerConfiguration, subscription: Subscription, logger: Logger) throws {
        try Librdkafka.requireMinimumVersion()
        let inGroup: Bool, start: ConsumerCore.Start
        switch subscription {
        case .group: (inGroup, start) = (true, configuration.startAtEarliest ? .committedElseEarliest : .latest)
        case .wholeTopic(_, let fromBeginning): (inGroup, start) = (false, fromBeginning ? .earliest : .latest)
        case .partitions: (inGroup, start) = (false, .latest)  // no lag assumed before the first fetch
        }
        let core = ConsumerCore(logger: logger, name: configuration.groupID, start: start, commitsEnabled: inGroup,
                                maxBuffered: configuration.maxBufferedRecords,
                                commitInterval: .milliseconds(configuration.commitIntervalMilliseconds),
                                stallAfter: .milliseconds(configuration.stallAfterMilliseconds))
        let connection = try ConsumerConnection(configuration: configuration, subscription: subscription, core: core)
        self.connection = connection
        self.core = core
        self.pollThread = PollThread(name: "xray-consumer-poll") { core.pollOnce(connection) }
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
        let client = connection.client
        return withExtendedLifetime(client) { core.lag(client.pointer) }
    }

    /// The fetch wait (`fetch.wait.max.ms`) the consumer uses now: the configured one, or a
    /// longer one after a stall.
    public var fetchWaitMilliseconds: Int { connection.fetchWaitMilliseconds }

    /// The (low, high) watermarks of each assigned partition, asked of the broker now: high is
    /// the offset the next record written will get. Throws if the broker does not answer
    /// within `timeout`.
    public func endOffsets(timeout: Duration = .seconds(10)) async throws -> [TopicPartition: (low: Int64, high: Int64)] {
        let partitions = Array(assignment)
        let milliseconds = Int32(timeout / .milliseconds(1))
        let client = connection.client
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

    /// How long `readRange` waits for the rest of a bounded range.
    public static let boundedRangeWait: Duration = .seconds(30)

    /// Reads the records of one partition from offset `first` through `last` (inclusive; `.max`
    /// for "to its end"), outside any group, handing each to `body`, and closes the consumer.
    /// Returns the offset after the last record read (`first` if none). A range to the end
    /// (`last` = `.max`) stops where the partition ends (nothing more for `quiet` once past
    /// the high watermark); a bounded one waits for its last offset up to `wait`.
    /// Throws `KafkaError` code `OFFSET_OUT_OF_RANGE` when `first` is below the partition's
    /// start (retention removed it) or past its end (never written), and a retriable
    /// `_TIMED_OUT` when a bounded range's records did not all come within the wait while the
    /// partition had more to serve (a broker too slow, not records that are gone).
    ///
    /// The fetches decide where the partition ends, not a ListOffsets answer: Tansu's S3
    /// engine was seen to report a high watermark one short of the records it serves.
    @discardableResult
    public static func readRange(_ partition: TopicPartition, first: Int64, last: Int64, configuration: ConsumerConfiguration,
                                 logger: Logger, quiet: Duration = .milliseconds(300), wait: Duration = boundedRangeWait,
                                 _ body: (KafkaRecord) throws -> Void) async throws -> Int64 {
        let consumer = try KafkaConsumer(configuration: configuration, subscription: .partitions([partition: first]), logger: logger)
        do {
            let ends = try await consumer.endOffsets()
            let (low, high) = ends[partition] ?? (0, 0)
            guard first >= low else {
                throw KafkaError.local("OFFSET_OUT_OF_RANGE", "\(partition) starts at offset \(low), after \(first) (removed by retention)")
            }
            guard last == .max || first <= high else {
                throw KafkaError.local("OFFSET_OUT_OF_RANGE", "\(partition) ends at offset \(high), before \(first) (never written)")
            }
            var next = first
            let giveUp = ContinuousClock.now + wait
            while next <= last {
                try Task.checkCancellation()
                guard let record = await consumer.next(timeout: quiet) else {
                    // Nothing came. A range to the end is read when the fetches say the
                    // position is there or it has passed the high watermark asked at the
                    // start. A bounded range names records that were written: they are
                    // waited for (a slow broker serves a large record alone, later), up to
                    // `wait`. Its last offsets may be gone (compaction, a topic deleted
                    // and made again), which the fetches or the high watermark show as the
                    // partition's end reached; if neither does, the broker was too slow,
                    // and trying again may get the records.
                    let atEnd = consumer.lag[partition] == 0 || next >= high
                    if last == .max && atEnd { break }
                    if ContinuousClock.now >= giveUp {
                        if last == .max || atEnd { break }
                        throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, context: "\(partition): of offsets \(first)...\(last), the broker served "
                                         + "those before \(next) within \(wait), with more records to serve")
                    }
                    continue
                }
                guard record.offset <= last else { break }
                next = record.offset + 1
                try body(record)
            }
            if next == first, first >= high {
                throw KafkaError.local("OFFSET_OUT_OF_RANGE", "\(partition) ends at offset \(high), before \(first) (never written)")
            }
            await consumer.close()
            return next
        } catch {
            await consumer.close()
            throw error
        }
    }

    /// The (low, high) watermarks of partitions, asked of the broker without consuming.
    public static func watermarks(_ partitions: [TopicPartition], configuration: ConsumerConfiguration,
                                  logger: Logger) async throws -> [TopicPartition: (low: Int64, high: Int64)] {
        let consumer = try KafkaConsumer(configuration: configuration,
                                         subscription: .partitions(Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(RD_KAFKA_OFFSET_END)) })),
                                         logger: logger)
        do {
            let ends = try await consumer.endOffsets()
            await consumer.close()
            return ends
        } catch {
            await consumer.close()
            throw error
        }
    }

    /// Commits what is done, leaves the group (handing partitions to the other members) and
    /// stops polling. Records handed out and not completed will be read again by the group.
    public func close() async {
        core.markClosed()
        await onDedicatedThread("xray-consumer-close") { [pollThread, core, connection] in
            pollThread.stopAndWait()
            let client = connection.client
            core.commit(client.pointer, synchronous: true)
            let err = rd_kafka_consumer_close(client.pointer)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                core.logger.warning("\(KafkaError(err, context: "closing the consumer"))")
            }
        }
    }
}
