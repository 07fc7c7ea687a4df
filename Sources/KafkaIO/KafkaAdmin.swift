internal import CRdKafka
public import Logging

/// What a topic should look like on the cluster.
public struct TopicSettings: Sendable, Equatable {
    public var name: String
    public var partitions: Int
    /// -1 lets the broker use its default.
    public var replicationFactor: Int
    /// Topic configuration (`retention.ms`, `cleanup.policy`, `max.message.bytes`...).
    public var configs: [String: String]

    public init(name: String, partitions: Int, replicationFactor: Int = -1, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }
}

/// What `KafkaAdmin.apply` did to one topic.
public enum TopicChange: Sendable, Equatable, CustomStringConvertible {
    case created(partitions: Int)
    case unchanged
    case updated([String])
    public var description: String {
        switch self {
        case .created(let n): "created with \(n) partitions"
        case .unchanged: "up to date"
        case .updated(let what): "updated: " + what.joined(separator: "; ")
        }
    }
}

/// Creates and updates topics. Every request runs on a dedicated thread.
public final class KafkaAdmin: Sendable {
    let client: RDKafkaClient
    private let callbacks: ClientCallbacks
    let timeoutMilliseconds: Int32 = 15_000

    public init(configuration: KafkaConfiguration, logger: Logger) throws {
        try Librdkafka.requireMinimumVersion()
        var properties = configuration.baseProperties.merging(configuration.properties) { _, o in o }
        properties["client.id"] = configuration.clientID + "-admin"
        let callbacks = ClientCallbacks(logger: logger, role: "admin")
        self.callbacks = callbacks
        self.client = try RDKafkaClient(kind: RD_KAFKA_PRODUCER, properties: properties) { conf in
            RDKafkaClient.installCommonCallbacks(conf, target: callbacks)
        }
    }

