/// Where a topic ended when a reader started, and whether the reader has got there.
///
/// A reader that must see everything already written before it acts (a trainer taking the
/// latest model version, an aggregator restoring its checkpoint) queries the partitions' end
/// offsets once (`KafkaConsumer.endOffsets()`), then reports each record it reads. The end is
/// reached when, on every partition, a record at or after the last offset has been read, or
/// the partition was empty. A quiet spell of the consumer can also settle a partition whose
/// last offsets hold no record (compacted away): its fetch position has passed the end.
public struct TopicEnd: Sendable, Equatable {
    /// The offset after the last record of each partition that still has records to read.
    public private(set) var remaining: [TopicPartition: Int64]

    /// `ends` are (low, high) watermarks per partition; a partition with high ≤ low is empty.
    public init(ends: [TopicPartition: (low: Int64, high: Int64)]) {
        remaining = ends.filter { $0.value.high > $0.value.low }.mapValues(\.high)
    }

    /// True once every partition has been read to the end it had at the start.
    public var isReached: Bool { remaining.isEmpty }

    /// Notes a record read.
    public mutating func passed(_ record: KafkaRecord) {
        let tp = TopicPartition(record.topic, record.partition)
        if let end = remaining[tp], record.offset + 1 >= end { remaining[tp] = nil }
    }

    /// Notes a quiet spell: partitions with nothing left to fetch (`KafkaConsumer.lag` of 0)
    /// are read to their end even if their last offsets held no record.
    public mutating func quiet(lag: [TopicPartition: Int64]) {
        for (tp, records) in lag where records == 0 { remaining[tp] = nil }
    }
}
