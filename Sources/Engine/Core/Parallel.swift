import Dispatch

/// Splits loops over images or channels across the machine's cores. The matrix products
/// already run on OpenBLAS's threads; this covers the memory-bound work around them
/// (im2col, normalisation, pooling) so both cores are busy for all of a pass.
enum Parallel {
    /// Worker count: the number of cores OpenBLAS uses.
    static var workers: Int { max(1, BLAS.threads) }

    /// Calls `body(i)` for every i in 0..<count, in parallel chunks when `count · costPerItem`
    /// (roughly, floats touched) is large enough to repay the hand-off.
    static func forEach(_ count: Int, costPerItem: Int, _ body: (Int) -> Void) {
        let workers = workers
        if workers == 1 || count < 2 || count * costPerItem < 32_768 {
            for i in 0..<count { body(i) }
            return
        }
        let chunks = min(count, workers)
        withoutActuallyEscaping(body) { body in
            // The chunks touch disjoint items, which is the caller's promise; the closure is
            // only shared for the duration of this call.
            let shared = UncheckedBody(call: body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks, end = count * (chunk + 1) / chunks
                for i in start..<end { shared.call(i) }
            }
        }
    }
}

private struct UncheckedBody: @unchecked Sendable {
    let call: (Int) -> Void
}
