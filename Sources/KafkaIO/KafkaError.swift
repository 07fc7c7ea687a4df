internal import CRdKafka

/// An error from the Kafka layer: what went wrong, whether trying again may help, and whether
/// the client is unusable. Operators read `description`; code branches on `isRetriable`.
public struct KafkaError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The librdkafka error code (`rd_kafka_resp_err_t`), or 0 for errors raised by this layer.
    public let code: Int32
    /// librdkafka's name for the code (`_MSG_TIMED_OUT`, `UNKNOWN_TOPIC_OR_PART`...), or the layer's own.
    public let name: String
    /// What happened and, where it helps, what to do about it.
    public let message: String
    /// Trying the same operation again may succeed (a broker away, a leader election, a full queue).
    public let isRetriable: Bool
    /// The client cannot go on and must be recreated.
    public let isFatal: Bool
    /// The record failed because its producer handle failed for good (or was purged when it
    /// was replaced), not because of the record: send it again on the new handle.
    public private(set) var isHandleFailure = false

    public var description: String { "\(name): \(message)" }

    init(code: Int32, name: String, message: String, isRetriable: Bool, isFatal: Bool = false) {
        self.code = code
        self.name = name
        self.message = message
        self.isRetriable = isRetriable
        self.isFatal = isFatal
    }

    /// The same error, marked as a failure of the producer handle (`isHandleFailure`).
    var asHandleFailure: KafkaError {
        var copy = self
        copy.isHandleFailure = true
        return copy
    }

    /// An error raised by this layer (configuration, usage), never retriable.
    static func local(_ name: String, _ message: String) -> KafkaError {
        KafkaError(code: 0, name: name, message: message, isRetriable: false)
    }

    /// Wraps a librdkafka response code, with optional context prepended to its text.
    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        let text = String(cString: rd_kafka_err2str(err))
        let name = String(cString: rd_kafka_err2name(err))
        self.init(code: err.rawValue, name: name,
                  message: context.map { "\($0): \(text)" } ?? text,
                  isRetriable: KafkaError.retriableCodes.contains(err.rawValue) || KafkaError.retriableNames.contains(name))
    }

    /// Takes ownership of an `rd_kafka_error_t` (destroys it) and wraps it.
    init(consuming error: OpaquePointer, context: String? = nil) {
        let err = rd_kafka_error_code(error)
        let text = String(cString: rd_kafka_error_string(error))
        self.init(code: err.rawValue, name: String(cString: rd_kafka_err2name(err)),
                  message: context.map { "\($0): \(text)" } ?? text,
                  isRetriable: rd_kafka_error_is_retriable(error) != 0
                      || KafkaError.retriableCodes.contains(err.rawValue),
                  isFatal: rd_kafka_error_is_fatal(error) != 0)
        rd_kafka_error_destroy(error)
    }

    /// Retriable codes newer than the librdkafka headers this builds against (Debian's 2.0),
    /// known by name at run time: `_DESTROY_BROKER` (a connection torn down mid-request,
    /// as when the broker dies).
    private static let retriableNames: Set<String> = ["_DESTROY_BROKER"]

    private static let retriableCodes: Set<Int32> = [
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
        RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        // The client's own "unknown partition": its metadata, stale after a broker restart,
        // lacks the partition yet (an aggregator's heads read ended with it in a CI run).
        RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
    ].reduce(into: []) { $0.insert($1.rawValue) }
}
