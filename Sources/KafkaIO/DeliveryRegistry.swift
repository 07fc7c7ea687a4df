import Logging
import Synchronization

/// The producer's side of librdkafka's callbacks: waiting senders by message id, and the
/// client errors seen. librdkafka calls in on the producer's poll thread.
final class DeliveryRegistry: RDKafkaCallbackTarget {
    let logger: Logger
    let throttle = LogThrottle()
    private struct State {
        var nextID: UInt = 1
        var waiting: [UInt: CheckedContinuation<DeliveryReport, any Error>] = [:]
    }
    private let state = Mutex(State())

    init(logger: Logger) { self.logger = logger }

    /// Registers a sender and returns the id that travels as the message's opaque.
    func register(_ continuation: CheckedContinuation<DeliveryReport, any Error>) -> UInt {
        state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.waiting[id] = continuation
            return id
        }
    }

    /// Resolves the sender waiting on `id` (once; later calls for the same id do nothing).
    func resolve(_ id: UInt, _ result: Result<DeliveryReport, KafkaError>) {
        let continuation = state.withLock { $0.waiting.removeValue(forKey: id) }
        continuation?.resume(with: result.mapError { $0 as any Error })
    }

    var pendingCount: Int { state.withLock { $0.waiting.count } }

    func clientError(_ error: KafkaError) {
        if error.isFatal {
            logger.critical("producer failed: \(error)")
        } else {
            logThrottled(.warning, key: "error/\(error.name)", "producer: \(error)")
        }
    }
}
