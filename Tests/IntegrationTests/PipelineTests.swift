import Foundation
import KafkaIO
import Stages
import Testing
import Wire

@Suite("Decoder and preprocessor on a real broker", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct PipelineTests {
    func runner(_ stage: any Stage, _ topics: TopicCatalog) -> StageRunner {
        let consumer = ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)\(stage.name)")
        return StageRunner(stage: stage,
                           configuration: StageRunnerConfiguration(consumer: consumer, producer: ProducerConfiguration(kafka: TestBroker.kafka),
                                                                   deadLetterTopic: topics.deadletter),
                           logger: TestBroker.logger)
    }

    @Test("every good image yields a tensor; every bad record is dead-lettered with its reason")
    func imagesToTensors() async throws {
        let topics = try await TestBroker.freshTopics("pipeline")
        let decoder = runner(DecoderStage(topics: topics), topics)
        let preprocessor = runner(try PreprocessorStage(topics: topics), topics)
        let tasks = [Task { try await decoder.run() }, Task { try await preprocessor.run() }]

        let good = try Dataset.nih(12) + Dataset.kermany(4)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        let publisher = ModalityPublisher(topic: topics.raw, source: "integration")
        let summary = try await publisher.publish(good, with: producer)
        #expect(summary.published == good.count)

        let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: good[0].path)))
        let bad: [(id: String, value: [UInt8], reason: String)] = [
            ("bad-truncated", Array(png.prefix(png.count / 3)), "corrupt or truncated PNG"),
            ("bad-text", Array("not an image at all".utf8), "unknown image format"),
            ("bad-empty", [], "empty image record"),
            ("bad-bomb", try Self.bombPNG(), "decompression-bomb guard"),
        ]
        for b in bad {
            try await producer.send(OutgoingRecord(topic: topics.raw, key: b.id, value: b.value,
                                                   headers: [KafkaHeader(HeaderName.imageID, b.id), KafkaHeader("origin", "test")]))
        }
        // A record on the decoded topic that is not a decoded image: the preprocessor refuses it.
        try await producer.send(OutgoingRecord(topic: topics.decoded, key: "bad-decoded", value: Array("XRDI garbage".utf8)))
        await producer.close()

        let wanted = Set(good.map(\.metadata.imageID))
        let tensors = try await TestBroker.collect(topics.tensors, timeout: .seconds(90)) { records in
            wanted.isSubset(of: Set(records.compactMap(\.keyText)))
        }
        let letters = try await TestBroker.collect(topics.deadletter, timeout: .seconds(30)) { $0.count >= bad.count + 1 }
        tasks.forEach { $0.cancel() }
        for task in tasks { try await task.value }

        #expect(Set(tensors.compactMap(\.keyText)) == wanted)
        for record in tensors {
            let tensor = try Tensor(decoding: record.value)
            #expect(tensor.shape == [3, 224, 224])
            #expect(record.headers.text(HeaderName.contentType) == ContentType.tensor)
            #expect(record.headers.text(HeaderName.source) == "integration")
            #expect(record.headers.text(HeaderName.decodedAt) != nil && record.headers.text(HeaderName.preprocessedAt) != nil)
            let file = good.first { $0.metadata.imageID == record.keyText }!
            #expect(record.headers.text(HeaderName.labels).map(ImageMetadata.parseLabels) == file.metadata.labels)
        }
        for b in bad {
            let letter = letters.first { $0.keyText == b.id }
            #expect(letter != nil, "\(b.id) missing from the dead-letter topic")
            #expect(letter?.headers.text(HeaderName.DeadLetter.stage) == "decoder")
            #expect(letter?.headers.text(HeaderName.DeadLetter.error)?.contains(b.reason) == true,
                    "\(b.id): \(letter?.headers.text(HeaderName.DeadLetter.error) ?? "-")")
            #expect(letter?.headers.text("origin") == "test")  // original headers kept
            #expect(letter?.value == b.value)  // original value kept
        }
        let decodedLetter = letters.first { $0.keyText == "bad-decoded" }
        #expect(decodedLetter?.headers.text(HeaderName.DeadLetter.stage) == "preprocessor")
        #expect(decoder.statistics.snapshot.deadLettered == bad.count)
    }

    /// The ImagingTests fixture whose header claims 100000 x 100000 pixels.
    static func bombPNG() throws -> [UInt8] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ImagingTests/Fixtures/bomb.png")
        return [UInt8](try Data(contentsOf: url))
    }
}
