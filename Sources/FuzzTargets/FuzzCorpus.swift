import Dicom
import Engine
public import Foundation
import Imaging
import KafkaIO
import ModelVersions
import Stages
import Wire

/// What the fuzz targets share (a small network and a shard of it) and the seed corpus:
/// real X-rays from ../shared/datasets and records this project itself writes, so mutations
/// start from inputs that reach deep into each parser.
public enum FuzzCorpus {
    /// The run the checkpoint seeds belong to.
    static let run = "fuzz-ft"
    /// Shards of the network's parameters: many, so a shard's records stay small.
    static let shards = 256
    static let spec = PreprocessSpec(resize: 18, crop: 16, channels: 1, mean: [0.5], std: [0.25])

    /// The small CNN every target that needs a network uses (built once; the fuzzer runs one
    /// input at a time).
    nonisolated(unsafe) static let network = Network(architecture: .smallCNN, labels: 1, inputChannels: 1, seed: 11)

    /// A fresh shard 0 of `network` for one input.
    static func shard() -> ShardAggregator {
        ShardAggregator(run: run, base: "v0", shard: 0, layout: ShardLayout(parameterCount: network.store.count, shards: shards),
                        network: network, mode: .asynchronous(maxStaleness: 2), optimizer: OptimizerSettings(kind: .adam),
                        schedule: .constant(1e-3))
    }

    /// The de-identification the dicom target runs (a fixed key: the fuzzer runs one input at a time).
    /// (nil only if the constant key were shorter than `Pseudonymiser.minimumKeyBytes`; the
    /// corpus replay test checks it is not.)
    static let deidentifier: Deidentifier? = (try? Pseudonymiser(key: Array("fuzz-target-pseudonym-key".utf8))).map(Deidentifier.init)

    static let gradientHeaders = [
        GradientRecord.Header.contribution, GradientRecord.Header.trainer, GradientRecord.Header.baseVersion,
        GradientRecord.Header.baseStep, GradientRecord.Header.shard, GradientRecord.Header.shards, GradientRecord.Header.part,
        GradientRecord.Header.index, GradientRecord.Header.count, GradientRecord.Header.start, GradientRecord.Header.samples,
        GradientRecord.Header.loss, GradientRecord.Header.crc32, HeaderName.schema,
    ]
    static let modelHeaders = [
        ModelVersionRecord.Header.version, ModelVersionRecord.Header.part, ModelVersionRecord.Header.shard,
        ModelVersionRecord.Header.chunk, ModelVersionRecord.Header.crc32, HeaderName.contentType,
    ]
    static let checkpointHeaders = [
        CheckpointRecord.Header.run, CheckpointRecord.Header.shard, CheckpointRecord.Header.slot, CheckpointRecord.Header.step,
        CheckpointRecord.Header.part, CheckpointRecord.Header.chunk, CheckpointRecord.Header.crc32, HeaderName.contentType,
    ]
    static let imageHeaders = [
        HeaderName.imageID, HeaderName.source, HeaderName.acquiredAt, HeaderName.labels, HeaderName.patientID,
        HeaderName.contentType, HeaderName.schema, HeaderName.traceparent, HeaderName.decodedAt, HeaderName.preprocessedAt,
        HeaderName.DeadLetter.stage, HeaderName.DeadLetter.error, HeaderName.DeadLetter.reason, HeaderName.DeadLetter.offset,
    ] + gradientHeaders

