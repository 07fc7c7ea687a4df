import Foundation
import Synchronization

/// A one-line progress bar on standard error, drawn only on a terminal.
final class ProgressBar: Sendable {
    private let enabled: Bool
    private let start = ContinuousClock.now
    private let lastDraw = Mutex(ContinuousClock.now - .seconds(1))

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ done: Int, _ total: Int) {
        guard enabled else { return }
        let due = lastDraw.withLock { last -> Bool in
            guard ContinuousClock.now - last > .milliseconds(100) || done == total else { return false }
            last = .now
            return true
        }
        guard due else { return }
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        let line = String(format: "\r[%@%@] %d/%d  %.1f/s", String(repeating: "#", count: filled),
                          String(repeating: ".", count: width - filled), done, total, Double(done) / max(seconds, 1e-9))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
