import Foundation

/// libgomp's thread team, the one oneDNN's primitives run on, for the engine's own parallel
/// loops (`Parallel.forEach`).
///
/// After each primitive libgomp's threads spin for a while waiting for the next one. Loops
/// split over a second pool of threads (Dispatch's) while they spin had three or more busy
/// threads on two cores: in DenseNet-121 inference the batch-norm steps between convolutions
/// took 9% of the time and libgomp's spinning 12%. Run on the team, a loop finds its threads
/// awake and nothing competes with them.
///
/// The functions are found at run time in the libgomp that libdnnl loads (`GOMP_parallel` is
/// the entry point GCC emits for `#pragma omp parallel`); without them `Parallel` uses
/// Dispatch. This is the one place that reaches into libgomp; `OneDNN.useWorkers` sizes the
/// primitives' team through `setThreadCount`.
enum OpenMPTeam {
    private typealias Entry = @convention(c) (UnsafeMutableRawPointer?) -> Void
    private typealias ParallelFunction = @convention(c) (Entry, UnsafeMutableRawPointer?, UInt32, UInt32) -> Void
    private typealias IntFunction = @convention(c) () -> Int32
    private typealias SetIntFunction = @convention(c) (Int32) -> Void

    private struct Functions: @unchecked Sendable {
        let parallel: ParallelFunction
        let threadNumber: IntFunction
        let threadCount: IntFunction
        let setThreadCount: SetIntFunction
    }

    private static let functions: Functions? = {
        let handle = UnsafeMutableRawPointer(bitPattern: 0)
        guard let parallel = dlsym(handle, "GOMP_parallel"), let number = dlsym(handle, "omp_get_thread_num"),
              let count = dlsym(handle, "omp_get_num_threads"), let setCount = dlsym(handle, "omp_set_num_threads") else { return nil }
        return Functions(parallel: unsafeBitCast(parallel, to: ParallelFunction.self),
                         threadNumber: unsafeBitCast(number, to: IntFunction.self),
                         threadCount: unsafeBitCast(count, to: IntFunction.self),
                         setThreadCount: unsafeBitCast(setCount, to: SetIntFunction.self))
    }()

    /// Whether loops can run on the team (libgomp is loaded).
    static var available: Bool { functions != nil }

    /// Sizes the team of the next parallel region started on this thread when it names no size
    /// (oneDNN's primitives; OpenMP keeps the setting per calling thread). Nothing without libgomp.
    static func setThreadCount(_ count: Int) {
        functions?.setThreadCount(Int32(clamping: count))
    }

    /// Calls `body(chunk)` for every chunk in 0..<chunks on a team of up to `chunks` threads
    /// (fewer inside another team, where libgomp gives one), each taking every n-th chunk.
    /// Returns false, calling nothing, when libgomp is not loaded.
    static func run(_ chunks: Int, _ body: (Int) -> Void) -> Bool {
        guard let functions, chunks > 0 else { return functions != nil }
        withoutActuallyEscaping(body) { body in
            // The closure is only shared for the duration of this call.
            var work = TeamWork(body: body, chunks: chunks, threadNumber: functions.threadNumber,
                                threadCount: functions.threadCount)
            withUnsafeMutablePointer(to: &work) { pointer in
                functions.parallel(teamEntry, UnsafeMutableRawPointer(pointer), UInt32(clamping: chunks), 0)
            }
        }
        return true
    }
}

/// What each thread of the team is handed.
private struct TeamWork {
    let body: (Int) -> Void
    let chunks: Int
    let threadNumber: @convention(c) () -> Int32
    let threadCount: @convention(c) () -> Int32
}

/// Runs on every thread of the team: this thread's share of the chunks.
private func teamEntry(_ data: UnsafeMutableRawPointer?) {
    guard let work = data?.assumingMemoryBound(to: TeamWork.self) else { return }
    let step = max(1, Int(work.pointee.threadCount()))
    var chunk = Int(work.pointee.threadNumber())
    while chunk < work.pointee.chunks {
        work.pointee.body(chunk)
        chunk += step
    }
}