    /// Every seed, by target: (target, file name, bytes). `repository` is the project's root,
    /// with ../shared/datasets beside it.
    public static func seeds(repository: URL) throws -> [(target: String, name: String, bytes: [UInt8])] {
        let datasets = repository.deletingLastPathComponent().appendingPathComponent("shared/datasets")
        func file(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }
        var seeds: [(String, String, [UInt8])] = []

        // Encoded X-rays: the generated PNG fixtures (every colour type and depth, every row
        // filter on each kind the fast path takes), a real NIH PNG at 64 px and a Kermany JPEG.
        let fixtures = repository.appendingPathComponent("Tests/ImagingTests/Fixtures")
        for name in ["gray16.png", "gray_alpha8.png", "palette8.png", "rgb8.png", "rgba16.png", "rgba8.png", "bomb.png",
                     "filters_gray8.png", "filters_gray_alpha8.png", "filters_rgb8.png", "filters_rgba8.png",
                     "filters_gray16.png", "filters_rgb16.png", "filters_bad_type.png", "gamma_srgb_gray8.png",
                     "gamma_linear_gray8.png"] {
            seeds.append(("image", name, try file(fixtures.appendingPathComponent(name))))
        }
        let nih64 = try file(datasets.appendingPathComponent("nih_cxr14_64px_kcr2019/NIH1000/train/0_normal/00000002_000.png"))
        let jpeg = try file(datasets.appendingPathComponent("kermany_pneumonia_224/train/NORMAL/IM-0115-0001.jpeg"))
        seeds += [("image", "nih-64px.png", nih64), ("image", "kermany.jpeg", jpeg)]

        // Decoded images and tensors as the decoder and preprocessor write them.
        let (image, source) = try ImageDecoder().decode(nih64)
        let decoded = DecodedImage(width: image.width, height: image.height, pixels: image.pixels, originalWidth: source.width,
                                   originalHeight: source.height, originalBitDepth: source.bitDepth, originalChannels: source.channels)
        seeds += [("decoded-image", "nih-64px.xrdi", decoded.encoded()),
                  ("decoded-image", "3x2.xrdi", DecodedImage(width: 3, height: 2, pixels: [0, 50, 100, 150, 200, 250]).encoded())]
        let preprocessor = Preprocessor(resize: spec.resize, crop: spec.crop, mean: spec.mean, std: spec.std)
        let input = try preprocessor.tensor(from: image)
        seeds += [("tensor", "1x16x16.xrtn", Tensor(shape: spec.outputShape, values: input).encoded()),
                  ("tensor", "rank0.xrtn", Tensor(shape: [], values: [0.5]).encoded())]

        // A gradient of shard 0 as a trainer sends it (values in two chunks, then the
        // statistics change), and the same records in another order.
        let layout = ShardLayout(parameterCount: network.store.count, shards: shards)
        let range = layout.range(0)
        var gradient = [Float](repeating: 0, count: network.store.count)
        for i in range { gradient[i] = Float(i % 7) * 1e-3 - 3e-3 }
        let delta = [Float](repeating: 1e-4, count: network.floatState.count)
        let records = gradient.withUnsafeBufferPointer {
            GradientCodec.records(gradient: $0, stateDelta: delta, layout: layout, contribution: "0123456789abcdef", trainer: "t1",
                                  baseVersion: "v0", baseStep: 0, samples: 16, loss: 0.69, topic: "xray.gradients",
                                  chunkFloats: range.count / 2 + 1)
        }.filter { $0.partition == 0 }
        seeds += [("gradient", "shard0.rec", FuzzRecords.encode(records, headerNames: gradientHeaders)),
                  ("gradient", "shard0-reversed.rec", FuzzRecords.encode(records.reversed(), headerNames: gradientHeaders))]

        // A published version of the small CNN, its evaluation and decision, and a trained
        // version's shard records.
        let model = try ModelFile(network: network, labels: ["Pneumonia"], preprocess: spec, origin: "fuzz seed")
        let modelFile = try model.encoded()
        let published = try ModelVersionCodec.records(for: modelFile, manifest: model.manifest, version: "v0", topic: "xray.models",
                                                      chunkBytes: 1 << 19)
        let evaluation = try ModelVersionCodec.record(VersionEvaluation(version: "v0", images: 40, metrics: ["auc.mean": 0.8, "auc.Pneumonia": 0.8],
                                                                        evaluatedAt: "2026-11-30T00:00:00Z"), headsTopic: "xray.models.heads")
        let decision = try ModelVersionCodec.record(GateDecision(version: "v0", promoted: false, forced: false, serving: "v0",
                                                                 reason: "seed", decidedBy: "evaluator", decidedAt: "2026-11-30T00:00:00Z"),
                                                    headsTopic: "xray.models.heads")
        var shardAnnouncement = ShardAnnouncement(version: "\(run)-000001", run: run, step: 1, base: "v0", shard: 0, shards: shards,
                                                  start: range.lowerBound, count: range.count, chunks: 0, crc32: "", manifest: model.manifest,
                                                  publishedAt: "2026-11-30T00:00:00Z")
        shardAnnouncement.contributions = ["0123456789abcdef"]
        let shardRecords = try ModelVersionCodec.shardRecords(values: Array(network.store.flatValues[range]), state: network.floatState,
                                                              announcement: shardAnnouncement, topic: "xray.models", chunkBytes: 1 << 12)
        seeds += [("model-records", "published-v0.rec", FuzzRecords.encode(published, headerNames: modelHeaders)),
                  ("model-records", "evaluation-decision.rec", FuzzRecords.encode([evaluation, decision], headerNames: modelHeaders)),
                  ("model-records", "trained-shard0.rec", FuzzRecords.encode(shardRecords, headerNames: modelHeaders))]

        // A shard checkpoint as an aggregator writes it, after one step.
        let shard = shard()
        _ = shard.add(ShardContribution(id: "0123456789abcdef", trainer: "t1", baseVersion: "v0", baseStep: 0, shard: 0, shards: shards,
                                        samples: 16, loss: 0.69, start: range.lowerBound, gradient: Array(gradient[range]),
                                        stateDelta: delta, records: []), now: .now)
        if let step = shard.nextStep(now: .now) { _ = shard.apply(step) }
        let checkpoint = try CheckpointCodec.records(shard.checkpoint, topic: "xray.checkpoints", chunkBytes: 1 << 12)
        seeds += [("checkpoint-records", "step1.rec", FuzzRecords.encode(checkpoint, headerNames: checkpointHeaders)),
                  ("checkpoint-records", "step1.safetensors", try shard.checkpoint.encoded())]

        // Model files: the small CNN, and a tiny safetensors file.
        let tiny = try SafeTensors.encode(SafeTensors.File(tensors: [NamedTensor(name: "w", shape: [2, 2], floats: [1, 2, 3, 4]),
                                                                     NamedTensor(name: "n", shape: [], values: .int64([3]))],
                                                           metadata: ["k": "v"]))
        seeds += [("safetensors", "small-cnn.safetensors", modelFile), ("safetensors", "tiny.safetensors", [UInt8](tiny))]
        seeds.append(("onnx", "small-cnn.onnx", ONNXSeed.model(network)))

        // A .npy of the model's input (numpy.save's layout: version 1, header padded to 64).
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 16, 16), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var npy: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8)
        npy += FloatBytes.encode(input)
        seeds.append(("npy", "1x16x16.npy", npy))

        // JSON values: one of each kind, as the project writes them.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let announcement = try JSONDecoder().decode(ModelAnnouncement.self, from: Data(published.last?.value ?? []))
        let prediction = Prediction(imageId: "00000002_000", modelVersion: "v0", probabilities: [LabelProbability(label: "Pneumonia", probability: 0.9)],
                                    triage: .urgent, findings: ["Pneumonia"],
                                    times: StageTimes(acquired: 1_700_000_000_000, decoded: 1_700_000_000_050, preprocessed: 1_700_000_000_060,
                                                      scored: 1_700_000_000_100), source: "nih", patientId: "2", labels: [])
        let policy = model.manifest.triagePolicy
        seeds += [("json", "manifest.json", [UInt8](try encoder.encode(model.manifest))),
                  ("json", "announcement.json", [UInt8](try encoder.encode(announcement))),
                  ("json", "shard-announcement.json", [UInt8](try encoder.encode(shardAnnouncement))),
                  ("json", "evaluation.json", evaluation.value), ("json", "decision.json", decision.value),
                  ("json", "head-trained.json", [UInt8](try encoder.encode(trainedHead()))),
                  ("json", "checkpoint-commit.json", checkpoint.last?.value ?? []),
                  ("json", "prediction.json", [UInt8](try encoder.encode(prediction))),
                  ("json", "alert.json", [UInt8](try encoder.encode(Alert(prediction: prediction, policy: policy)))),
                  ("json", "schedule.json", [UInt8](try encoder.encode(LearningRateSchedule.cosine(Cosine(base: 1e-3, warmupSteps: 5, totalSteps: 50))))),
                  ("json", "optimizer.json", [UInt8](try encoder.encode(OptimizerSettings(kind: .adamw, weightDecay: 1e-4))))]

        // The first lines of the NIH label table.
        let table = try String(contentsOf: datasets.appendingPathComponent("nih_cxr14_labels/Data_Entry_2017_v2020.csv"), encoding: .utf8)
        seeds.append(("labels-csv", "nih-head.csv", Array(table.split(separator: "\n").prefix(24).joined(separator: "\n").utf8)))

        // Headers: a raw image record as the publisher sends it, a dead letter, a gradient.
        let raw = ModalityPublisher(topic: "xray.raw", source: "fuzz").record(
            for: ImageFile(path: "00000002_000.png", metadata: ImageMetadata(imageID: "00000002_000", labels: ["Effusion"], patientID: "2")),
            bytes: Array(nih64.prefix(64)), now: 1_700_000_000_000)
        let letter = DeadLetter.record(for: KafkaRecord(topic: "xray.raw", partition: 1, offset: 42, key: nil, value: [1, 2, 3], headers: raw.headers),
                                       stage: "decoder", reason: "seed", code: "malformed", topic: "xray.deadletter")
        seeds.append(("headers", "raw-deadletter-gradient.rec",
                      FuzzRecords.encode([raw, letter] + Array(records.prefix(1)), headerNames: imageHeaders)))
        return seeds
    }

    /// A trained shard's head as an aggregator writes it.
    static func trainedHead() -> ModelHead {
        var head = ModelHead(kind: .trained, version: "\(run)-000001", partition: 0, first: 3, last: 5, bytes: 4096, writtenAt: "2026-12-01T00:00:00Z")
        head.run = run; head.step = 1; head.base = "v0"; head.shard = 0; head.shards = shards
        head.contributions = ["0123456789abcdef"]; head.baseFirst = 0; head.baseLast = 1
        return head
    }
}
