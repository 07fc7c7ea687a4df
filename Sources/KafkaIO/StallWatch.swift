/// Decides when a consumer is stalled: some partition it holds has records on the broker it
/// has not fetched, it is not paused for backpressure (its application is waiting for
/// records), and none has come for `threshold`. A consumer that is caught up, paused because
/// its stage is busy, or receiving records is not stalled, however long it has been. Pure:
/// the poll thread feeds it what it sees and the time.
public struct StallWatch: Sendable, Equatable {
    /// What the consumer looks like now.
    public enum Verdict: Equatable, Sendable {
        /// Caught up, paused for backpressure, or receiving records.
        case progressing
        /// Lagging with nothing received for this long, under the threshold.
        case waiting(Duration)
        /// Lagging with nothing received for this long, at or past the threshold; `warn` is true
        /// at most once per threshold, so the log says it without flooding.
        case stalled(Duration, warn: Bool)
    }

    public let threshold: Duration
    private var waitingSince: ContinuousClock.Instant?
    private var lastWarning: ContinuousClock.Instant?

    public init(threshold: Duration) { self.threshold = threshold }

    /// A record arrived: whatever was waiting is over.
    public mutating func received() {
        waitingSince = nil
        lastWarning = nil
    }

    /// Starts over (after the consumer reconnected): the wait counts from `now`.
    public mutating func restart(at now: ContinuousClock.Instant) {
        waitingSince = waitingSince.map { _ in now }
        lastWarning = nil
    }

    /// The verdict from the records left to fetch per partition (`lag`) and whether the
    /// consumer is paused for backpressure.
    public mutating func observe(lag: [TopicPartition: Int64], paused: Bool, now: ContinuousClock.Instant) -> Verdict {
        guard !paused, lag.values.contains(where: { $0 > 0 }) else {
            waitingSince = nil
            lastWarning = nil
            return .progressing
        }
        let since = waitingSince ?? now
        waitingSince = since
        let waited = now - since
        guard waited >= threshold else { return .waiting(waited) }
        let warn = lastWarning.map { now - $0 >= threshold } ?? true
        if warn { lastWarning = now }
        return .stalled(waited, warn: warn)
    }
}

/// How long a consumer lets the broker hold a fetch (`fetch.wait.max.ms`), raised when the
/// consumer stalls: a broker that needs longer than the wait to serve a fetch (Tansu's S3
/// storage reading old segments after a restart) answers every fetch empty, forever. Each
/// stall multiplies the wait by 4, up to `maximum`. Pure.
public struct FetchWait: Sendable, Equatable {
    public private(set) var milliseconds: Int
    public let maximum: Int

    public init(milliseconds: Int, maximum: Int) {
        self.milliseconds = max(1, milliseconds)
        self.maximum = max(self.milliseconds, maximum)
    }

    /// The next, longer wait, or nil when the maximum is reached.
    public mutating func raise() -> Int? {
        guard milliseconds < maximum else { return nil }
        milliseconds = min(maximum, milliseconds * 4)
        return milliseconds
    }
}

/// Decides when a group member that held partitions and lost them is left without any while
/// its group makes no progress: the coordinator never finished handing the partitions out
/// again (seen on Tansu under load after a rejoin). Its stall watch cannot see that (it has no
/// partitions, so no lag), so this one does: once the member has held nothing for `threshold`,
/// it compares the group's committed offsets a threshold apart; when some partition has records
/// waiting and its committed offset did not move, nobody reads it, and the member rejoins. A
/// member left idle by a legitimate rebalance (more members than partitions) sees the others'
/// commits move and stays as it is. Pure: the poll thread feeds it what it sees.
public struct AssignmentWatch: Sendable, Equatable {
    /// Per partition of the subscription: the group's committed offset (nil: none) and the
    /// high watermark.
    public typealias Probe = [TopicPartition: (committed: Int64?, high: Int64)]

    public let threshold: Duration
    private var heldPartitions = false
    private var emptySince: ContinuousClock.Instant?
    private var lastProbe: (at: ContinuousClock.Instant, committed: [TopicPartition: Int64?])?

    public init(threshold: Duration) { self.threshold = threshold }

    public static func == (a: Self, b: Self) -> Bool {
        a.threshold == b.threshold && a.heldPartitions == b.heldPartitions && a.emptySince == b.emptySince
    }

    /// The member holds `count` partitions now. Returns true when a probe of the group's
    /// offsets is due (the caller then calls `judge`).
    public mutating func observe(assigned count: Int, now: ContinuousClock.Instant) -> Bool {
        if count > 0 {
            heldPartitions = true
            emptySince = nil
            lastProbe = nil
            return false
        }
        guard heldPartitions else { return false }
        let since = emptySince ?? now
        emptySince = since
        guard now - since >= threshold else { return false }
        return lastProbe.map { now - $0.at >= threshold } ?? true
    }

    /// Judges a probe: true when some partition has records waiting and the same committed
    /// offset as at the previous probe (the member should rejoin; the watch starts over).
    public mutating func judge(_ probe: Probe, now: ContinuousClock.Instant) -> Bool {
        let committed = probe.mapValues(\.committed)
        defer { lastProbe = (now, committed) }
        guard let previous = lastProbe?.committed else { return false }
        let stuck = probe.contains { tp, figures in
            guard let before = previous[tp], before == figures.committed else { return false }
            return figures.high > (figures.committed ?? 0)
        }
        if stuck {
            emptySince = now
            lastProbe = nil
        }
        return stuck
    }
}
