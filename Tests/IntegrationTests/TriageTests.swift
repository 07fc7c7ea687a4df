import Engine
import Foundation
import KafkaIO
import ModelVersions
import Stages
import Testing
import TestSupport
import Wire

@Suite("Triage on a real broker", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct TriageTests {
    /// A small model on 32x32 inputs: fast enough to score in a debug build.
    static let spec = PreprocessSpec(resize: 36, crop: 32, channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    static func model(seed: UInt64) throws -> ModelFile {
        var m = try ModelFile.initialized(architecture: .smallCNN, labels: Findings.nih14, preprocess: spec, seed: seed)
        // Urgent for about half the images whatever the random weights: a low threshold on one label.
        m.manifest.triage = TriagePolicy(thresholds: ["Pneumonia": 0.5], defaultThreshold: 1, urgent: ["Pneumonia"])
        return m
    }

    func publish(_ model: ModelFile, version: String, topics: TopicCatalog, corruptChunk: Int? = nil, with producer: KafkaProducer) async throws {
        var records = try ModelVersionCodec.records(for: try model.encoded(), manifest: model.manifest, version: version,
                                                topic: topics.models, chunkBytes: 256 << 10)
        if let corruptChunk { records[corruptChunk].value[100] ^= 0x5A }
        try await producer.sendVersion(records, headsTopic: topics.modelHeads, logger: TestBroker.logger)
    }

    func runner(_ stage: any Stage, _ topics: TopicCatalog, beforeConsuming: (@Sendable () async throws -> Void)? = nil) -> StageRunner {
        let consumer = ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)\(stage.name)")
        var configuration = StageRunnerConfiguration(consumer: consumer, producer: ProducerConfiguration(kafka: TestBroker.kafka),
                                                     deadLetterTopic: topics.deadletter)
        configuration.beforeConsuming = beforeConsuming
        return StageRunner(stage: stage, configuration: configuration, logger: TestBroker.logger)
    }

    func predictions(_ records: [KafkaRecord]) throws -> [Prediction] {
        try records.map { try JSONDecoder().decode(Prediction.self, from: Data($0.value)) }
    }

    @Test("N real images → exactly N predictions; alerts are the urgent ones; a new version mid-stream serves later images; a corrupt one is refused")
    func endToEndWithAModelSwap() async throws {
        let topics = try await TestBroker.freshTopics("triage")
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        try await publish(try Self.model(seed: 1), version: "v1", topics: topics, with: producer)

        let slot = ModelSlot()
        let follower = ModelFollower.serving(into: slot, topic: topics.models,
                                             consumer: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)models"),
                                             logger: TestBroker.logger)
        let scorer = runner(ScorerStage(topics: topics, slot: slot, batching: Batching(maxRecords: 8, maxWait: .milliseconds(20))), topics,
                            beforeConsuming: { try await follower.ready() })
        let stages = [runner(DecoderStage(topics: topics), topics), runner(try PreprocessorStage(topics: topics, spec: Self.spec), topics), scorer]
        let tasks = [Task { try await follower.run() }] + stages.map { stage in Task { try await stage.run() } }

        let first = try Dataset.nih(10), second = try Dataset.kermany(8)
        _ = try await ModalityPublisher(topic: topics.raw, source: "triage-test").publish(first, with: producer)
        let firstIDs = Set(first.map(\.metadata.imageID))
        _ = try await TestBroker.collect(topics.predictions, timeout: .seconds(120)) { firstIDs.isSubset(of: Set($0.compactMap(\.keyText))) }

        // A corrupt version (one chunk damaged after its checksum), then a good v2.
        try await publish(try Self.model(seed: 2), version: "v-corrupt", topics: topics, corruptChunk: 1, with: producer)
        try await publish(try Self.model(seed: 3), version: "v2", topics: topics, with: producer)
        // Up to 120 s: on a loaded machine a version the broker is slow to serve is read again.
        let deadline = ContinuousClock.now + .seconds(120)
        while slot.current?.version != "v2" && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(slot.current?.version == "v2")
        _ = try await ModalityPublisher(topic: topics.raw, source: "triage-test").publish(second, with: producer)
        await producer.close()

        let all = firstIDs.union(second.map(\.metadata.imageID))
        let records = try await TestBroker.collect(topics.predictions, timeout: .seconds(120)) { all.isSubset(of: Set($0.compactMap(\.keyText))) }
        let scored = try predictions(records)
        let urgentIDs = Set(scored.filter { $0.triage == .urgent }.map(\.imageId))
        let alerts = try await TestBroker.collect(topics.alerts, timeout: .seconds(30)) { Set($0.compactMap(\.keyText)) == urgentIDs }
        tasks.forEach { $0.cancel() }
        for task in tasks { try? await task.value }

        #expect(scored.count == all.count, "duplicates or strays: \(scored.count) predictions for \(all.count) images")
        #expect(Set(scored.map(\.imageId)) == all)
        for p in scored {
            #expect(p.probabilities.map(\.label) == Findings.nih14)
            #expect(p.probabilities.allSatisfy { $0.probability > 0 && $0.probability < 1 })
            let acquired = try #require(p.times.acquired), decoded = try #require(p.times.decoded)
            let preprocessed = try #require(p.times.preprocessed), pneumonia = try #require(p.probability(of: "Pneumonia"))
            #expect(acquired <= decoded && decoded <= preprocessed && preprocessed <= p.times.scored)
            #expect(p.modelVersion == (firstIDs.contains(p.imageId) ? "v1" : "v2"))
            #expect(p.triage == (pneumonia >= 0.5 ? .urgent : .normal))
        }
        #expect(!urgentIDs.isEmpty && urgentIDs.count < all.count, "the threshold should split the images")
        #expect(Set(alerts.compactMap(\.keyText)) == urgentIDs)
        #expect(alerts.count == urgentIDs.count)
        let refused = follower.decisions.filter { !$0.accepted }
        #expect(refused.map(\.version) == ["v-corrupt"])
        #expect(refused.first?.reason?.contains("CRC-32") == true)
    }

    @Test("two scorer processes share the work; SIGKILL on one loses no image")
    func twoScorersAndAKill() async throws {
        let topics = try await TestBroker.freshTopics("scorers")
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        try await publish(try Self.model(seed: 4), version: "v1", topics: topics, with: producer)
        let a = try TestBroker.spawnXray(["scorer", "--batch", "4"], prefix: topics.prefix)
        let b = try TestBroker.spawnXray(["scorer", "--batch", "4"], prefix: topics.prefix)
        defer { for p in [a, b] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await Task.sleep(for: .seconds(6))  // both read the model and join the group
        #expect(a.isRunning && b.isRunning)

        // Tensors straight onto xray.tensors, 60 of them at about 20 per second.
        var rng = SeededGenerator(seed: 5)
        let ids = (0..<60).map { "tensor-\($0)" }
        let feeding = Task {
            for id in ids {
                let values = (0..<(3 * 32 * 32)).map { _ in rng.normal() }
                _ = try await producer.send(OutgoingRecord(topic: topics.tensors, key: id, value: Tensor(shape: [3, 32, 32], values: values).encoded(),
                                                           headers: [KafkaHeader(HeaderName.imageID, id)]))
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        _ = try await TestBroker.collect(topics.predictions, timeout: .seconds(60)) { $0.count >= 10 }
        kill(a.processIdentifier, SIGKILL)
        await a.exited()
        try await feeding.value
        await producer.close()

        let wanted = Set(ids)
        let records = try await TestBroker.collect(topics.predictions, timeout: .seconds(120)) { wanted.isSubset(of: Set($0.compactMap(\.keyText))) }
        let seen = Set(records.compactMap(\.keyText))
        #expect(wanted.subtracting(seen).isEmpty, "lost: \(wanted.subtracting(seen).sorted())")
        #expect(b.isRunning)
        b.terminate()
        await b.exited()
        #expect(b.terminationStatus == 0, TestBroker.exitReport(b))
    }
}
