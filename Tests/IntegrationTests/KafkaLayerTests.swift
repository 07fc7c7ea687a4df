@testable import KafkaIO
import Testing
import Wire

@Suite("Kafka layer on a real broker", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct KafkaLayerTests {
    @Test("keys, headers and values arrive as sent, with a delivery report per record")
    func roundTrip() async throws {
        let topics = try await TestBroker.freshTopics("roundtrip")
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        let sent = (0..<20).map { i in
            OutgoingRecord(topic: topics.raw, key: "id-\(i)", value: Array("value \(i)".utf8),
                           headers: [KafkaHeader("n", "\(i)"), KafkaHeader(name: "null", value: nil)])
        }
        for record in sent {
            let report = try await producer.send(record)
            #expect(report.topic == topics.raw && report.offset >= 0 && (0..<6).contains(report.partition))
        }
        await producer.close()
        // Where the partitions end, asked in one request and partition by partition, agree.
        let admin = try KafkaAdmin(configuration: TestBroker.kafka, logger: TestBroker.logger)
        let ends = try await admin.endOffsets(topics: [topics.raw, topics.predictions, "\(topics.prefix)no-such-topic"])
        #expect(ends == (try await admin.watermarks(topics: [topics.raw, topics.predictions])).mapValues(\.high))
        #expect(ends.count == 12 && ends.filter { $0.key.topic == topics.raw }.values.reduce(0, +) > 0)
        let received = try await TestBroker.collect(topics.raw, timeout: .seconds(30)) { $0.count >= 20 }
        #expect(received.count == 20)
        for record in received {
            let i = Int(record.keyText!.dropFirst(3))!
            #expect(record.value == Array("value \(i)".utf8))
            #expect(record.headers.text("n") == "\(i)")
            #expect(record.headers.contains { $0.name == "null" && $0.value == nil })
        }
    }

    @Test("a producer whose handle fails for good (idempotence lost) opens a new one and loses no record")
    func fatalProducerHandleIsReplaced() async throws {
        let topics = try await TestBroker.freshTopics("fatal")
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        let ids = (0..<40).map { "id-\($0)" }
        var reports: [DeliveryReport] = []
        for (i, id) in ids.enumerated() {
            if i == 20 { producer.failHandleForTesting() }
            reports.append(try await producer.send(OutgoingRecord(topic: topics.raw, key: id, value: Array(id.utf8))))
        }
        // Again with 40 records in flight at the moment the handle fails: each is sent again once,
        // on the one new handle (the purge of the old one must not purge the new one's).
        let concurrent = (0..<40).map { "c-\($0)" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in concurrent {
                group.addTask { _ = try await producer.send(OutgoingRecord(topic: topics.raw, key: id, value: Array(id.utf8))) }
            }
            producer.failHandleForTesting()
            try await group.waitForAll()
        }
        await producer.close()
        let all = ids + concurrent
        // 90 s: in a CI run with every suite at once the read back took longer than 30 s (16 of
        // 80 records, acknowledged ones among them, not yet read when a 30 s collect gave up).
        let received = try await TestBroker.collect(topics.raw, timeout: .seconds(90)) { Set($0.compactMap(\.keyText)).isSuperset(of: all) }
        #expect(reports.allSatisfy { $0.offset >= 0 })
        #expect(Set(received.compactMap(\.keyText)) == Set(all), "lost: \(Set(all).subtracting(received.compactMap(\.keyText)).sorted())")
    }

    @Test("a group resumes after the last completed record, never past an incomplete one")
    func commitsOnlyCompleted() async throws {
        let topics = try await TestBroker.freshTopics("commits")
        let topic = topics.models  // one partition: a total order
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        // One at a time: `sendAll` enqueues concurrently, so its records' order on the partition is not theirs.
        for i in 0..<10 { try await producer.send(OutgoingRecord(topic: topic, key: "k", value: [UInt8(i)])) }
        await producer.close()

        var configuration = ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "commits-\(topic)")
        configuration.assignmentStrategy = .eager
        let first = try KafkaConsumer(configuration: configuration, subscription: .group(topics: [topic]), logger: TestBroker.logger)
        var taken: [KafkaRecord] = []
        while taken.count < 6, let record = await first.next(timeout: .seconds(30)) { taken.append(record) }
        #expect(taken.map(\.value) == (0..<6).map { [UInt8($0)] })
        // Records 0, 1, 2 and 4 are done; 3 is not: the group must resume at 3.
        for i in [0, 1, 2, 4] { first.complete(taken[i]) }
        await first.close()
        // The admin client sees the commit, for this group asked alone and among others at once.
        let admin = try KafkaAdmin(configuration: TestBroker.kafka, logger: TestBroker.logger)
        #expect(try await admin.committedOffsets(group: configuration.groupID) == [TopicPartition(topic, 0): 3])
        let others = (0..<20).map { "never-committed-\(topic)-\($0)" }
        let answers = try await admin.committedOffsets(groups: others + [configuration.groupID])
        #expect(answers.count == 21)
        #expect(try answers[configuration.groupID]?.get() == [TopicPartition(topic, 0): 3])
        #expect(others.allSatisfy { (try? answers[$0]?.get())?.isEmpty == true })

        let second = try KafkaConsumer(configuration: configuration, subscription: .group(topics: [topic]), logger: TestBroker.logger)
        let next = await second.next(timeout: .seconds(30))
        #expect(next?.offset == taken[3].offset)
        #expect(next?.value == [3])
        await second.close()
    }

    @Test("a producer to a broker nobody listens on fails with a retriable error")
    func brokerAway() async throws {
        var config = ProducerConfiguration(kafka: KafkaConfiguration(brokers: "127.0.0.1:1", clientID: "away"))
        config.deliveryTimeoutMilliseconds = 1500
        var quiet = TestBroker.logger
        quiet.logLevel = .critical  // librdkafka reports every refused connection
        let producer = try KafkaProducer(configuration: config, logger: quiet)
        await #expect { try await producer.send(OutgoingRecord(topic: "t", key: "k", value: [1])) } throws: { error in
            (error as? KafkaError)?.isRetriable == true
        }
        await producer.close(timeout: .seconds(1))
    }

    @Test("a bounded range the broker does not serve in time fails retriably; one whose last offsets were never written ends where the partition does")
    func boundedRangeReads() async throws {
        let topics = try await TestBroker.freshTopics("range")
        let partition = TopicPartition(topics.models, 0)  // one partition: offsets 0, 1, 2 in order
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        for value in [[UInt8](repeating: 1, count: 10), [UInt8](repeating: 2, count: 200_000), [UInt8](repeating: 3, count: 10)] {
            try await producer.send(OutgoingRecord(topic: partition.topic, key: "k", value: value))
        }
        await producer.close()
        let whole = ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "unused")
        var offsets: [Int64] = []
        let end = try await KafkaConsumer.readRange(partition, first: 0, last: 2, configuration: whole, logger: TestBroker.logger,
                                                    wait: .seconds(30)) { offsets.append($0.offset) }
        #expect(offsets == [0, 1, 2] && end == 3)

        // Offsets 3...9 were never written: the fetches reach the end, so the range ends there
        // after the wait (as when compaction removed them), without an error.
        offsets = []
        let short = try await KafkaConsumer.readRange(partition, first: 0, last: 9, configuration: whole, logger: TestBroker.logger,
                                                      wait: .seconds(3)) { offsets.append($0.offset) }
        #expect(offsets == [0, 1, 2] && short == 3)

        // A client that cannot take the 200 kB record (its responses fail, so the fetches
        // never reach the end) sees a broker that does not serve the range: retriable.
        var quiet = TestBroker.logger
        quiet.logLevel = .critical  // librdkafka reports every oversized response
        let small = ConsumerConfiguration(kafka: KafkaConfiguration(brokers: TestBroker.brokers ?? "", clientID: "xray-test", properties: [
            "receive.message.max.bytes": "66000", "fetch.max.bytes": "65000", "message.max.bytes": "65000", "fetch.message.max.bytes": "65000",
        ]), groupID: "unused")
        await #expect {
            try await KafkaConsumer.readRange(partition, first: 1, last: 2, configuration: small, logger: quiet, wait: .seconds(3)) { _ in }
        } throws: { error in
            guard let error = error as? KafkaError else { return false }
            return error.isRetriable && error.name == "_TIMED_OUT" && error.message.contains("served those before 1")
        }
    }
}
