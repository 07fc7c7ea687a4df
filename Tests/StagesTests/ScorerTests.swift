import Engine
import Foundation
import KafkaIO
import ModelVersions
@testable import Stages
import Testing
import Wire

@Suite("Model versions and the scorer")
struct ScorerTests {
    let spec = PreprocessSpec(resize: 36, crop: 32, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])

    func model(labels: [String] = ["Pneumonia", "Nodule", "Pneumothorax"], seed: UInt64 = 1) throws -> ModelFile {
        try ModelFile.initialized(architecture: .smallCNN, labels: labels, preprocess: spec, seed: seed)
    }

    /// Records as the broker hands them back, offsets in order.
    func consumed(_ records: [OutgoingRecord]) -> [KafkaRecord] {
        records.enumerated().map { KafkaRecord(topic: $1.topic, partition: 0, offset: Int64($0), key: $1.key, value: $1.value, headers: $1.headers) }
    }

    @Test func aVersionRoundTripsThroughChunks() throws {
        let m = try model()
        let file = try m.encoded()
        let records = try ModelVersionCodec.records(for: file, manifest: m.manifest, version: "v1", topic: "xray.models", chunkBytes: 100_000)
        #expect(records.count == (file.count + 99_999) / 100_000 + 1)
        var assembler = ModelVersionAssembler()
        let outcomes = consumed(records).compactMap { assembler.add($0) }
        guard case .complete(let announcement, let bytes)? = outcomes.first, outcomes.count == 1 else {
            Issue.record("expected one complete version, got \(outcomes)"); return
        }
        #expect(announcement.version == "v1" && announcement.manifest.version == "v1")
        #expect(bytes == file)
        let decoded = try ModelFile.decode(bytes, name: "v1")
        #expect(decoded.network.parameters.map(\.values) == m.network.parameters.map(\.values))
    }

    @Test func corruptOrIncompleteVersionsAreRefusedWithAReason() throws {
        let m = try model()
        let records = try ModelVersionCodec.records(for: try m.encoded(), manifest: m.manifest, version: "v2", topic: "t", chunkBytes: 100_000)
        // A flipped byte in chunk 1.
        var corrupt = consumed(records)
        corrupt[1].value[10] ^= 0xFF
        var assembler = ModelVersionAssembler()
        let refused = corrupt.compactMap { assembler.add($0) }
        guard case .rejected(_, let reason)? = refused.first else { Issue.record("not refused"); return }
        #expect(reason.contains("CRC-32"))
        // A lost chunk.
        var missing = consumed(records)
        missing.remove(at: 2)
        var second = ModelVersionAssembler()
        guard case .rejected(_, let why)? = missing.compactMap({ second.add($0) }).first else { Issue.record("not refused"); return }
        #expect(why.contains("incomplete"))
        // A later good version still assembles after the bad ones.
        let good = try ModelVersionCodec.records(for: try m.encoded(), manifest: m.manifest, version: "v3", topic: "t")
        guard case .complete(let a, _)? = consumed(good).compactMap({ second.add($0) }).first else { Issue.record("v3 refused"); return }
        #expect(a.version == "v3")
    }

    @Test func triageLevels() {
        let policy = TriagePolicy(thresholds: ["Nodule": 0.8], defaultThreshold: 0.5, urgent: ["Pneumothorax"])
        let labels = ["Pneumonia", "Nodule", "Pneumothorax"]
        #expect(policy.assess(labels: labels, probabilities: [0.1, 0.7, 0.2]) == ([], .normal))
        #expect(policy.assess(labels: labels, probabilities: [0.6, 0.9, 0.2]) == (["Pneumonia", "Nodule"], .abnormal))
        #expect(policy.assess(labels: labels, probabilities: [0.1, 0.1, 0.5]) == (["Pneumothorax"], .urgent))
        #expect(policy.problem(labels: ["Pneumonia"]) != nil)
        #expect(TriagePolicy.standard(labels: Findings.nih14).urgent.count == 5)
    }

    @Test("a site's own thresholds decide its images; other sites and images without one use the label's")
    func siteThresholds() throws {
        let labels = ["Pneumonia", "Pneumothorax"]
        let policy = TriagePolicy(thresholds: ["Pneumothorax": 0.8], defaultThreshold: 0.5, urgent: ["Pneumothorax"],
                                  siteThresholds: ["south": ["Pneumothorax": 0.3]])
        #expect(policy.assess(labels: labels, probabilities: [0.1, 0.4], site: "south") == (["Pneumothorax"], .urgent))
        #expect(policy.assess(labels: labels, probabilities: [0.1, 0.4], site: "north") == ([], .normal))
        #expect(policy.assess(labels: labels, probabilities: [0.1, 0.4]) == ([], .normal))
        #expect(policy.threshold(for: "Pneumonia", site: "south") == 0.5)
        #expect(policy.problem(labels: labels) == nil)
        var unknown = policy
        unknown.siteThresholds = ["south": ["Nodule": 0.3]]
        #expect(unknown.problem(labels: labels)?.contains("Nodule") == true)
        var outOfRange = policy
        outOfRange.siteThresholds = ["south": ["Pneumothorax": 1.5]]
        #expect(outOfRange.problem(labels: labels) != nil)
        var badSite = policy
        badSite.siteThresholds = ["so uth": ["Pneumothorax": 0.3]]
        #expect(badSite.problem(labels: labels)?.contains("not a site name") == true)
        // A policy written before sites existed still reads.
        let old = try JSONDecoder().decode(TriagePolicy.self, from: Data(#"{"thresholds":{"Pneumothorax":0.8},"defaultThreshold":0.5,"urgent":["Pneumothorax"]}"#.utf8))
        #expect(old.siteThresholds == nil && old.threshold(for: "Pneumothorax", site: "south") == 0.8)
    }

    func tensorRecord(_ id: String, values: [Float], shape: [Int] = [3, 32, 32], acquired: Int64 = 1_000) -> KafkaRecord {
        KafkaRecord(topic: "xray.tensors", partition: 0, offset: 0, key: Array(id.utf8), value: Tensor(shape: shape, values: values).encoded(),
                    headers: [KafkaHeader(HeaderName.imageID, id), KafkaHeader(HeaderName.acquiredAt, String(acquired)),
                              KafkaHeader(HeaderName.decodedAt, "1100"), KafkaHeader(HeaderName.preprocessedAt, "1200"),
                              KafkaHeader(HeaderName.labels, "Pneumonia"), KafkaHeader(HeaderName.patientID, "p7")])
    }

    @Test("the scorer triages with the thresholds of the image's site and names the site in the prediction and the alert")
    func scorerUsesTheSiteThresholds() throws {
        let m = try model()
        var manifest = m.manifest
        manifest.triage = TriagePolicy(thresholds: ["Pneumothorax": 1], defaultThreshold: 1, urgent: ["Pneumothorax"],
                                       siteThresholds: ["south": ["Pneumothorax": 0]])
        let slot = ModelSlot()
        slot.replace(with: ServingModel(ModelFile(manifest: manifest, network: m.network), version: "v9"))
        let scorer = ScorerStage(topics: TopicCatalog(), slot: slot)
        let sites: [String?] = ["south", "north", nil, "not a site"]
        let batch = sites.enumerated().map { i, site in
            var record = tensorRecord("img\(i)", values: randomInputs(seed: UInt64(i)))
            if let site { record.headers.append(KafkaHeader(HeaderName.site, site)) }
            return record
        }
        let outputs = try scorer.process(batch: batch).map { try $0.get() }
        let predictions = try outputs.map { try JSONDecoder().decode(Prediction.self, from: Data($0[0].value)) }
        #expect(predictions.map(\.triage) == [.urgent, .normal, .normal, .normal])
        #expect(predictions.map(\.site) == ["south", "north", nil, nil])
        #expect(outputs.map(\.count) == [2, 1, 1, 1])
        let alert = try JSONDecoder().decode(Alert.self, from: Data(outputs[0][1].value))
        #expect(alert.site == "south" && alert.urgentFindings.first?.threshold == 0)
    }

    @Test func scoresABatchAndRaisesAlertsForUrgentImagesOnly() throws {
        let m = try model()
        let slot = ModelSlot()
        var manifest = m.manifest
        // Thresholds that make the decision depend on the image: urgent when Pneumothorax ≥ its
        // median over these inputs.
        let inputs = (0..<6).map { i in randomInputs(seed: UInt64(i)) }
        let probabilities = m.network.probabilities(batch: inputs.flatMap { $0 }, shape: Shape(n: 6, c: 3, h: 32, w: 32))
        let median = probabilities.map { $0[2] }.sorted()[3]
        manifest.triage = TriagePolicy(thresholds: ["Pneumothorax": median], defaultThreshold: 1, urgent: ["Pneumothorax"])
        slot.replace(with: ServingModel(ModelFile(manifest: manifest, network: m.network), version: "v9"))
        let scorer = ScorerStage(topics: TopicCatalog(), slot: slot)

        var batch = inputs.enumerated().map { tensorRecord("img\($0)", values: $1) }
        batch.insert(tensorRecord("wrong-shape", values: [Float](repeating: 0, count: 3 * 16 * 16), shape: [3, 16, 16]), at: 2)
        let results = scorer.process(batch: batch)
        #expect(results.count == 7)
        guard case .failure(let error) = results[2] else { Issue.record("wrong shape accepted"); return }
        #expect("\(error)".contains("[3, 16, 16]"))

        let outputs = results.enumerated().filter { $0.offset != 2 }.map { try! $0.element.get() }
        let decoder = JSONDecoder()
        var urgent = 0
        for (i, out) in outputs.enumerated() {
            let prediction = try decoder.decode(Prediction.self, from: Data(out[0].value))
            #expect(out[0].topic == "xray.predictions" && prediction.imageId == "img\(i)" && prediction.modelVersion == "v9")
            #expect(abs(prediction.probability(of: "Pneumothorax")! - probabilities[i][2]) < 1e-5)
            #expect(prediction.times.acquired == 1_000 && prediction.times.decoded == 1_100 && prediction.times.preprocessed == 1_200)
            #expect(prediction.labels == ["Pneumonia"] && prediction.patientId == "p7")
            let isUrgent = probabilities[i][2] >= median
            #expect(prediction.triage == (isUrgent ? .urgent : .normal))
            #expect(out.count == (isUrgent ? 2 : 1))
            if isUrgent {
                urgent += 1
                let alert = try decoder.decode(Alert.self, from: Data(out[1].value))
                #expect(out[1].topic == "xray.alerts" && alert.urgentFindings.map(\.label) == ["Pneumothorax"])
            }
        }
        #expect(urgent == 3)
    }

    @Test func withoutAModelNothingIsScored() {
        let scorer = ScorerStage(topics: TopicCatalog(), slot: ModelSlot())
        let results = scorer.process(batch: [tensorRecord("a", values: randomInputs(seed: 1))])
        guard case .failure = results[0] else { Issue.record("scored without a model"); return }
    }

    func randomInputs(seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<(3 * 32 * 32)).map { _ in rng.normal() }
    }

    @Test func thePreprocessorFollowsTheManifestAndRefusesAnInvalidOne() throws {
        let stage = try PreprocessorStage(topics: TopicCatalog())
        #expect(stage.spec == .imagenet224)
        try stage.use(try model().manifest)
        #expect(stage.spec == spec)
        let png = [UInt8](try Data(contentsOf: datasets.appendingPathComponent("nih_cxr14_fullres_starter_subset/images/00000075_000.png")))
        let decoded = try DecoderStage(topics: TopicCatalog()).process(
            KafkaRecord(topic: "xray.raw", partition: 0, offset: 0, key: Array("a".utf8), value: png, headers: []))[0]
        let out = try stage.process(KafkaRecord(topic: "xray.decoded", partition: 0, offset: 0, key: decoded.key, value: decoded.value, headers: decoded.headers))
        #expect(try Tensor(decoding: out[0].value).shape == [3, 32, 32])
        var broken = try model().manifest
        broken.preprocess.crop = 99
        #expect(throws: BadInput.self) { try stage.use(broken) }
        #expect(stage.spec == spec)
    }
}
