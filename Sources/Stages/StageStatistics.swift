import Synchronization

/// Counters of one stage instance, safe to update from any task: a snapshot for the log lines
/// and tests, and the same events reported to the metrics system (`StageMetrics`), so each
/// event is counted in one place.
public final class StageStatistics: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var consumed = 0
        /// Calls of the stage's `process(batch:)`.
        public var batches = 0
        /// Outputs acknowledged by the broker (dead letters not included).
        public var produced = 0
        public var deadLettered = 0
        /// Sends that failed with a retriable error and were tried again.
        public var retries = 0
        /// Seconds spent in `process`, summed.
        public var processingSeconds = 0.0
    }
    private let state = Mutex(Snapshot())
    private let metrics: StageMetrics

    /// Create it after the metrics system is bootstrapped: earlier handlers report nowhere.
    public init(stage: String) { metrics = StageMetrics(stage: stage) }

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// One `process(batch:)` call: its records, the fault codes of those the stage refused,
    /// its duration.
    func batch(records: Int, refused: [String], seconds: Double) {
        state.withLock {
            $0.consumed += records; $0.batches += 1; $0.deadLettered += refused.count; $0.processingSeconds += seconds
        }
        metrics.consumed.increment(by: records)
        metrics.batchSize.record(records)
        metrics.processing.recordNanoseconds(Int64(seconds * 1e9))
        for code in refused { metrics.deadLettered(reason: code) }
    }

    /// Outputs the broker acknowledged.
    func produced(_ count: Int) {
        state.withLock { $0.produced += count }
        metrics.produced.increment(by: count)
    }

    /// An input dead-lettered because the broker refused its outputs for good.
    func outputsRefused() {
        state.withLock { $0.deadLettered += 1 }
        metrics.deadLettered(reason: "output-refused")
    }

    func retried() {
        state.withLock { $0.retries += 1 }
        metrics.retries.increment()
    }

    func lag(_ records: Int64, topic: String, partition: Int32) {
        metrics.lag(records, topic: topic, partition: partition)
    }
}
