import Engine
import KafkaIO
import Logging
import ModelVersions
@testable import Stages
import Testing
import Wire

/// Rehearsal: old sites' images mixed into the new site's batches, without Kafka.
@Suite("Rehearsal of old sites' images")
struct RehearsalTests {
    static let spec = PreprocessSpec(resize: 18, crop: 16, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])

    static func model() throws -> ModelFile {
        try ModelFile.initialized(architecture: .smallCNN, labels: ["Pneumonia"], preprocess: spec, seed: 3)
    }

    @Test("the set keeps training patients only, at most its limit, preprocessed for the model, with one target per label")
    func set() throws {
        let files = try kermanyFiles(normal: 30, pneumonia: 30)
        let split = PatientSplit(validationFraction: 0.3)
        let set = RehearsalSet(files: files, model: try Self.model(), split: split, limit: 25, seed: 1)
        let heldOut = Set(split.split(files).validation.map(\.metadata.imageID))
        #expect(set.examples.count == 25 && set.unreadable == 0)
        #expect(set.examples.allSatisfy { !heldOut.contains($0.id) && $0.x.count == 3 * 16 * 16 && ($0.y == [0] || $0.y == [1]) })
        let byID = Dictionary(uniqueKeysWithValues: files.map { ($0.metadata.imageID, $0.metadata.labels ?? []) })
        #expect(set.examples.allSatisfy { ($0.y == [1]) == (byID[$0.id]?.contains("Pneumonia") == true) })
        #expect(RehearsalSet(files: files, model: try Self.model(), split: split, limit: 25, seed: 1).examples.map(\.id) == set.examples.map(\.id))
    }

    @Test("a draw makes the stated share of the batch, the same for the same seed")
    func draw() throws {
        let set = RehearsalSet(files: try kermanyFiles(normal: 10, pneumonia: 10), model: try Self.model(), split: PatientSplit(validationFraction: 0),
                               limit: 20, seed: 1)
        #expect(set.draw(joining: 12, share: 0.25, seed: 5).count == 4)  // 4 of 16
        #expect(set.draw(joining: 8, share: 0.5, seed: 5).count == 8)
        #expect(set.draw(joining: 8, share: 0, seed: 5).isEmpty && set.draw(joining: 0, share: 0.5, seed: 5).isEmpty)
        #expect(set.draw(joining: 12, share: 0.25, seed: 5).map(\.id) == set.draw(joining: 12, share: 0.25, seed: 5).map(\.id))
        #expect(set.draw(joining: 30, share: 0.5, seed: 5).map(\.id) != set.draw(joining: 30, share: 0.5, seed: 6).map(\.id))
    }

    @Test("a trainer with rehearsal sends the gradient of the batch and its rehearsal images, the same when the batch is read again")
    func trainerMixesThemIn() throws {
        let v0 = try Self.model()
        let file = try v0.encoded()
        let slot = TrainingSlot()
        slot.offer(ModelAnnouncement(version: "v0", manifest: v0.manifest, chunks: 1, bytes: file.count, crc32: "", publishedAt: "now"), model: v0)
        func trainer(_ rehearsal: RehearsalSource?) -> TrainerStage {
            var settings = TrainerSettings(trainerID: "t", gradientsTopic: "xray.gradients", inputTopic: "xray.tensors", shards: 2,
                                           batching: Batching(maxRecords: 6, maxWait: .zero))
            settings.split = PatientSplit(validationFraction: 0)
            settings.synchronous = false
            settings.augmentation = .radiograph
            settings.rehearsal = rehearsal
            return TrainerStage(settings: settings, slot: slot, logger: Logger(label: "test"))
        }
        var rng = SeededGenerator(seed: 9)
        let batch = (0..<6).map { i in
            KafkaRecord(topic: "xray.tensors", partition: 0, offset: Int64(i), key: nil,
                        value: Tensor(shape: [3, 16, 16], values: (0..<768).map { _ in rng.normal() }).encoded(),
                        headers: [KafkaHeader(HeaderName.imageID, "img\(i)"), KafkaHeader(HeaderName.labels, i % 2 == 0 ? "Pneumonia" : ""),
                                  KafkaHeader(HeaderName.acquiredAt, "1700000000000")])
        }
        let source = RehearsalSource(files: try kermanyFiles(normal: 10, pneumonia: 10), limit: 20, share: 0.5)
        let rehearsing = trainer(source)
        func gradient(_ t: TrainerStage) throws -> (samples: String?, values: [[UInt8]]) {
            let records = try t.process(batch: batch)[0].get()
            return (records.first?.headers.text(GradientRecord.Header.samples), records.map(\.value))
        }
        let first = try gradient(rehearsing), again = try gradient(rehearsing), plain = try gradient(trainer(nil))
        #expect(first.samples == "12" && plain.samples == "6", "6 new images and 6 rehearsed (half of the batch)")
        #expect(first.values == again.values, "the same batch read again gives the same gradient")
        #expect(first.values != plain.values)
    }
}
