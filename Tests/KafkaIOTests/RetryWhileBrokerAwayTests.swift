import Logging
import Testing
@testable import KafkaIO

@Suite("Retrying while the broker is away")
struct RetryWhileBrokerAwayTests {
    let logger = Logger(label: "test")

    @Test("retriable errors are tried again until the operation succeeds, each one seen")
    func retriesUntilSuccess() async throws {
        var attempts = 0, retries = 0
        let value = try await retryingWhileBrokerAway("reading", logger: logger, onRetry: { retries += 1 }) { () async throws -> Int in
            attempts += 1
            if attempts < 3 { throw KafkaError.local("_TRANSPORT", "away").retriable }
            return 42
        }
        #expect(value == 42 && attempts == 3 && retries == 2)
    }

    @Test("an error that is not retriable ends it at once")
    func otherErrorsEndIt() async {
        var attempts = 0
        await #expect(throws: KafkaError.self) {
            try await retryingWhileBrokerAway("reading", logger: logger) { () async throws -> Int in
                attempts += 1
                throw KafkaError.local("UNKNOWN_TOPIC", "no such topic")
            }
        }
        #expect(attempts == 1)
    }

    @Test("cancellation ends the waiting")
    func cancellationEndsIt() async {
        let task = Task {
            try await retryingWhileBrokerAway("reading", logger: logger) { () async throws -> Int in
                throw KafkaError.local("_TRANSPORT", "away").retriable
            }
        }
        try? await Task.sleep(for: .milliseconds(300))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }
}

extension KafkaError {
    /// The same error, marked retriable.
    var retriable: KafkaError { KafkaError(code: code, name: name, message: message, isRetriable: true) }
}
