import Testing
@testable import KafkaIO

@Suite("Offset tracking: commit only what is done")
struct OffsetTrackerTests {
    let p0 = TopicPartition("t", 0), p1 = TopicPartition("t", 1)

    @Test("the commit point never passes a record whose output is not acknowledged")
    func outOfOrderCompletion() {
        var tracker = OffsetTracker()
        tracker.assign([p0])
        let gens = (10..<15).map { tracker.received(p0, offset: Int64($0))! }
        #expect(tracker.pendingCommits() == [p0: 10])  // nothing done: resume at 10
        tracker.markCommitted([p0: 10])
        #expect(tracker.pendingCommits().isEmpty)
        tracker.completed(p0, offset: 12, generation: gens[2])
        tracker.completed(p0, offset: 13, generation: gens[3])
        #expect(tracker.pendingCommits().isEmpty)  // 10 and 11 still in flight
        tracker.completed(p0, offset: 10, generation: gens[0])
        #expect(tracker.pendingCommits() == [p0: 11])
        tracker.completed(p0, offset: 11, generation: gens[1])
        tracker.completed(p0, offset: 14, generation: gens[4])
        #expect(tracker.pendingCommits() == [p0: 15])
        #expect(tracker.inFlightCount == 0)
    }

    @Test("a revoked partition is forgotten; late completions of its records change nothing")
    func revokeAndReassign() {
        var tracker = OffsetTracker()
        tracker.assign([p0, p1])
        let old = tracker.received(p0, offset: 5)!
        _ = tracker.received(p1, offset: 7)
        tracker.revoke([p0])
        let raced = tracker.received(p0, offset: 6)
        #expect(raced == nil)  // raced the revoke: dropped
        let lateCompletion = tracker.completed(p0, offset: 5, generation: old)
        #expect(!lateCompletion)
        #expect(tracker.pendingCommits().keys.sorted { $0.partition < $1.partition } == [p1])
        tracker.assign([p0])  // back again, a new generation
        let new = tracker.received(p0, offset: 5)!
        #expect(new != old)
        let staleCompletion = tracker.completed(p0, offset: 5, generation: old)
        let currentCompletion = tracker.completed(p0, offset: 5, generation: new)
        #expect(!staleCompletion)
        #expect(currentCompletion)
        #expect(tracker.pendingCommits(only: [p0]) == [p0: 6])
    }

    @Test("a failed commit is sent again")
    func failedCommit() {
        var tracker = OffsetTracker()
        tracker.assign([p0])
        let g = tracker.received(p0, offset: 0)!
        tracker.completed(p0, offset: 0, generation: g)
        tracker.markCommitted(tracker.pendingCommits())
        #expect(tracker.pendingCommits().isEmpty)
        tracker.commitFailed([p0])
        #expect(tracker.pendingCommits() == [p0: 1])
    }
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test("-X properties override the typed settings; offsets are never auto-committed")
    func overrides() {
        let kafka = KafkaConfiguration(brokers: "h:1", properties: ["linger.ms": "50", "session.timeout.ms": "9000"])
        #expect(ProducerConfiguration(kafka: kafka).librdkafkaProperties["linger.ms"] == "50")
        #expect(ProducerConfiguration(kafka: kafka).librdkafkaProperties["bootstrap.servers"] == "h:1")
        let consumer = ConsumerConfiguration(kafka: kafka, groupID: "g").librdkafkaProperties
        #expect(consumer["session.timeout.ms"] == "9000")
        #expect(consumer["enable.auto.commit"] == "false")
        #expect(consumer["enable.auto.offset.store"] == "false")
        #expect(consumer["partition.assignment.strategy"] == "cooperative-sticky")
    }

    @Test("the loaded librdkafka is new enough (Ops/setup's 2.16, not Debian's 2.0.2)")
    func runtimeVersion() throws {
        try Librdkafka.requireMinimumVersion()
        #expect(Librdkafka.version.major >= 2)
    }
}
