/// Decides which offset of each partition may be committed.
///
/// A record is *in flight* from the moment the consumer hands it out until the application
/// says its output was acknowledged (`completed`). The commit point of a partition is the
/// lowest offset still in flight, or one past the highest offset received when none is: never
/// past a record whose output is not yet safe, whatever order completions arrive in.
///
/// Each assignment of a partition gets a new generation. A rebalance that takes a partition
/// away (`revoke`) forgets it, so a late completion from the old generation cannot move a
/// commit point that another member now owns.
public struct OffsetTracker: Sendable {
    struct PartitionState: Sendable {
        var generation: UInt64
        var inFlight: Set<Int64> = []
        var highestReceived: Int64?
        /// The last commit point requested for this partition, if any.
        var committed: Int64?
    }

    private var partitions: [TopicPartition: PartitionState] = [:]
    private var nextGeneration: UInt64 = 1

    public init() {}

    /// Starts tracking newly assigned partitions, each with a fresh generation.
    public mutating func assign(_ assigned: [TopicPartition]) {
        for tp in assigned {
            partitions[tp] = PartitionState(generation: nextGeneration)
            nextGeneration += 1
        }
    }

    /// Forgets partitions taken away; their in-flight records can no longer be committed here.
    public mutating func revoke(_ revoked: [TopicPartition]) {
        for tp in revoked { partitions[tp] = nil }
    }

    /// Records that `offset` was handed out. Returns its generation, or nil if the partition is
    /// not assigned (a record that raced a revoke: the caller drops it).
    public mutating func received(_ tp: TopicPartition, offset: Int64) -> UInt64? {
        guard var state = partitions[tp] else { return nil }
        state.inFlight.insert(offset)
        state.highestReceived = max(state.highestReceived ?? offset, offset)
        partitions[tp] = state
        return state.generation
    }

    /// Records that the output of `offset` was acknowledged. Returns false (and changes
    /// nothing) if the partition was revoked or reassigned since the record was received.
    @discardableResult
    public mutating func completed(_ tp: TopicPartition, offset: Int64, generation: UInt64) -> Bool {
        guard var state = partitions[tp], state.generation == generation,
              state.inFlight.remove(offset) != nil else { return false }
        partitions[tp] = state
        return true
    }

    /// The commit point of each partition whose point moved since it was last committed:
    /// the offset the group should resume from (Kafka's convention: last done + 1).
    public func pendingCommits(only subset: Set<TopicPartition>? = nil) -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for (tp, state) in partitions where subset?.contains(tp) ?? true {
            guard let highest = state.highestReceived else { continue }
            let point = state.inFlight.min() ?? (highest + 1)
            if point != state.committed { result[tp] = point }
        }
        return result
    }

    /// Notes that these commit points were sent to the group coordinator.
    public mutating func markCommitted(_ points: [TopicPartition: Int64]) {
        for (tp, offset) in points { partitions[tp]?.committed = offset }
    }

    /// Forgets that a commit was sent (it failed), so the next round sends it again.
    public mutating func commitFailed(_ tps: [TopicPartition]) {
        for tp in tps { partitions[tp]?.committed = nil }
    }

    /// For each tracked partition that has handed out a record, the offset after the highest
    /// one: where reading goes on if the consumer reconnects outside a group.
    public var nextOffsets: [TopicPartition: Int64] {
        partitions.compactMapValues { $0.highestReceived.map { $0 + 1 } }
    }

    /// The partitions currently tracked.
    public var assigned: Set<TopicPartition> { Set(partitions.keys) }

    /// How many records are handed out and not completed.
    public var inFlightCount: Int { partitions.values.reduce(0) { $0 + $1.inFlight.count } }
}
