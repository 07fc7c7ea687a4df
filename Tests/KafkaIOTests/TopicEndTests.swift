import Testing
@testable import KafkaIO

@Suite("Reading a topic to where it ended")
struct TopicEndTests {
    let p0 = TopicPartition("t", 0), p1 = TopicPartition("t", 1), p2 = TopicPartition("t", 2)

    func record(_ tp: TopicPartition, _ offset: Int64) -> KafkaRecord {
        KafkaRecord(topic: tp.topic, partition: tp.partition, offset: offset, key: nil, value: [], headers: [])
    }

    @Test("the end is reached only when every partition's last record is read; empty partitions count at once")
    func everyPartitionToItsLastRecord() {
        var end = TopicEnd(ends: [p0: (0, 3), p1: (5, 5), p2: (2, 4)])
        #expect(end.remaining == [p0: 3, p2: 4], "p1 is empty (low = high)")
        end.passed(record(p0, 0)); end.passed(record(p0, 1)); end.passed(record(p2, 2))
        #expect(!end.isReached)
        end.passed(record(p0, 2))
        #expect(end.remaining == [p2: 4])
        end.passed(record(TopicPartition("other", 2), 9))
        #expect(!end.isReached, "a record of another topic says nothing")
        end.passed(record(p2, 3))
        #expect(end.isReached)
        #expect(TopicEnd(ends: [:]).isReached && TopicEnd(ends: [p0: (0, 0)]).isReached)
    }

    @Test("a quiet spell settles a partition with nothing left to fetch, not one still behind")
    func quietSpell() {
        var end = TopicEnd(ends: [p0: (0, 10), p1: (0, 10)])
        end.passed(record(p0, 7))  // offsets 8 and 9 compacted away
        end.quiet(lag: [p0: 0, p1: 4])
        #expect(end.remaining == [p1: 10])
        end.quiet(lag: [:])
        #expect(!end.isReached, "no figures, no conclusion")
    }
}
