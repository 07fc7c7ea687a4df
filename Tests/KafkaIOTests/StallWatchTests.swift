import Testing
@testable import KafkaIO

@Suite("Stall watch, fetch wait and log throttle")
struct StallWatchTests {
    let p0 = TopicPartition("t", 0), p1 = TopicPartition("t", 1)
    let start = ContinuousClock.now

    @Test("lagging with nothing received for the threshold is a stall, warned once per threshold")
    func stall() {
        var watch = StallWatch(threshold: .seconds(30))
        #expect(watch.observe(lag: [p0: 5], paused: false, now: start) == .waiting(.zero))
        #expect(watch.observe(lag: [p0: 5, p1: 0], paused: false, now: start + .seconds(29)) == .waiting(.seconds(29)))
        #expect(watch.observe(lag: [p0: 5], paused: false, now: start + .seconds(30)) == .stalled(.seconds(30), warn: true))
        #expect(watch.observe(lag: [p0: 5], paused: false, now: start + .seconds(45)) == .stalled(.seconds(45), warn: false))
        #expect(watch.observe(lag: [p0: 5], paused: false, now: start + .seconds(60)) == .stalled(.seconds(60), warn: true))
        watch.received()
        #expect(watch.observe(lag: [p0: 4], paused: false, now: start + .seconds(61)) == .waiting(.zero))
    }

    @Test("caught up, paused for backpressure or receiving is not a stall, however long")
    func notStalls() {
        var watch = StallWatch(threshold: .seconds(5))
        for second in 0..<60 {
            let now = start + .seconds(second)
            #expect(watch.observe(lag: [p0: 0, p1: 0], paused: false, now: now) == .progressing)
            #expect(watch.observe(lag: [:], paused: false, now: now) == .progressing)
        }
        var busy = StallWatch(threshold: .seconds(5))
        for second in 0..<60 { #expect(busy.observe(lag: [p0: 100], paused: true, now: start + .seconds(second)) == .progressing) }
        var receiving = StallWatch(threshold: .seconds(5))
        for second in 0..<60 {
            receiving.received()
            #expect(receiving.observe(lag: [p0: 100], paused: false, now: start + .seconds(second)) == .waiting(.zero))
        }
        // A pause resets the wait: it counts again from when the consumer resumes.
        var resumed = StallWatch(threshold: .seconds(5))
        _ = resumed.observe(lag: [p0: 1], paused: false, now: start)
        _ = resumed.observe(lag: [p0: 1], paused: true, now: start + .seconds(4))
        #expect(resumed.observe(lag: [p0: 1], paused: false, now: start + .seconds(6)) == .waiting(.zero))
    }

    @Test("a reconnect restarts the wait")
    func restart() {
        var watch = StallWatch(threshold: .seconds(10))
        _ = watch.observe(lag: [p0: 3], paused: false, now: start)
        #expect(watch.observe(lag: [p0: 3], paused: false, now: start + .seconds(10)) == .stalled(.seconds(10), warn: true))
        watch.restart(at: start + .seconds(10))
        #expect(watch.observe(lag: [p0: 3], paused: false, now: start + .seconds(15)) == .waiting(.seconds(5)))
        #expect(watch.observe(lag: [p0: 3], paused: false, now: start + .seconds(20)) == .stalled(.seconds(10), warn: true))
    }

    @Test("a stalled consumer's fetch wait grows fourfold to its maximum")
    func fetchWait() {
        var wait = FetchWait(milliseconds: 10, maximum: 2000)
        #expect(wait.raise() == 40 && wait.raise() == 160 && wait.raise() == 640 && wait.raise() == 2000)
        #expect(wait.raise() == nil && wait.milliseconds == 2000)
        var fixed = FetchWait(milliseconds: 3000, maximum: 2000)
        #expect(fixed.raise() == nil && fixed.milliseconds == 3000)
    }

    @Test("repeats of a message within the interval are held back and counted")
    func throttle() {
        let throttle = LogThrottle(interval: .seconds(30))
        #expect(throttle.admit("FAIL", now: start) == (true, 0))
        for second in 1...9 { #expect(throttle.admit("FAIL", now: start + .seconds(second)).log == false) }
        #expect(throttle.admit("other", now: start + .seconds(5)) == (true, 0))
        #expect(throttle.admit("FAIL", now: start + .seconds(31)) == (true, 9))
        #expect(throttle.admit("FAIL", now: start + .seconds(32)).log == false)
    }

    @Test("a consumer outside a group goes on after the highest offset handed out")
    func nextOffsets() {
        var tracker = OffsetTracker()
        tracker.assign([p0, p1])
        _ = tracker.received(p0, offset: 7)
        _ = tracker.received(p0, offset: 8)
        #expect(tracker.nextOffsets == [p0: 9])
    }
}

@Suite("AssignmentWatch")
struct AssignmentWatchTests {
    let t0 = ContinuousClock.now
    let tp = TopicPartition("t", 0)

    @Test("a member that never held partitions never probes")
    func idleFromTheStart() {
        var watch = AssignmentWatch(threshold: .seconds(10))
        do { let r = watch.observe(assigned: 0, now: t0); #expect(!r) }
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(100)); #expect(!r) }
    }

    @Test("a member that lost its partitions rejoins only when the group's commits stand still with records waiting")
    func stuckGroup() {
        var watch = AssignmentWatch(threshold: .seconds(10))
        do { let r = watch.observe(assigned: 3, now: t0); #expect(!r) }
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(1)); #expect(!r) }
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(5)); #expect(!r) }
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(11)); #expect(r) }
        do { let r = watch.judge([tp: (committed: 5, high: 9)], now: t0 + .seconds(11)); #expect(!r) }  // the first probe only remembers
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(15)); #expect(!r) }
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(21)); #expect(r) }
        do { let r = watch.judge([tp: (committed: 5, high: 9)], now: t0 + .seconds(21)); #expect(r) }   // nobody read: rejoin
        // After a rejoin the wait starts over.
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(25)); #expect(!r) }
    }

    @Test("an idle member whose group reads on, or whose group is caught up, stays")
    func groupProgresses() {
        var watch = AssignmentWatch(threshold: .seconds(10))
        _ = watch.observe(assigned: 2, now: t0)
        _ = watch.observe(assigned: 0, now: t0 + .seconds(1))
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(11)); #expect(r) }
        do { let r = watch.judge([tp: (committed: 5, high: 9)], now: t0 + .seconds(11)); #expect(!r) }
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(21)); #expect(r) }
        do { let r = watch.judge([tp: (committed: 7, high: 12)], now: t0 + .seconds(21)); #expect(!r) }  // others commit
        do { let r = watch.observe(assigned: 0, now: t0 + .seconds(31)); #expect(r) }
        do { let r = watch.judge([tp: (committed: 12, high: 12)], now: t0 + .seconds(31)); #expect(!r) }  // caught up
        do { let r = watch.judge([tp: (committed: 12, high: 12)], now: t0 + .seconds(41)); #expect(!r) }
        // Partitions back: nothing to watch.
        do { let r = watch.observe(assigned: 1, now: t0 + .seconds(42)); #expect(!r) }
    }
}
