internal import CRdKafka
import Synchronization

/// The librdkafka handle a consumer polls now, and how to open another in its place.
///
/// A consumer reconnects when it stalls (see `StallWatch`): the poll thread closes the handle
/// (committing what is done and leaving the group, or noting where each partition's reading
/// stands) and opens a new one with a longer fetch wait, subscribed or assigned as before.
/// Other threads take `client` for a moment (lag, watermarks); the handle they hold stays
/// valid, if closed, until they let it go.
final class ConsumerConnection: Sendable {
    let configuration: ConsumerConfiguration
    let subscription: KafkaConsumer.Subscription
    private let current: Mutex<RDKafkaClient>
    private let wait: Mutex<FetchWait>

    var isGroup: Bool {
        if case .group = subscription { return true }
        return false
    }

    /// Opens the first handle.
    init(configuration: ConsumerConfiguration, subscription: KafkaConsumer.Subscription, core: ConsumerCore) throws {
        self.configuration = configuration
        self.subscription = subscription
        // A -X fetch.wait.max.ms wins over the typed setting, as every -X property does.
        let initial = configuration.kafka.properties["fetch.wait.max.ms"].flatMap(Int.init) ?? configuration.fetchWaitMaxMilliseconds
        let wait = FetchWait(milliseconds: initial, maximum: configuration.maxFetchWaitMilliseconds)
        self.wait = Mutex(wait)
        current = Mutex(try Self.open(configuration, subscription, core: core, fetchWait: wait.milliseconds, resumeAt: [:]))
    }

    /// The handle now. Hold it only for a call or two.
    var client: RDKafkaClient { current.withLock { $0 } }

    /// The fetch wait the handle now uses (`fetch.wait.max.ms`).
    var fetchWaitMilliseconds: Int { wait.withLock { $0.milliseconds } }

    /// On the poll thread: closes the handle and opens another, with a longer fetch wait if
    /// `raisingWait` (then nil, changing nothing, once the wait is at its maximum); returns the
    /// new handle's wait. `resumeAt` gives, for a consumer outside a group, where each
    /// partition's reading goes on.
    func reconnect(core: ConsumerCore, resumeAt: [TopicPartition: Int64], raisingWait: Bool) throws -> Int? {
        guard let longer = raisingWait ? wait.withLock({ $0.raise() }) : wait.withLock({ $0.milliseconds }) else { return nil }
        let old = client
        let fresh: RDKafkaClient
        if isGroup {
            core.commit(old.pointer, synchronous: true)
            // Runs the revoke callback here (this is the poll thread): the partitions are
            // forgotten, their buffered records dropped; the group hands them out again. The
            // old member leaves before the new one joins (a join racing the leave was seen to
            // leave the new member without partitions on Tansu).
            let err = rd_kafka_consumer_close(old.pointer)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { core.logger.warning("\(KafkaError(err, context: "closing the stalled handle"))") }
            fresh = try Self.open(configuration, subscription, core: core, fetchWait: longer, resumeAt: resumeAt)
        } else {
            // The new handle first, asking the broker nothing (it keeps the partitions it has),
            // so a broker away at this moment cannot leave the consumer without one.
            let partitions = core.state.withLock { Array($0.tracker.assigned) }
            fresh = try Self.open(configuration, subscription, core: core, fetchWait: longer, resumeAt: resumeAt, partitions: partitions)
            _ = rd_kafka_consumer_close(old.pointer)
        }
        current.withLock { $0 = fresh }
        return longer
    }

    /// A new handle for `subscription` with `fetchWait`, its callbacks pointing at `core`. A
    /// whole topic is assigned `partitions`, or without them every partition the cluster's
    /// metadata lists (which needs the broker).
    private static func open(_ configuration: ConsumerConfiguration, _ subscription: KafkaConsumer.Subscription, core: ConsumerCore,
                             fetchWait: Int, resumeAt: [TopicPartition: Int64], partitions: [TopicPartition]? = nil) throws -> RDKafkaClient {
        var properties = configuration.librdkafkaProperties
        properties["fetch.wait.max.ms"] = String(fetchWait)
        let inGroup: Bool
        if case .group = subscription { inGroup = true } else { inGroup = false }
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
            guard let list = rd_kafka_topic_partition_list_new(Int32(topics.count)) else {
                throw KafkaError.local("OUT_OF_MEMORY", "could not allocate a partition list")
            }
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
            let err = rd_kafka_subscribe(client.pointer, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "subscribing to \(topics)") }
        case .wholeTopic(let topic, let fromBeginning):
            // librdkafka wants a group.id even for assign(); without a subscription it joins nothing.
            var tps = partitions ?? []
            if partitions == nil {
                let counts = try client.partitionCounts(topics: [topic], timeoutMilliseconds: 10_000)
                guard let count = counts[topic], count > 0 else {
                    throw KafkaError.local("UNKNOWN_TOPIC", "topic \(topic) does not exist; create it with `xray topics apply`")
                }
                tps = (0..<Int32(clamping: count)).map { TopicPartition(topic, $0) }
            }
            guard let list = rd_kafka_topic_partition_list_new(Int32(clamping: max(tps.count, 1))) else {
                throw KafkaError.local("OUT_OF_MEMORY", "could not allocate a partition list")
            }
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for tp in tps {
                rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset =
                    resumeAt[tp] ?? (fromBeginning ? Int64(RD_KAFKA_OFFSET_BEGINNING) : Int64(RD_KAFKA_OFFSET_END))
            }
            core.state.withLock { $0.tracker.assign(tps) }
            let err = rd_kafka_assign(client.pointer, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assigning \(topic)") }
        case .partitions(let offsets):
            guard let list = rd_kafka_topic_partition_list_new(Int32(clamping: max(offsets.count, 1))) else {
                throw KafkaError.local("OUT_OF_MEMORY", "could not allocate a partition list")
            }
            defer { rd_kafka_topic_partition_list_destroy(list) }
            let tps = partitions ?? Array(offsets.keys)
            for tp in tps {
                rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = resumeAt[tp] ?? offsets[tp] ?? Int64(RD_KAFKA_OFFSET_END)
            }
            core.state.withLock { $0.tracker.assign(tps) }
            let err = rd_kafka_assign(client.pointer, list)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assigning \(tps)") }
        }
        return client
    }
}
