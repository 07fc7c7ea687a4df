import Foundation
import KafkaIO
import ModelVersions
import Stages
import Testing
import TestSupport
import Wire

/// Start-up through xray.models.heads: however many versions were written, a starting reader
/// reads only the version it uses, and stays on the newest intact one when heads or records
/// are missing or bad.
@Suite("Model versions found through their heads, on a real broker", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct ModelHeadsTests {
    typealias S = StreamingTrainingTests
    typealias G = GateTests

    /// A model whose weights differ from `model`'s by `delta` (so each version is distinct).
    static func shifted(_ model: ModelFile, by delta: Float) throws -> ModelFile {
        let copy = try ModelFile.decode(try model.encoded(), name: "copy")
        for p in copy.network.parameters where p.name.hasPrefix("classifier.") {
            for i in 0..<p.count { p.value[i] += delta }
        }
        return copy
    }

    static func follower(_ topics: TopicCatalog, _ name: String, kinds: Set<ModelAnnouncement.Kind>,
                         onVersion: @escaping @Sendable (ModelAnnouncement) -> Void = { _ in }) -> ModelFollower {
        ModelFollower(topic: topics.models, consumer: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)\(name)"),
                      logger: TestBroker.logger, stage: name, assembling: kinds) { announcement, _, _ in onVersion(announcement) }
    }

    /// Starts `follower`, waits until it is ready, and returns the task running it.
    static func started(_ follower: ModelFollower) async throws -> Task<Void, any Error> {
        let task = Task { try await follower.run() }
        let deadline = ContinuousClock.now + .seconds(60)
        while !(follower.hasCaughtUp && follower.version != nil), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        return task
    }

    static let fileParts: Set = [ModelVersionRecord.Part.chunk, ModelVersionRecord.Part.announcement]
    static let shardParts: Set = [ModelVersionRecord.Part.shardChunk, ModelVersionRecord.Part.shardState, ModelVersionRecord.Part.shard]

    /// The records and value bytes on xray.models of `version`'s whole file (`fileParts`) or
    /// shards (`shardParts`): a promoted version has both, under the same name.
    static func footprint(of version: String, in topics: TopicCatalog, parts: Set<String> = fileParts) async throws -> (records: Int, bytes: Int) {
        var records = 0, bytes = 0
        try await KafkaConsumer.readWholeTopic(topics.models, configuration: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)count"),
                                               logger: TestBroker.logger) { record in
            guard record.headers.text(ModelVersionRecord.Header.version) == version,
                  parts.contains(record.headers.text(ModelVersionRecord.Header.part) ?? "") else { return }
            records += 1
            bytes += record.value.count
        }
        return (records, bytes)
    }

    @Test("after 24 trained versions and 3 promotions a fresh scorer reads only the version it serves, a fresh trainer only the newest trained one and its base; an old promoted version can be fetched; a rollback reaches a running scorer")
    func startUpReadsOneVersion() async throws {
        let (topics, _, producer) = try await S.setUp("heads")
        let v0 = try S.model()
        var promoted: [String] = []
        for step in 1...24 {
            let model = try Self.shifted(v0, by: Float(step) * 0.01)
            try await G.publishTrained(model, step: step, topics: topics, producer)
            if step % 8 == 0 {
                let version = ShardAggregator.versionName(run: "v0-ft", step: step)
                let records = try ModelVersionCodec.records(for: try model.encoded(), manifest: model.manifest, version: version,
                                                            topic: topics.models, promotion: true, trained: ("v0-ft", step, "v0"))
                try await producer.sendVersion(records, headsTopic: topics.modelHeads, logger: TestBroker.logger)
                promoted.append(version)
            }
        }
        let newestTrained = ShardAggregator.versionName(run: "v0-ft", step: 24)

        // A fresh scorer: the newest promoted version, and not one record of any other.
        let scorer = Self.follower(topics, "scorer-models", kinds: [.published, .promoted])
        let scoring = try await Self.started(scorer)
        defer { scoring.cancel() }
        let served = try await Self.footprint(of: promoted[2], in: topics)
        print("fresh scorer: serves \(scorer.version ?? "nothing"), read \(scorer.read.records) records / \(scorer.read.bytes) bytes (the version: \(served.records) / \(served.bytes)), passed over \(scorer.read.passedOver)")
        #expect(scorer.version == promoted[2])
        #expect(scorer.read.records == served.records && scorer.read.bytes == served.bytes && scorer.read.passedOver == 0)

        // A fresh trainer: the newest trained version, rebuilt from its shards and its base.
        let trainer = Self.follower(topics, "trainer-models", kinds: [.published, .trained])
        let training = try await Self.started(trainer)
        defer { training.cancel() }
        let trained = try await Self.footprint(of: newestTrained, in: topics, parts: Self.shardParts)
        let base = try await Self.footprint(of: "v0", in: topics)
        print("fresh trainer: uses \(trainer.version ?? "nothing"), read \(trainer.read.records) records / \(trainer.read.bytes) bytes (the version \(trained.records) / \(trained.bytes), its base \(base.records) / \(base.bytes)), passed over \(trainer.read.passedOver)")
        #expect(trainer.version == newestTrained)
        #expect(trainer.read.records == trained.records + base.records && trainer.read.bytes == trained.bytes + base.bytes)

        // An old promoted version, by name.
        let history = try await ModelHistory.read(topic: topics.models, consumer: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)fetch"),
                                                  logger: TestBroker.logger, named: promoted[0], loading: [.named])
        #expect(history.named?.announcement.version == promoted[0])
        #expect(history.read.records == (try await Self.footprint(of: promoted[0], in: topics)).records)

        // The registry lists every promoted version and marks the serving one.
        let registry = ModelRegistry(try await ModelHistory.read(topic: topics.models, consumer: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)list"),
                                                                 logger: TestBroker.logger, loading: []))
        #expect(Set(registry.entries.filter { $0.kind == .promoted }.map(\.version)) == Set(promoted))
        #expect(registry.serving == promoted[2] && registry.entries.filter(\.serving).map(\.version) == [promoted[2]])

        // A rollback by an operator reaches the running scorer.
        let rollback = try TestBroker.spawnXray(["model", "rollback", promoted[0], "--reason", "the test says so"], prefix: topics.prefix)
        await rollback.exited()
        #expect(rollback.terminationStatus == 0)
        let deadline = ContinuousClock.now + .seconds(30)
        while scorer.version != promoted[0], ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(scorer.version == promoted[0], "the scorer did not switch to the rolled-back version")
        let after = ModelRegistry(try await ModelHistory.read(topic: topics.models, consumer: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)list2"),
                                                              logger: TestBroker.logger, loading: []))
        #expect(after.serving == promoted[0])
        #expect(after.entries.first { $0.version == promoted[0] }?.rollbackReason?.contains("the test says so") == true)
        await producer.close()
    }

    @Test("a version without its head (writer killed in between), a head whose version fails its checks, and a head whose records are gone each leave readers on the newest intact version")
    func faultsLeaveTheNewestIntactVersion() async throws {
        let (topics, _, producer) = try await S.setUp("headfaults")
        let v0 = try S.model()
        let v1 = try Self.shifted(v0, by: 0.01)
        try await S.publish(v1, version: "v1", topics: topics, producer)
        // Written, but the writer died before the head: no reader may see it.
        try await producer.sendInOrder(try ModelVersionCodec.records(for: try Self.shifted(v0, by: 0.02).encoded(), manifest: v0.manifest,
                                                                     version: "v-headless", topic: topics.models), logger: TestBroker.logger)
        // A head whose version is damaged: refused for its CRC-32.
        var corrupt = try ModelVersionCodec.records(for: try Self.shifted(v0, by: 0.03).encoded(), manifest: v0.manifest, version: "v-corrupt",
                                                    topic: topics.models, chunkBytes: 1 << 18)
        corrupt[0].value[3] ^= 0x55
        try await producer.sendVersion(corrupt, headsTopic: topics.modelHeads, logger: TestBroker.logger)
        // A head whose records are not on the topic (retention removed them; here: never written).
        var gone = ModelHead(kind: .published, version: "v-gone", partition: 0, first: 1_000_000, last: 1_000_010, bytes: 1, writtenAt: "now")
        gone.writtenAt = "2026-12-01T00:00:00Z"
        try await producer.sendHead(gone, headsTopic: topics.modelHeads, logger: TestBroker.logger)

        let log = TestBroker.logFile(prefix: topics.prefix, "scorer")
        let scorer = try TestBroker.spawnXray(["scorer"], prefix: topics.prefix, log: log)
        defer { if scorer.isRunning { scorer.terminate(); scorer.waitUntilExit() } }
        let deadline = ContinuousClock.now + .seconds(60)
        var text = ""
        while !text.contains("using model"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        }
        print(text.split(separator: "\n").filter { $0.contains("refused") || $0.contains("using model") }.joined(separator: "\n"))
        #expect(text.contains("refused model v-gone") && text.contains("no longer on"))
        #expect(text.contains("refused model v-corrupt") && text.contains("CRC-32"))
        #expect(text.contains("using model v1"))
        #expect(!text.contains("v-headless"))

        // The in-process follower agrees.
        let follower = Self.follower(topics, "scorer-models", kinds: [.published, .promoted])
        let following = try await Self.started(follower)
        defer { following.cancel() }
        #expect(follower.version == "v1", "the follower's decisions: \(follower.decisions)")
        await producer.close()
    }

    @Test("a preprocessor started before any model version makes no tensor until one is in force, then makes them as its manifest says")
    func preprocessorWaitsForAModel() async throws {
        let topics = try await TestBroker.freshTopics("prewait")
        let logs = ["decoder", "preprocessor"].map { TestBroker.logFile(prefix: topics.prefix, $0) }
        let processes = try zip(["decoder", "preprocessor"], logs).map { try TestBroker.spawnXray([$0], prefix: topics.prefix, log: $1) }
        defer { for p in processes where p.isRunning { p.terminate(); p.waitUntilExit() } }
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        let images = try Dataset.kermany(4)
        _ = try await ModalityPublisher(topic: topics.raw, source: "prewait-test").publish(images, with: producer)
        let decoded = try await TestBroker.collect(topics.decoded, timeout: .seconds(90)) { $0.count >= images.count }
        #expect(decoded.count == images.count)
        // Decoded, and no model yet: the preprocessor waits (its default options would make
        // 3x224x224 tensors that no scorer of this model could use).
        let early = try await TestBroker.collect(topics.tensors, timeout: .seconds(5)) { !$0.isEmpty }
        #expect(early.isEmpty, "tensors before any model: \(early.count)")

        let model = try S.model()
        try await S.publish(model, version: "v1", topics: topics, producer)
        await producer.close()
        let tensors = try await TestBroker.collect(topics.tensors, timeout: .seconds(90)) { $0.count >= images.count }
        let shapes = try tensors.map { try Tensor(decoding: $0.value).shape }
        #expect(Set(tensors.compactMap(\.keyText)) == Set(images.map(\.metadata.imageID)),
                "the preprocessor's log: \(((try? String(contentsOf: logs[1], encoding: .utf8)) ?? "").suffix(3000))")
        #expect(shapes.allSatisfy { $0 == model.manifest.preprocess.outputShape }, "shapes \(shapes), the model's \(model.manifest.preprocess.outputShape)")
    }
}
