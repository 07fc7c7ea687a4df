public import Logging

/// Runs `operation` until it returns, trying again after each retriable `KafkaError` (a broker
/// away or restarting, a coordinator moving, a metadata request timed out) with a pause that
/// doubles from 0.2 s to 5 s. Any other error, and cancellation, ends it. Logs the first
/// failure and every tenth, and `onRetry` sees each one (for a counter).
///
/// For what a running stage must get done however long the broker is away (the records it
/// sends, the topics it reads before it acts); a command-line tool had better fail and say so.
public func retryingWhileBrokerAway<T>(_ what: String, logger: Logger, onRetry: () -> Void = {},
                                       _ operation: () async throws -> T) async throws -> T {
    var attempt = 0
    while true {
        do {
            return try await operation()
        } catch let error as KafkaError where error.isRetriable {
            attempt += 1
            onRetry()
            if attempt == 1 || attempt % 10 == 0 { logger.warning("\(what) failed (attempt \(attempt)), trying again: \(error)") }
            try await Task.sleep(for: .milliseconds(min(100 << min(attempt, 6), 5_000)))
        }
    }
}
