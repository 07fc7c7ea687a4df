import Dispatch
import Foundation
import Synchronization

/// Splits loops over images, channels or matrix blocks across the machine's cores.
enum Parallel {
    private static let configuredWorkers = Atomic<Int>(0)

    /// Worker count: every core unless `EngineSettings.threads` says otherwise.
    static var workers: Int {
        get {
            let n = configuredWorkers.load(ordering: .relaxed)
            return n > 0 ? n : ProcessInfo.processInfo.activeProcessorCount
        }
        set { configuredWorkers.store(newValue, ordering: .relaxed) }
    }

    /// Calls `body(i)` for every i in 0..<count, in parallel chunks when `count · costPerItem`
    /// (roughly, floats touched) is large enough to repay the hand-off. The calls must touch
    /// disjoint memory.
    static func forEach(_ count: Int, costPerItem: Int, _ body: (Int) -> Void) {
        let cost = costPerItem.multipliedReportingOverflow(by: count)
        if !cost.overflow && cost.partialValue < 32_768 {
            for i in 0..<count { body(i) }
            return
        }
        forEach(count, body)
    }

    /// Calls `body(i)` for every i in 0..<count, split across the workers whatever the cost.
    static func forEach(_ count: Int, _ body: (Int) -> Void) {
        BLAS.configure
        let workers = workers
        if workers == 1 || count < 2 {
            for i in 0..<count { body(i) }
            return
        }
        let chunks = min(count, workers)
        let split = { (chunk: Int) in
            let start = count * chunk / chunks, end = count * (chunk + 1) / chunks
            for i in start..<end { body(i) }
        }
        // On oneDNN's threads when libgomp is loaded (OpenMPTeam says why), else Dispatch's.
        if OpenMPTeam.run(chunks, split) { return }
        withoutActuallyEscaping(split) { split in
            // The closure is only shared for the duration of this call.
            let shared = UncheckedBody(call: split)
            DispatchQueue.concurrentPerform(iterations: chunks) { shared.call($0) }
        }
    }
}

private struct UncheckedBody: @unchecked Sendable {
    let call: (Int) -> Void
}
