import Synchronization

/// Counters of one stage instance, safe to update from any task.
public final class StageStatistics: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var consumed = 0
        /// Calls of the stage's `process(batch:)`.
        public var batches = 0
        public var produced = 0
        public var deadLettered = 0
        /// Sends that failed with a retriable error and were tried again.
        public var retries = 0
        /// Seconds spent in `process`, summed.
        public var processingSeconds = 0.0
    }
    private let state = Mutex(Snapshot())

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    func update(_ body: (inout Snapshot) -> Void) { state.withLock { body(&$0) } }
}