    /// Partition counts of existing topics (all of them when `topics` is nil).
    public func partitionCounts(topics: [String]? = nil) async throws -> [String: Int] {
        try await blocking { [client, timeoutMilliseconds] in
            try client.partitionCounts(topics: topics, timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    /// Makes each topic match its settings: creates missing topics, adds partitions to topics
    /// with fewer (Kafka cannot remove partitions: fewer wanted is reported, not changed), and
    /// sets the configs that differ. Configs a broker does not report are set anyway.
    public func apply(_ topics: [TopicSettings]) async throws -> [String: TopicChange] {
        let existing = try await partitionCounts(topics: nil)
        var changes: [String: TopicChange] = [:]
        for topic in topics {
            guard let current = existing[topic.name] else {
                try await create(topic)
                changes[topic.name] = .created(partitions: topic.partitions)
                continue
            }
            var done: [String] = []
            if current < topic.partitions {
                try await addPartitions(topic.name, total: topic.partitions)
                done.append("partitions \(current) → \(topic.partitions)")
            } else if current > topic.partitions {
                done.append("has \(current) partitions, more than the \(topic.partitions) wanted (left as is)")
            }
            let actual = (try? await describeConfigs(topic.name)) ?? [:]
            let differing = topic.configs.filter { actual[$0.key] != $0.value }
            if !differing.isEmpty {
                try await alterConfigs(topic.name, topic.configs)
                done += differing.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            }
            changes[topic.name] = done.isEmpty ? .unchanged : .updated(done)
        }
        return changes
    }

    /// Creates one topic.
    public func create(_ topic: TopicSettings) async throws {
        try await blocking { [client, timeoutMilliseconds] in
            var errstr = [CChar](repeating: 0, count: 512)
            guard let newTopic = rd_kafka_NewTopic_new(topic.name, Int32(topic.partitions),
                                                       Int32(topic.replicationFactor), &errstr, errstr.count) else {
                throw KafkaError.local("INVALID_TOPIC", "\(topic.name): \(String(nulTerminated: errstr))")
            }
            defer { rd_kafka_NewTopic_destroy(newTopic) }
            for (key, value) in topic.configs { rd_kafka_NewTopic_set_config(newTopic, key, value) }
            try Self.request(client, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeoutMilliseconds,
                             issue: { rk, options, queue in
                                 var topics: [OpaquePointer?] = [newTopic]
                                 rd_kafka_CreateTopics(rk, &topics, 1, options, queue)
                             },
                             check: { event in
                                 var count = 0
                                 let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
                                 try Self.checkTopicResults(results, count, "creating \(topic.name)")
                             })
        }
    }

    /// Raises a topic's partition count to `total`.
    public func addPartitions(_ name: String, total: Int) async throws {
        try await blocking { [client, timeoutMilliseconds] in
            var errstr = [CChar](repeating: 0, count: 512)
            guard let request = rd_kafka_NewPartitions_new(name, total, &errstr, errstr.count) else {
                throw KafkaError.local("INVALID_PARTITIONS", "\(name): \(String(nulTerminated: errstr))")
            }
            defer { rd_kafka_NewPartitions_destroy(request) }
            try Self.request(client, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, timeoutMilliseconds,
                             issue: { rk, options, queue in
                                 var list: [OpaquePointer?] = [request]
                                 rd_kafka_CreatePartitions(rk, &list, 1, options, queue)
                             },
                             check: { event in
                                 var count = 0
                                 let results = rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(event), &count)
                                 try Self.checkTopicResults(results, count, "adding partitions to \(name)")
                             })
        }
    }

    /// The topic's configuration as the broker reports it.
    public func describeConfigs(_ name: String) async throws -> [String: String] {
        try await blocking { [client, timeoutMilliseconds] in
            guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name) else {
                throw KafkaError.local("INVALID_ARG", "cannot ask for the configs of topic \(name)")
            }
            defer { rd_kafka_ConfigResource_destroy(resource) }
            var configs: [String: String] = [:]
            try Self.request(client, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeoutMilliseconds,
                             issue: { rk, options, queue in
                                 var list: [OpaquePointer?] = [resource]
                                 rd_kafka_DescribeConfigs(rk, &list, 1, options, queue)
                             },
                             check: { event in
                                 var count = 0
                                 let resources = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &count)
                                 guard count > 0, let r = resources?[0] else { return }
                                 let err = rd_kafka_ConfigResource_error(r)
                                 if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "describing \(name)") }
                                 var entryCount = 0
                                 let entries = rd_kafka_ConfigResource_configs(r, &entryCount)
                                 for i in 0..<entryCount {
                                     guard let e = entries?[i], let value = rd_kafka_ConfigEntry_value(e) else { continue }
                                     configs[String(cString: rd_kafka_ConfigEntry_name(e))] = String(cString: value)
                                 }
                             })
            return configs
        }
    }

    /// Sets topic configs (AlterConfigs replaces the set configs; unnamed ones return to defaults).
    public func alterConfigs(_ name: String, _ configs: [String: String]) async throws {
        try await blocking { [client, timeoutMilliseconds] in
            guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name) else {
                throw KafkaError.local("INVALID_ARG", "cannot set the configs of topic \(name)")
            }
            defer { rd_kafka_ConfigResource_destroy(resource) }
            for (key, value) in configs { rd_kafka_ConfigResource_set_config(resource, key, value) }
            try Self.request(client, RD_KAFKA_ADMIN_OP_ALTERCONFIGS, timeoutMilliseconds,
                             issue: { rk, options, queue in
                                 var list: [OpaquePointer?] = [resource]
                                 rd_kafka_AlterConfigs(rk, &list, 1, options, queue)
                             },
                             check: { event in
                                 var count = 0
                                 let resources = rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(event), &count)
                                 guard count > 0, let r = resources?[0] else { return }
                                 let err = rd_kafka_ConfigResource_error(r)
                                 if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                                     let text = rd_kafka_ConfigResource_error_string(r).map { String(cString: $0) } ?? ""
                                     throw KafkaError(err, context: "setting configs of \(name) \(text)")
                                 }
                             })
        }
    }

    /// Deletes topics (used by tests and tear-down tools).
    public func delete(_ names: [String]) async throws {
        try await blocking { [client, timeoutMilliseconds] in
            let requests = names.map { rd_kafka_DeleteTopic_new($0) }
            defer { requests.forEach { rd_kafka_DeleteTopic_destroy($0) } }
            try Self.request(client, RD_KAFKA_ADMIN_OP_DELETETOPICS, timeoutMilliseconds,
                             issue: { rk, options, queue in
                                 var list = requests
                                 rd_kafka_DeleteTopics(rk, &list, list.count, options, queue)
                             },
                             check: { event in
                                 var count = 0
                                 let results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event), &count)
                                 try Self.checkTopicResults(results, count, "deleting topics")
                             })
        }
    }

    // MARK: Plumbing

    func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await onDedicatedThread("xray-admin") { Result { try body() } }.get()
    }

    /// Issues one admin request on a private queue and waits for its result event.
    static func request(_ client: RDKafkaClient, _ op: rd_kafka_admin_op_t, _ timeoutMilliseconds: Int32,
                        issue: (OpaquePointer, OpaquePointer?, OpaquePointer) -> Void,
                        check: (OpaquePointer) throws -> Void) throws {
        try requests(client, op, timeoutMilliseconds, count: 1, issue: { rk, options, queue, _ in issue(rk, options, queue) },
                     answer: { _, event in try check(event.get()) })
    }

    /// Issues `count` admin requests at once on one private queue, each with options of its own
    /// that carry its index, and hands each result event to `answer` with that index as it
    /// arrives, or the request's error when it failed as a whole. So many requests cost about
    /// one round trip, not one each. Throws when they are not all answered in time.
    static func requests(_ client: RDKafkaClient, _ op: rd_kafka_admin_op_t, _ timeoutMilliseconds: Int32, count: Int,
                         issue: (OpaquePointer, OpaquePointer?, OpaquePointer, Int) throws -> Void,
                         answer: (Int, Result<OpaquePointer, KafkaError>) throws -> Void) throws {
        guard let queue = rd_kafka_queue_new(client.pointer) else {
            throw KafkaError.local("QUEUE", "cannot make a queue for the answers to admin requests")
        }
        defer { rd_kafka_queue_destroy(queue) }
        for index in 0..<count {
            let options = rd_kafka_AdminOptions_new(client.pointer, op)
            defer { rd_kafka_AdminOptions_destroy(options) }
            var errstr = [CChar](repeating: 0, count: 512)
            _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMilliseconds, &errstr, errstr.count)
            rd_kafka_AdminOptions_set_opaque(options, UnsafeMutableRawPointer(bitPattern: index + 1))
            try issue(client.pointer, options, queue, index)
        }
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutMilliseconds) + 2_000)
        for answered in 0..<count {
            let left = max(0, (deadline - ContinuousClock.now) / .milliseconds(1))
            guard let event = rd_kafka_queue_poll(queue, Int32(clamping: Int(left))) else {
                throw KafkaError.local("ADMIN_TIMEOUT", "the broker did not answer \(count - answered) of \(count) admin "
                                       + "requests in time; is it running?")
            }
            defer { rd_kafka_event_destroy(event) }
            let index = rd_kafka_event_opaque(event).map { Int(bitPattern: $0) - 1 } ?? 0
            let err = rd_kafka_event_error(event)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                try answer(index, .failure(KafkaError(err, context: rd_kafka_event_error_string(event).map { String(cString: $0) })))
            } else {
                try answer(index, .success(event))
            }
        }
    }

    private static func checkTopicResults(_ results: UnsafeMutablePointer<OpaquePointer?>?, _ count: Int,
                                          _ what: String) throws {
        for i in 0..<count {
            guard let r = results?[i] else { continue }
            let err = rd_kafka_topic_result_error(r)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                let text = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? ""
                throw KafkaError(err, context: "\(what) (\(String(cString: rd_kafka_topic_result_name(r)))) \(text)")
            }
        }
    }
}

/// The log and error callback target of a client that has no other callbacks (the admin).
final class ClientCallbacks: RDKafkaCallbackTarget {
    let logger: Logger
    let throttle = LogThrottle()
    private let role: String
    init(logger: Logger, role: String) {
        self.logger = logger
        self.role = role
    }
    func clientError(_ error: KafkaError) {
        if error.isFatal {
            logger.critical("\(role) failed: \(error)")
        } else {
            logThrottled(.warning, key: "error/\(error.name)", "\(role): \(error)")
        }
    }
}
