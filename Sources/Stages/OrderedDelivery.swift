public import KafkaIO
public import Logging

extension KafkaProducer {
    /// Sends `records` so that the last one is written after all the others are acknowledged
    /// (an announcement or commit after its chunks), retrying retriable failures with backoff
    /// until they succeed; a permanent refusal is thrown.
    public func sendInOrder(_ records: [OutgoingRecord], logger: Logger) async throws {
        guard let last = records.last else { return }
        var attempt = 0
        while true {
            do {
                try await sendAll(Array(records.dropLast()))
                try await send(last)
                return
            } catch let error as KafkaError where error.isRetriable {
                attempt += 1
                if attempt == 1 || attempt % 10 == 0 { logger.warning("send failed (attempt \(attempt)), retrying: \(error)") }
                try await Task.sleep(for: .milliseconds(min(100 << min(attempt, 6), 5_000)))
            }
        }
    }
}
