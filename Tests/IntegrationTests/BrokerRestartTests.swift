import Foundation
import KafkaIO
import Logging
import Stages
import Synchronization
import Testing
import TestSupport
import Wire

/// The broker goes away and comes back (Tansu on its S3 storage, so topics survive): every
/// stage resumes by itself, whatever it was doing, and says so when it cannot.
@Suite("Broker restarts", .serialized, .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct BrokerRestartTests {
    typealias S = StreamingTrainingTests

    /// A broker of the test's own with `name`'s topics, v0 published on them, and a producer.
    static func setUp(_ name: String) async throws -> (RestartableBroker, TopicCatalog, KafkaProducer) {
        let topics = TopicCatalog(prefix: "\(name)-\(UInt32.random(in: 0...UInt32.max)).")
        let broker = try await RestartableBroker(topics: topics)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: broker.kafka), logger: TestBroker.logger)
        try await S.publish(try S.model(), version: "v0", topics: topics, producer)
        return (broker, topics, producer)
    }

    static func shardSteps(_ broker: RestartableBroker, _ topics: TopicCatalog) async throws -> Int {
        let records = try await broker.collect(topics.models, timeout: .seconds(8)) { _ in false }
        return records.filter { $0.headers.text(ModelVersionRecord.Header.part) == ModelVersionRecord.Part.shard }
            .compactMap { try? JSONDecoder().decode(ShardAnnouncement.self, from: Data($0.value)).step }.max() ?? 0
    }

    /// Expects every process still running, stops them with SIGTERM and expects each to exit 0.
    static func expectRunningThenStopCleanly(_ names: [String], _ processes: [Process]) async {
        for (name, p) in zip(names, processes) { #expect(p.isRunning, "\(name) exited") }
        for p in processes { p.terminate() }
        for p in processes {
            await p.exited()
            #expect(p.terminationStatus == 0, TestBroker.exitReport(p))
        }
    }

    @Test("decoder, preprocessor, scorer, trainer and aggregator resume after two SIGKILLs of the broker, one outage longer than the session timeout")
    func everyStageResumes() async throws {
        let (broker, topics, producer) = try await Self.setUp("restart")
        defer { broker.stop() }
        let kinds = [("decoder", ["decoder"]), ("preprocessor", ["preprocessor"]), ("scorer", ["scorer", "--batch", "8"]),
                     ("trainer", ["trainer", "--batch", "8", "--batch-wait-ms", "2000", "--validation", "0", "--id", "t1"]),
                     ("aggregator", ["aggregator", "--lr", "0.002", "--warmup", "2"])]
        let logs = kinds.map { TestBroker.logFile(prefix: topics.prefix, $0.0) }
        let processes = try zip(kinds, logs).map { try broker.spawnXray($0.1 + ["--stall-after-s", "10"], prefix: topics.prefix, log: $1) }
        defer { for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await S.waitUntilAssigned(logs)

        // 96 labelled images at 6 a second; the broker SIGKILLed 4 s in (back after 3 s) and
        // 14 s in (back after 12 s, twice the session timeout). Writers are held before each
        // kill until nothing is in flight: Tansu 0.6's S3 storage can lose a record it is
        // writing when it is SIGKILLed (it counts the producer's sequence number before it
        // writes the batch, so the resent batch is answered "duplicate" and never written),
        // which no client can prevent; this test is about the stages resuming, so the broker
        // dies quiet. On a loaded machine a chunk's acknowledgements take seconds, so the kill
        // waits for the publisher to park rather than for a fixed time.
        let hold = Flag()
        let parked = Flag()
        let images = try Dataset.kermany(96)
        let publishing = Task {
            var published = 0
            let publisher = ModalityPublisher(topic: topics.raw, source: "restart-test", rate: 6)
            for chunk in stride(from: 0, to: images.count, by: 6) {
                while hold.isSet {
                    parked.set(true)
                    try await Task.sleep(for: .milliseconds(50))
                }
                parked.set(false)
                published += try await publisher.publish(Array(images[chunk..<min(images.count, chunk + 6)]), with: producer).published
            }
            parked.set(true)
            return published
        }
        func killQuietly(outage: Duration) async throws {
            hold.set(true)
            let parkBy = ContinuousClock.now + .seconds(60)
            while !parked.isSet, ContinuousClock.now < parkBy { try await Task.sleep(for: .milliseconds(50)) }
            for p in processes { kill(p.processIdentifier, SIGSTOP) }
            try await Task.sleep(for: .seconds(3))
            try await broker.kill()
            for p in processes { kill(p.processIdentifier, SIGCONT) }
            hold.set(false)
            try await Task.sleep(for: outage)
            try await broker.restart()
        }
        try await Task.sleep(for: .seconds(4))
        try await killQuietly(outage: .seconds(3))
        try await Task.sleep(for: .seconds(7))
        try await killQuietly(outage: .seconds(12))
        let stepAfterOutages = try await Self.shardSteps(broker, topics)
        let published = try await publishing.value
        await producer.close()

        // Every image is scored: published before, during and after the outages.
        let raw = Set(try await broker.collect(topics.raw, timeout: .seconds(60)) { $0.count >= images.count }.compactMap(\.keyText))
        // Up to 10 minutes: on a loaded machine Tansu's S3 storage, restarted, took 7.0 to 7.4
        // minutes to give the stages' groups their partitions again (three full-suite runs;
        // alone, half a minute), and the stages then went on by themselves.
        let predictions = try await broker.collect(topics.predictions, timeout: .seconds(600)) { raw.isSubset(of: Set($0.compactMap(\.keyText))) }
        let scored = Set(predictions.compactMap(\.keyText))
        let missingOnRaw = Set(images.map(\.metadata.imageID)).subtracting(raw)
        if !raw.isSubset(of: scored) {
            let decoded = Set(try await broker.collect(topics.decoded, timeout: .seconds(30)) { raw.isSubset(of: Set($0.compactMap(\.keyText))) }.compactMap(\.keyText))
            let tensors = Set(try await broker.collect(topics.tensors, timeout: .seconds(30)) { raw.isSubset(of: Set($0.compactMap(\.keyText))) }.compactMap(\.keyText))
            print("not scored, by the last topic holding them: on raw only \(raw.subtracting(decoded).sorted()), decoded only \(decoded.subtracting(tensors).intersection(raw).sorted()), tensors but no prediction \(tensors.subtracting(scored).intersection(raw).sorted())")
        }
        // Training goes on after the outages.
        var finalStep = stepAfterOutages
        let deadline = ContinuousClock.now + .seconds(120)
        while finalStep <= stepAfterOutages && ContinuousClock.now < deadline {
            try await Task.sleep(for: .seconds(3))
            finalStep = try await Self.shardSteps(broker, topics)
        }
        let reconnects = try logs.map { try String(contentsOf: $0, encoding: .utf8).components(separatedBy: "reconnected with fetch.wait.max.ms").count - 1 }
        print("broker restarts: \(published) acknowledged, \(raw.count) on xray.raw, \(scored.intersection(raw).count) scored; training step \(stepAfterOutages) after the outages, \(finalStep) at the end; stall reconnects per stage \(zip(kinds.map(\.0), reconnects).map { "\($0) \($1)" })")
        #expect(published == images.count)
        // Not asserted: records the broker acknowledged to this test's own publisher and then
        // did not keep. Tansu 0.6's S3 storage desynchronises its idempotence bookkeeping under
        // concurrent produce (an OUT_OF_ORDER_SEQUENCE_NUMBER with no restart at all) and has
        // lost 0 to 22 of 96 acknowledged records in this test, even with nothing in flight at
        // the kill. That is the broker's durability, not the stages'; what the stages must do
        // with every record the broker does hold is asserted below.
        if !missingOnRaw.isEmpty {
            print("the broker acknowledged \(missingOnRaw.count) record(s) it does not hold (Tansu's S3 storage): \(missingOnRaw.sorted())")
        }
        #expect(raw.isSubset(of: scored), "not scored: \(raw.subtracting(scored).sorted())")
        #expect(finalStep > stepAfterOutages, "training did not go on after the outages")
        await Self.expectRunningThenStopCleanly(kinds.map(\.0), processes)
    }

    @Test("stages started while the broker is away wait for it, then score and train")
    func stagesStartedDuringAnOutageWait() async throws {
        let (broker, topics, producer) = try await Self.setUp("away")
        defer { broker.stop() }
        try await broker.kill()
        let kinds = [("decoder", ["decoder"]), ("preprocessor", ["preprocessor"]), ("scorer", ["scorer"]),
                     ("trainer", ["trainer", "--batch", "4", "--batch-wait-ms", "2000", "--validation", "0", "--id", "t1"]),
                     ("aggregator", ["aggregator", "--lr", "0.002", "--warmup", "2"])]
        let logs = kinds.map { TestBroker.logFile(prefix: topics.prefix, $0.0) }
        let processes = try zip(kinds, logs).map { try broker.spawnXray($0.1, prefix: topics.prefix, log: $1) }
        defer { for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await Task.sleep(for: .seconds(15))  // longer than a metadata request's 10 s timeout
        let early = zip(kinds, processes).filter { !$0.1.isRunning }.map(\.0.0)
        try await broker.restart()
        let images = try Dataset.kermany(12)
        _ = try await ModalityPublisher(topic: topics.raw, source: "away-test", rate: 6).publish(images, with: producer)
        await producer.close()
        let wanted = Set(images.map(\.metadata.imageID))
        let scored = Set(try await broker.collect(topics.predictions, timeout: .seconds(120)) {
            wanted.isSubset(of: Set($0.compactMap(\.keyText)))
        }.compactMap(\.keyText))
        var step = 0
        let deadline = ContinuousClock.now + .seconds(90)
        while step < 1, ContinuousClock.now < deadline { step = try await Self.shardSteps(broker, topics) }
        print("started during an outage: exited before the broker was back \(early), \(scored.intersection(wanted).count) of \(wanted.count) scored, training step \(step)")
        #expect(early.isEmpty, "exited while the broker was away: \(early)")
        #expect(wanted.isSubset(of: scored))
        #expect(step >= 1, "training did not start")
        await Self.expectRunningThenStopCleanly(kinds.map(\.0), processes)
    }

    @Test("a consumer paused for backpressure when the broker dies resumes once its stage takes records again")
    func pausedConsumerResumes() async throws {
        let topics = TopicCatalog(prefix: "paused-\(UInt32.random(in: 0...UInt32.max)).")
        let broker = try await RestartableBroker(topics: topics)
        defer { broker.stop() }
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: broker.kafka), logger: TestBroker.logger)
        let ids = (0..<40).map { "r\($0)" }
        for id in ids { _ = try await producer.send(OutgoingRecord(topic: topics.decoded, key: id, value: Array(id.utf8))) }
        await producer.close()

        var configuration = ConsumerConfiguration(kafka: broker.kafka, groupID: "\(topics.prefix)slow")
        configuration.maxBufferedRecords = 4
        configuration.stallAfterMilliseconds = 10_000
        var logger = TestBroker.logger
        logger.logLevel = min(logger.logLevel, .info)  // its assignments and pauses, should it fail
        let consumer = try KafkaConsumer(configuration: configuration, subscription: .group(topics: [topics.decoded]), logger: logger)
        // The stage takes two records and then nothing: the buffer fills and the consumer pauses.
        var seen = Set<String>()
        while seen.count < 2, let record = await consumer.next(timeout: .seconds(30)) {
            seen.insert(record.keyText ?? "")
            consumer.complete(record)
        }
        try await Task.sleep(for: .seconds(2))
        try await broker.kill()
        try await Task.sleep(for: .seconds(12))  // twice the session timeout: the member is gone
        try await broker.restart()
        let restarted = ContinuousClock.now
        var firstAfter: Duration?
        while seen.count < ids.count, ContinuousClock.now < restarted + .seconds(120) {
            guard let record = await consumer.next(timeout: .seconds(1)) else { continue }
            firstAfter = firstAfter ?? ContinuousClock.now - restarted
            seen.insert(record.keyText ?? "")
            consumer.complete(record)
        }
        await consumer.close()
        print("paused through a 12 s outage: \(seen.count) of \(ids.count) records read, the first \(firstAfter.map { "\($0)" } ?? "never") after the restart")
        #expect(seen == Set(ids), "never read: \(Set(ids).subtracting(seen).sorted())")
    }

    @Test("a consumer that cannot progress reports a stall (log and metric) and recovers; one that can reports none")
    func stallIsReportedOnlyWhenReal() async throws {
        // Stalled: a decoder whose fetch wait (1 ms) is shorter than Tansu's S3 storage needs to
        // serve a fetch, so every fetch comes back empty while records wait: what a consumer
        // with the old 10 ms wait met after a broker restart. It must say so, and recover.
        let topics = TopicCatalog(prefix: "stall-\(UInt32.random(in: 0...UInt32.max)).")
        let broker = try await RestartableBroker(topics: topics)
        defer { broker.stop() }
        let images = try Dataset.kermany(20)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: broker.kafka), logger: TestBroker.logger)
        _ = try await ModalityPublisher(topic: topics.raw, source: "stall-test", rate: 10).publish(images, with: producer)
        await producer.close()
        let port = TestBroker.freePort()
        let log = TestBroker.logFile(prefix: topics.prefix, "decoder")
        let decoder = try broker.spawnXray(["decoder", "--stall-after-s", "3", "-X", "fetch.wait.max.ms=1",
                                            "--metrics-port", String(port), "--metrics-host", "127.0.0.1"], prefix: topics.prefix, log: log)
        defer { if decoder.isRunning { kill(decoder.processIdentifier, SIGKILL) } }
        let peak = Mutex(0.0)
        let sampling = Task {
            while !Task.isCancelled {
                if let text = try? await Scrape.metrics(port),
                   let value = Scrape.value(text, #"xray_consumer_stalled_seconds{consumer="\#(topics.prefix)decoder"}"#) {
                    peak.withLock { $0 = max($0, value) }
                }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        let wanted = Set(images.map(\.metadata.imageID))
        let decoded = try await broker.collect(topics.decoded, timeout: .seconds(180)) { wanted.isSubset(of: Set($0.compactMap(\.keyText))) }
        sampling.cancel()
        let text = try String(contentsOf: log, encoding: .utf8)
        let warning = text.split(separator: "\n").first { $0.contains("is stalled") }.map(String.init) ?? "none"
        let reconnects = text.split(separator: "\n").filter { $0.contains("reconnected with") }.count
        print("stalled decoder: peak xray_consumer_stalled_seconds \(peak.withLock { $0 }), \(reconnects) reconnects; warning: \(warning)")
        #expect(warning.contains("xray.raw[") && warning.contains("fetch.wait.max.ms is 1"), "the warning names the partitions, their lag and the wait")
        #expect(peak.withLock { $0 } >= 2, "the metric showed the stall")
        #expect(reconnects >= 1)
        #expect(wanted.isSubset(of: Set(decoded.compactMap(\.keyText))), "recovered: everything decoded with a longer wait")
        #expect(decoder.isRunning)
        decoder.terminate()
        await decoder.exited()

        // Not stalled: a decoder on the in-memory test broker with the same threshold, busy and
        // then idle past the threshold.
        let healthy = try await TestBroker.freshTopics("nostall")
        let calmLog = TestBroker.logFile(prefix: healthy.prefix, "decoder")
        let calm = try TestBroker.spawnXray(["decoder", "--stall-after-s", "3"], prefix: healthy.prefix, log: calmLog)
        defer { if calm.isRunning { kill(calm.processIdentifier, SIGKILL) } }
        try await S.waitUntilAssigned([calmLog])
        let calmProducer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        _ = try await ModalityPublisher(topic: healthy.raw, source: "stall-test", rate: 4).publish(images, with: calmProducer)
        await calmProducer.close()
        _ = try await TestBroker.collect(healthy.decoded, timeout: .seconds(60)) { wanted.isSubset(of: Set($0.compactMap(\.keyText))) }
        try await Task.sleep(for: .seconds(5))
        calm.terminate()
        await calm.exited()
        #expect(try !String(contentsOf: calmLog, encoding: .utf8).contains("stalled"), "a healthy decoder reported a stall")
    }
}

/// A flag one task sets and another reads.
final class Flag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set(_ on: Bool) { value.store(on, ordering: .releasing) }
}
