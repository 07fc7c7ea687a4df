@testable import Engine
import Synchronization
import Testing

/// `Parallel.forEach` on libgomp's team (`OpenMPTeam`): every index once, whatever the count,
/// the worker count and the nesting.
@Suite("Parallel loops")
struct ParallelTests {
    /// Counts how often each index was visited (under a lock, so the count is exact even if a
    /// chunk were handed out twice).
    final class Visits: Sendable {
        let counts: Mutex<[Int]>
        init(_ n: Int) { counts = Mutex([Int](repeating: 0, count: n)) }
        func visit(_ i: Int) { counts.withLock { $0[i] += 1 } }
        var all: [Int] { counts.withLock { $0 } }
    }

    @Test("libgomp is loaded with oneDNN, so loops run on its team")
    func teamAvailable() {
        #expect(OpenMPTeam.available)
    }

    @Test("every index is visited exactly once, for counts that do and do not divide by the workers", arguments: [1, 2, 3, 7, 64, 1001])
    func eachIndexOnce(count: Int) {
        let visits = Visits(count)
        Parallel.forEach(count) { visits.visit($0) }
        #expect(visits.all == [Int](repeating: 1, count: count))
    }

    @Test("the team runs the chunks it is given, and a loop inside a loop still visits everything once")
    func nested() {
        let team = Visits(5)
        #expect(OpenMPTeam.run(5) { team.visit($0) })
        #expect(team.all == [1, 1, 1, 1, 1])
        let outer = 6, inner = 13
        let visits = Visits(outer * inner)
        Parallel.forEach(outer) { i in
            Parallel.forEach(inner) { j in visits.visit(i * inner + j) }
        }
        #expect(visits.all == [Int](repeating: 1, count: outer * inner))
    }
}
