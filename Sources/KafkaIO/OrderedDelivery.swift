public import Logging

extension KafkaProducer {
    /// Sends `records` so that the last one is written after all the others are acknowledged
    /// (an announcement or commit after its chunks), retrying retriable failures with backoff
    /// until they succeed; a permanent refusal is thrown.
    /// Returns the delivery reports, in the records' order.
    @discardableResult
    public func sendInOrder(_ records: [OutgoingRecord], logger: Logger) async throws -> [DeliveryReport] {
        guard let last = records.last else { return [] }
        return try await retryingWhileBrokerAway("sending \(records.count) records to \(last.topic)", logger: logger) {
            try await sendAll(Array(records.dropLast())) + [try await send(last)]
        }
    }
}
