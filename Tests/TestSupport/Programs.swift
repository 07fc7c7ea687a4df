public import Foundation

/// Runs blocking work (a process to its end, its output read to the end) on a thread of its
/// own. Swift's cooperative pool has one thread per core: a test blocking one for minutes (the
/// demo, a site adaptation) stalls the tasks of every other test in this process, in-process
/// stages and model followers among them.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

extension Process {
    /// Waits for the process to end without holding a thread of the cooperative pool (see
    /// `offThePool`); `waitUntilExit` would.
    public func exited() async {
        while isRunning {
            do { try await Task.sleep(for: .milliseconds(20)) } catch { return waitUntilExit() }
        }
    }
}

/// Runs a program to its end and returns its exit status and its output (standard error too,
/// unless `errors` is false, when it is discarded), off the cooperative pool.
public func runProgram(_ path: String, _ arguments: [String], environment: [String: String]? = nil,
                errors: Bool = true) async throws -> (status: Int32, output: String) {
    try await offThePool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = errors ? pipe : FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
