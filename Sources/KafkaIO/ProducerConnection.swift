internal import CRdKafka
import Synchronization

/// The producer's librdkafka handle, replaced when it fails for good.
///
/// An idempotent producer whose sequence numbers the broker no longer recognises (Tansu's S3
/// storage, restarted after a SIGKILL, forgot them) raises a fatal error, after which the handle
/// refuses every record. The poll thread then opens a new handle (a new producer id), purges
/// the old one and serves its delivery reports, so its waiting senders fail with an error that
/// says "send again", which `KafkaProducer` does. Records already written may be written
/// twice: at-least-once, as everywhere in this system.
///
/// A replaced handle is kept, not destroyed, until the producer itself goes: a sender or the
/// test hook may still be in a call on it, and librdkafka locks a destroyed handle's mutexes
/// (seen once under the full suite: glibc's `tpp.c` assertion, the signature of locking a
/// destroyed mutex, right after a replacement). Replacements are rare (a broker that forgot the
/// producer), so the kept handles stay few.
final class ProducerConnection: Sendable {
    private let properties: [String: String]
    private let registry: DeliveryRegistry
    private let current: Mutex<RDKafkaClient>
    private let retired = Mutex<[RDKafkaClient]>([])

    init(properties: [String: String], registry: DeliveryRegistry) throws {
        self.properties = properties
        self.registry = registry
        current = Mutex(try Self.open(properties, registry))
    }

    /// The handle now. Hold it only for a call or two.
    var client: RDKafkaClient { current.withLock { $0 } }

    /// Raises a fatal error on the handle now, as a broker that forgot the producer's sequence
    /// numbers would (librdkafka's test hook), for tests of the replacement.
    func failForTesting() {
        let client = client
        withExtendedLifetime(client) {
            _ = rd_kafka_test_fatal_error(client.pointer, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "simulated by a test")
        }
    }

    /// One turn of the poll thread: a replacement if the handle failed for good, then a poll.
    /// (Only the handle's own fatal state decides: a sender that sees a purge error must not
    /// ask for another replacement, or each would purge the records the last one resent.)
    func pollOnce() {
        var client = client
        if withExtendedLifetime(client, { rd_kafka_fatal_error(client.pointer, nil, 0) }) != RD_KAFKA_RESP_ERR_NO_ERROR {
            replace()
            client = self.client
        }
        withExtendedLifetime(client) { _ = rd_kafka_poll(client.pointer, 100) }
    }

    private func replace() {
        let old = client
        let fresh: RDKafkaClient
        do {
            fresh = try Self.open(properties, registry)
        } catch {
            registry.logThrottled(.error, key: "replace", "producer: cannot open a new handle in place of the failed one: \(error); trying again")
            return
        }
        current.withLock { $0 = fresh }
        // Fail what the old handle still holds, and serve those delivery reports here: the
        // senders see a purge error and send again on the new handle.
        _ = rd_kafka_purge(old.pointer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT)
        for _ in 0..<50 where rd_kafka_outq_len(old.pointer) > 0 { rd_kafka_poll(old.pointer, 100) }
        retired.withLock { $0.append(old) }
        registry.logger.warning("producer: replaced the failed handle with a new one; records it held are sent again")
    }

    private static func open(_ properties: [String: String], _ registry: DeliveryRegistry) throws -> RDKafkaClient {
        try RDKafkaClient(kind: RD_KAFKA_PRODUCER, properties: properties) { conf in
            RDKafkaClient.installCommonCallbacks(conf, target: registry)
            rd_kafka_conf_set_dr_msg_cb(conf, producerDeliveryCallback)
        }
    }
}

/// librdkafka's delivery report: resolves the sender waiting on the message's opaque id. A
/// failure on a handle that failed for good, or a purge when it is replaced, is marked to be
/// sent again (`KafkaError.isHandleFailure`). Runs on the producer's poll thread.
let producerDeliveryCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
    rk, message, opaque in
    guard let message, let opaque else { return }
    let registry = Unmanaged<DeliveryRegistry>.fromOpaque(opaque).takeUnretainedValue()
    let id = UInt(bitPattern: message.pointee._private)
    let m = message.pointee
    if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        registry.logger.trace("acknowledged \(topic)[\(m.partition)]@\(m.offset)")
        registry.resolve(id, .success(DeliveryReport(topic: topic, partition: m.partition, offset: m.offset)))
    } else {
        var error = KafkaError(m.err, context: "delivery failed")
        let fatal = rk.map { rd_kafka_fatal_error($0, nil, 0) != RD_KAFKA_RESP_ERR_NO_ERROR } ?? false
        if fatal || m.err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m.err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT {
            error = error.asHandleFailure
        }
        registry.resolve(id, .failure(error))
    }
}
