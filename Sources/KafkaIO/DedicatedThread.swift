import Foundation
import Synchronization

/// Runs a blocking call on a new thread of its own and awaits its result, so that blocking
/// librdkafka calls (flush, close, synchronous commit, admin requests) never occupy a thread
/// of Swift's cooperative pool (which has one thread per core).
func onDedicatedThread<T: Sendable>(_ name: String,
                                    _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.start()
    }
}

/// A thread that calls `body` again and again until stopped. librdkafka's callbacks (delivery
/// reports, rebalances, errors, logs) run on it, inside the poll calls that `body` makes.
final class PollThread: Sendable {
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, body: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while running.load(ordering: .acquiring) { body() }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Asks the loop to stop and waits until the current `body` call has returned. Blocks:
    /// call from a dedicated thread or from synchronous teardown, not from an async task.
    func stopAndWait() {
        if running.exchange(false, ordering: .acquiringAndReleasing) {
            finished.wait()
        }
    }
}
