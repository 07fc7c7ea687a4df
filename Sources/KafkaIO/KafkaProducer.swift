internal import CRdKafka
public import Logging

/// Sends records and awaits the broker's acknowledgement of each.
///
/// One `rd_kafka_t` producer handle, polled by a dedicated thread that runs delivery reports.
/// `send` suspends until the record is acknowledged (or definitively failed), so a caller can
/// commit its input only after its output is safe. Call `close()` before dropping the producer.
public final class KafkaProducer: Sendable {
    private let connection: ProducerConnection
    private let registry: DeliveryRegistry
    private let pollThread: PollThread
    private let logger: Logger

    public init(configuration: ProducerConfiguration, logger: Logger) throws {
        try Librdkafka.requireMinimumVersion()
        let registry = DeliveryRegistry(logger: logger)
        let connection = try ProducerConnection(properties: configuration.librdkafkaProperties, registry: registry)
        self.registry = registry
        self.connection = connection
        self.logger = logger
        self.pollThread = PollThread(name: "xray-producer-poll") { connection.pollOnce() }
    }

    deinit {
        pollThread.stopAndWait()
    }

    /// Makes the handle fail for good now (tests of the replacement; see `ProducerConnection`).
    func failHandleForTesting() { connection.failForTesting() }

    /// Sends one record and returns where the broker stored it. Throws a `KafkaError` if the
    /// record is refused (too large, unknown topic) or not acknowledged within the delivery
    /// timeout. Waits, without blocking a thread, while librdkafka's queue is full.
    ///
    /// An acknowledgement without an offset is not trusted: the idempotent producer reports a
    /// retry the broker calls a duplicate that way, and Tansu 0.6's S3 storage was seen to say
    /// so for a batch it lost in a SIGKILL (its offset then held nothing). Such a record is sent
    /// again (up to `unconfirmedResends` times): on a broker that did keep it, that makes a
    /// duplicate, which every reader of this system tolerates; on one that did not, it saves it.
    @discardableResult
    public func send(_ record: OutgoingRecord) async throws -> DeliveryReport {
        var resent = 0
        while true {
            let report = try await sendOnce(record)
            guard report.offset < 0, resent < Self.unconfirmedResends else { return report }
            resent += 1
            registry.logThrottled(.warning, key: "unconfirmed",
                                  "the broker acknowledged a record to \(report.topic)[\(report.partition)] without an offset (a retry it took for a duplicate); sending it again in case it was lost")
        }
    }

    /// How many times a record acknowledged without an offset is sent again.
    static let unconfirmedResends = 2

    private func sendOnce(_ record: OutgoingRecord) async throws -> DeliveryReport {
        while true {
            do {
                return try await withCheckedThrowingContinuation { continuation in
                    let id = registry.register(continuation)
                    if let error = enqueue(record, id: id) {
                        registry.resolve(id, .failure(error))
                    }
                }
            } catch let error as KafkaError where error.code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue {
                try await Task.sleep(for: .milliseconds(5))  // let librdkafka's queue drain
            } catch let error as KafkaError where error.isHandleFailure || error.isFatal {
                // The poll thread replaces a handle that failed for good within one poll.
                registry.logThrottled(.warning, key: "handle-failure", "producer: \(error); sending again on a new handle")
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Sends several records concurrently and returns when every one is acknowledged.
    /// Throws the first error; records already accepted are not recalled.
    /// The reports come in the records' order.
    @discardableResult
    public func sendAll(_ records: [OutgoingRecord]) async throws -> [DeliveryReport] {
        try await withThrowingTaskGroup(of: (Int, DeliveryReport).self) { group in
            for (index, record) in records.enumerated() {
                group.addTask { (index, try await self.send(record)) }
            }
            var reports = [DeliveryReport?](repeating: nil, count: records.count)
            for try await (index, report) in group { reports[index] = report }
            return reports.compactMap { $0 }
        }
    }

    /// Hands the record to librdkafka; returns an error if it was refused at once.
    private func enqueue(_ record: OutgoingRecord, id: UInt) -> KafkaError? {
        guard let headers = rd_kafka_headers_new(record.headers.count) else {
            return .local("OUT_OF_MEMORY", "could not allocate headers")
        }
        for header in record.headers {
            if let value = header.value {
                value.withUnsafeBytes { _ = rd_kafka_header_add(headers, header.name, -1, $0.baseAddress, $0.count) }
            } else {
                _ = rd_kafka_header_add(headers, header.name, -1, nil, 0)
            }
        }
        let error: OpaquePointer? = record.topic.withCString { topic in
            record.value.withUnsafeBytes { value in
                withOptionalBytes(record.key) { key in
                    var args = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 6)
                    args[0].vtype = RD_KAFKA_VTYPE_TOPIC
                    args[0].u.cstr = topic
                    args[1].vtype = RD_KAFKA_VTYPE_VALUE
                    args[1].u.mem = .init(ptr: UnsafeMutableRawPointer(mutating: value.baseAddress), size: value.count)
                    args[2].vtype = RD_KAFKA_VTYPE_KEY
                    args[2].u.mem = .init(ptr: UnsafeMutableRawPointer(mutating: key?.baseAddress), size: key?.count ?? 0)
                    args[3].vtype = RD_KAFKA_VTYPE_HEADERS
                    args[3].u.headers = headers
                    args[4].vtype = RD_KAFKA_VTYPE_OPAQUE
                    args[4].u.ptr = UnsafeMutableRawPointer(bitPattern: id)
                    args[5].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                    args[5].u.i = RD_KAFKA_MSG_F_COPY
                    var count = 6
                    if let partition = record.partition {
                        args.append(rd_kafka_vu_t())
                        args[6].vtype = RD_KAFKA_VTYPE_PARTITION
                        args[6].u.i32 = partition
                        count = 7
                    }
                    let client = connection.client
                    return withExtendedLifetime(client) { rd_kafka_produceva(client.pointer, &args, count) }
                }
            }
        }
        guard let error else { return nil }  // librdkafka now owns the headers
        rd_kafka_headers_destroy(headers)
        return KafkaError(consuming: error, context: "producing to \(record.topic)")
    }

    /// Waits until every record handed to librdkafka is acknowledged or failed.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        let ms = Int32(timeout.components.seconds * 1000)
        let err = await onDedicatedThread("xray-producer-flush") { [connection] in
            let client = connection.client
            return withExtendedLifetime(client) { rd_kafka_flush(client.pointer, ms) }
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, context: "flushing the producer (\(registry.pendingCount) records unacknowledged)")
        }
    }

    /// Flushes, then stops the poll thread. The producer must not be used afterwards.
    public func close(timeout: Duration = .seconds(30)) async {
        do { try await flush(timeout: timeout) } catch { logger.warning("\(error)") }
        await onDedicatedThread("xray-producer-close") { [pollThread] in pollThread.stopAndWait() }
    }
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}
