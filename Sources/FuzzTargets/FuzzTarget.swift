import Dicom
import Engine
import Foundation
import Imaging
import KafkaIO
import ModelVersions
import Stages
import Wire

/// One parser of outside bytes, driven by fuzz input: `run` hands the bytes to it and checks
/// what must hold of whatever it accepts. A typed error is a correct answer; a trap, a
/// sanitizer report, a leak or a hang is a bug (libFuzzer reports it and keeps the input).
public struct FuzzTarget: Sendable {
    public let name: String
    /// What the target reads, for `Ops/fuzz --list`.
    public let summary: String
    /// The record header names this target's input may carry (`FuzzRecords`); empty when
    /// the input is one file or value.
    public let headerNames: [String]
    public let run: @Sendable ([UInt8]) -> Void

    /// The target called `name`, if any.
    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    public static let all: [FuzzTarget] = [
        FuzzTarget(name: "image", summary: "encoded X-rays (PNG through the fast path and through libpng, which must agree; JPEG through libjpeg-turbo), then preprocessing",
                   headerNames: []) { bytes in
            let limits = DecodeLimits(maxEncodedBytes: 1 << 22, maxPixels: 1 << 22, maxSide: 256)
            let decoded = try? ImageDecoder(limits: limits, pngReader: .fast).decode(bytes)
            let viaLibpng = try? ImageDecoder(limits: limits, pngReader: .libpng).decode(bytes)
            expect(decoded?.image == viaLibpng?.image && decoded?.source == viaLibpng?.source,
                   "the fast PNG path and libpng disagree")
            guard let (image, _) = decoded else { return }
            expect(image.pixels.count == image.width * image.height && max(image.width, image.height) <= 256, "decoded image size")
            _ = try? Preprocessor(resize: 36, crop: 32, mean: [0.5], std: [0.25]).tensor(from: image)
        },
        FuzzTarget(name: "dicom", summary: "DICOM objects: rendered to grey (DCMTK, GDCM for JPEG 2000), then filtered, de-identified and re-encoded as the gateway does",
                   headerNames: []) { bytes in
            let decoder = DicomDecoder(limits: DecodeLimits(maxEncodedBytes: 1 << 22, maxPixels: 1 << 22, maxSide: 256))
            if let (image, _, _) = try? decoder.decode(bytes) {
                expect(image.pixels.count == image.width * image.height && max(image.width, image.height) <= 256, "decoded DICOM size")
            }
            var acceptance = DicomAcceptance()
            acceptance.acceptMissingView = true
            guard let deidentifier = FuzzCorpus.deidentifier else { return }
            let intake = DicomIntake(topic: "xray.raw", acceptance: acceptance, deidentifier: deidentifier)
            if case .publish(let record, _) = intake.prepare(bytes, source: "fuzz", now: 0) {
                // What the gateway publishes must read back as DICOM, without the identifiers.
                guard let object = try? DicomObject(bytes: record.value) else {
                    expect(false, "a de-identified object re-encodes to readable DICOM")
                    return
                }
                expect(object[.patientIdentityRemoved] == "YES", "de-identification is marked")
                expect(object.tags.allSatisfy { !$0.isPrivate }, "no private tag survives de-identification")
            }
        },
        FuzzTarget(name: "decoded-image", summary: "xray.decoded records, then preprocessing", headerNames: []) { bytes in
            guard let decoded = try? DecodedImage(decoding: bytes) else { return }
            expect(decoded.encoded() == bytes || decoded.pixels.count == decoded.width * decoded.height, "decoded image round trip")
            let image = GrayImage(width: decoded.width, height: decoded.height, pixels: decoded.pixels)
            if let tensor = try? Preprocessor(resize: 36, crop: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]).tensor(from: image) {
                expect(tensor.count == 3 * 32 * 32 && tensor.allSatisfy(\.isFinite), "preprocessed tensor")
            }
        },
        FuzzTarget(name: "tensor", summary: "xray.tensors records", headerNames: []) { bytes in
            guard let tensor = try? Tensor(decoding: bytes) else { return }
            expect(tensor.values.allSatisfy(\.isFinite), "a decoded tensor holds only finite values")
            expect(tensor.encoded() == bytes, "a decoded tensor re-encodes to the same bytes")
        },
        FuzzTarget(name: "gradient", summary: "xray.gradients records and headers, assembled and offered to a shard",
                   headerNames: FuzzCorpus.gradientHeaders) { bytes in
            var assembler = GradientAssembler()
            let shard = FuzzCorpus.shard()
            for record in FuzzRecords.decode(bytes, topic: "xray.gradients", headerNames: FuzzCorpus.gradientHeaders) {
                guard let contribution = try? assembler.add(record) else { continue }
                if shard.add(contribution, now: .now) == .pending, let step = shard.nextStep(now: .now) {
                    _ = shard.apply(step)
                    expect(shard.values.allSatisfy(\.isFinite) && (shard.state ?? []).allSatisfy(\.isFinite), "shard values stay finite")
                }
            }
            _ = assembler.expire(now: .now + .seconds(3600))
            expect(assembler.incomplete == 0, "everything expires")
        },
        FuzzTarget(name: "model-records", summary: "xray.models records: chunks, announcements, shards, evaluations, decisions",
                   headerNames: FuzzCorpus.modelHeaders) { bytes in
            var assembler = ModelVersionAssembler(assembling: Set(ModelAnnouncement.Kind.allCases))
            for record in FuzzRecords.decode(bytes, topic: "xray.models", headerNames: FuzzCorpus.modelHeaders) {
                if case .complete(let announcement, let file)? = assembler.add(record) {
                    expect(announcement.problem == nil, "a complete version has a valid announcement")
                    _ = try? ModelCheck.verified(file, name: announcement.version)
                }
                _ = assembler.drainDropped()
            }
        },
        FuzzTarget(name: "checkpoint-records", summary: "xray.checkpoints records and checkpoint files, restored into a shard",
                   headerNames: FuzzCorpus.checkpointHeaders) { bytes in
            var reader = CheckpointReader(run: FuzzCorpus.run)
            for record in FuzzRecords.decode(bytes, topic: "xray.checkpoints", headerNames: FuzzCorpus.checkpointHeaders) { reader.add(record) }
            var candidates = reader.checkpoints(shard: 0) + reader.checkpoints(shard: 1)
            if let whole = try? ShardCheckpoint(decoding: bytes) { candidates.append(whole) }
            for checkpoint in candidates {
                _ = try? ShardAggregator(restoring: checkpoint, network: FuzzCorpus.network, mode: .asynchronous(maxStaleness: 2))
            }
        },
        FuzzTarget(name: "safetensors", summary: "model files (safetensors with a manifest), checked as a model version", headerNames: []) { bytes in
            _ = try? ModelCheck.verified(bytes, name: "fuzz")
        },
        FuzzTarget(name: "onnx", summary: "ONNX models (protobuf) imported as the small CNN", headerNames: []) { bytes in
            _ = try? ONNXImporter.importModel(Data(bytes), architecture: .smallCNN)
        },
        FuzzTarget(name: "npy", summary: ".npy arrays (xray predict's inputs)", headerNames: []) { bytes in
            guard let array = try? NpyArray(Data(bytes)) else { return }
            expect(array.values.count == array.shape.reduce(1, *), "npy values fit the shape")
        },
        FuzzTarget(name: "json", summary: "every JSON value on a topic or in a file: manifests, announcements, heads, evaluations, decisions, predictions, schedules",
                   headerNames: []) { bytes in
            let data = Data(bytes), decoder = JSONDecoder()
            if let m = try? decoder.decode(ModelManifest.self, from: data), m.problem == nil {
                expect(m.input.reduce(1, *) <= 4 * 2048 * 2048, "a valid manifest's input is bounded")
            }
            _ = (try? decoder.decode(ModelAnnouncement.self, from: data))?.problem
            _ = (try? decoder.decode(ShardAnnouncement.self, from: data))?.problem
            _ = (try? decoder.decode(VersionEvaluation.self, from: data))?.meanAUC
            _ = try? decoder.decode(GateDecision.self, from: data)
            if let h = try? decoder.decode(ModelHead.self, from: data), h.problem == nil {
                expect(h.first >= 0 && h.last >= h.first && !h.key.isEmpty, "a valid head names a range and has a key")
            }
            _ = (try? decoder.decode(CheckpointCommit.self, from: data))?.problem
            if let p = try? decoder.decode(Prediction.self, from: data) { _ = CaseView.line(p, now: 0) }
            if let a = try? decoder.decode(Alert.self, from: data) { _ = CaseView.line(a, now: .max) }
            _ = (try? decoder.decode(LearningRateSchedule.self, from: data))?.problem
            _ = (try? decoder.decode(OptimizerSettings.self, from: data))?.problem
        },
        FuzzTarget(name: "labels-csv", summary: "NIH label tables (xray publish --labels)", headerNames: []) { bytes in
            _ = try? NIHLabelTable(csv: String(decoding: bytes, as: UTF8.self))
        },
        FuzzTarget(name: "headers", summary: "image headers on every topic, and how xray tail shows any record",
                   headerNames: FuzzCorpus.imageHeaders) { bytes in
            for record in FuzzRecords.decode(bytes, topic: "xray.raw", headerNames: FuzzCorpus.imageHeaders) {
                _ = ImageMetadata(lookup: record.headers.text, key: record.keyText)
                _ = try? GradientChunkInfo(lookup: record.headers.text)
                _ = RecordDescriber.describe(record)
                _ = RecordDescriber.oneLine(record)
            }
        },
    ]

    /// A property of accepted input that must hold; a violation is a bug, reported as a crash.
    static func expect(_ condition: Bool, _ what: String) {
        if !condition { fatalError("fuzz invariant broken: \(what)") }
    }
}
