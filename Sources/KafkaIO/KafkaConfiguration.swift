/// Where the cluster is and how to talk to it: the settings every client shares.
///
/// Typed fields cover what XRayStream relies on; `properties` is the escape hatch for any
/// librdkafka setting (what `-X key=value` fills on the command line, as in kcat). A property
/// given there wins over the value the typed fields imply.
public struct KafkaConfiguration: Sendable {
    /// Comma-separated `host:port` list (`bootstrap.servers`).
    public var brokers: String
    /// `client.id`, shown in broker logs and metrics.
    public var clientID: String
    /// Raw librdkafka properties, applied last.
    public var properties: [String: String]

    /// The default broker list when neither `--brokers` nor `XRAY_BROKERS` says otherwise.
    public static let defaultBrokers = "127.0.0.1:9092"

    public init(brokers: String = KafkaConfiguration.defaultBrokers, clientID: String = "xray",
                properties: [String: String] = [:]) {
        self.brokers = brokers
        self.clientID = clientID
        self.properties = properties
    }

    /// The properties every client gets before the role's own and the overrides.
    var baseProperties: [String: String] {
        ["bootstrap.servers": brokers, "client.id": clientID,
         // Records up to the largest topic limit (see Topics/) must pass the client.
         "receive.message.max.bytes": "134217728"]
    }
}

/// Settings of a producer.
public struct ProducerConfiguration: Sendable {
    public var kafka: KafkaConfiguration
    /// The largest record this producer may send (`message.max.bytes`).
    public var maxRecordBytes: Int = 64 << 20
    /// How long to wait to fill a batch (`linger.ms`); small keeps triage latency low.
    public var lingerMilliseconds: Int = 2
    /// Idempotent delivery: retries never duplicate or reorder within a partition.
    public var idempotent: Bool = true
    /// How long a record may wait for acknowledgement before its send fails (`message.timeout.ms`).
    public var deliveryTimeoutMilliseconds: Int = 60_000

    public init(kafka: KafkaConfiguration) { self.kafka = kafka }

    var librdkafkaProperties: [String: String] {
        var p = kafka.baseProperties
        p["message.max.bytes"] = String(maxRecordBytes)
        p["linger.ms"] = String(lingerMilliseconds)
        p["enable.idempotence"] = idempotent ? "true" : "false"
        p["message.timeout.ms"] = String(deliveryTimeoutMilliseconds)
        p["acks"] = "all"
        return p.merging(kafka.properties) { _, override in override }
    }
}

/// How a consumer's group shares partitions between its members.
public enum AssignmentStrategy: String, Sendable, CaseIterable {
    /// Stop-the-world: every member gives up everything and gets a new assignment (range).
    case eager = "range"
    /// Incremental: members keep what they have and move only what must move.
    case cooperativeSticky = "cooperative-sticky"
}

/// Settings of a consumer.
public struct ConsumerConfiguration: Sendable {
    public var kafka: KafkaConfiguration
    /// The consumer group; stages default to their own name.
    public var groupID: String
    public var assignmentStrategy: AssignmentStrategy = .cooperativeSticky
    /// A member that sends no heartbeat for this long is removed from the group.
    public var sessionTimeoutMilliseconds: Int = 6_000
    /// Where a group with no committed offset starts.
    public var startAtEarliest: Bool = true
    /// How long the broker may hold a fetch waiting for data. Low keeps latency low on a broker
    /// that holds a fetch its full wait (Tansu: 10 ms gives 5 ms per hop, 500 ms about 90);
    /// too low and a broker that needs longer to read (Tansu's S3 storage after a restart)
    /// answers every fetch empty. 100 ms serves both (measured: p50 6 ms, p95 52 ms per hop on
    /// Tansu's memory storage); a stalled consumer raises its wait by itself.
    public var fetchWaitMaxMilliseconds: Int = 100
    /// The longest fetch wait a stalled consumer raises its wait to (×4 per stall).
    public var maxFetchWaitMilliseconds: Int = 2_000
    /// A consumer with records waiting on the broker that receives none for this long (and is
    /// not paused because its stage is busy) is stalled: it says so (log and
    /// `xray_consumer_stalled_seconds`) and reconnects with a longer fetch wait.
    public var stallAfterMilliseconds: Int = 30_000
    /// Records fetched but not yet taken by the application; past this the consumer pauses
    /// its partitions, and resumes at half. This bounds memory when the stage is slow.
    public var maxBufferedRecords: Int = 32
    /// How often completed offsets are committed (and always on revoke and close).
    public var commitIntervalMilliseconds: Int = 1_000

    public init(kafka: KafkaConfiguration, groupID: String) {
        self.kafka = kafka
        self.groupID = groupID
    }

    var librdkafkaProperties: [String: String] {
        var p = kafka.baseProperties
        p["group.id"] = groupID
        p["partition.assignment.strategy"] = assignmentStrategy.rawValue
        p["session.timeout.ms"] = String(sessionTimeoutMilliseconds)
        p["heartbeat.interval.ms"] = String(max(sessionTimeoutMilliseconds / 6, 100))
        p["auto.offset.reset"] = startAtEarliest ? "earliest" : "latest"
        p["fetch.wait.max.ms"] = String(fetchWaitMaxMilliseconds)
        // Offsets are committed by this layer, and only for records whose output was acknowledged.
        p["enable.auto.commit"] = "false"
        p["enable.auto.offset.store"] = "false"
        p["enable.partition.eof"] = "false"
        // Keep librdkafka's own prefetch small: our buffer is the backpressure point.
        p["queued.max.messages.kbytes"] = "16384"
        return p.merging(kafka.properties) { _, override in override }
    }
}
