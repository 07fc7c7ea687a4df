/// One Kafka record header. Kafka allows several headers with one name, and null values.
public struct KafkaHeader: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]?

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ text: String) {
        self.init(name: name, value: Array(text.utf8))
    }

    /// The value as UTF-8 text, if it is valid UTF-8.
    public var text: String? {
        value.flatMap { String(validating: $0, as: UTF8.self) }
    }
}

extension Array where Element == KafkaHeader {
    /// The text value of the last header with this name (later headers override earlier ones).
    public func text(_ name: String) -> String? {
        last { $0.name == name }?.text
    }
}

/// A record read from a topic.
public struct KafkaRecord: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch (create or log-append time), if the broker gave one.
    public var timestampMilliseconds: Int64?
    /// Which assignment of its partition this record came from; completions from an earlier
    /// assignment (before a rebalance took the partition away) must not be committed.
    let assignmentGeneration: UInt64

    public init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8],
                headers: [KafkaHeader], timestampMilliseconds: Int64? = nil) {
        self.init(topic: topic, partition: partition, offset: offset, key: key, value: value,
                  headers: headers, timestampMilliseconds: timestampMilliseconds, generation: 0)
    }

    init(topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8],
         headers: [KafkaHeader], timestampMilliseconds: Int64?, generation: UInt64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
        self.assignmentGeneration = generation
    }

    /// The key as UTF-8 text, if present and valid.
    public var keyText: String? { key.flatMap { String(validating: $0, as: UTF8.self) } }
}

/// A record to send.
public struct OutgoingRecord: Sendable {
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// A fixed partition; nil lets the partitioner choose from the key.
    public var partition: Int32?

    public init(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = [],
                partition: Int32? = nil) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
    }

    public init(topic: String, key: String, value: [UInt8], headers: [KafkaHeader] = []) {
        self.init(topic: topic, key: Array(key.utf8), value: value, headers: headers)
    }
}

/// Where the broker stored an acknowledged record.
public struct DeliveryReport: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
}

/// A topic and one of its partitions.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}
