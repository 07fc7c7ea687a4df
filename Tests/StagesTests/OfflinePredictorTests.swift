import Engine
import Foundation
import Imaging
import ModelVersions
import Stages
import Testing
import Wire

@Suite("Model files and offline prediction")
struct OfflinePredictorTests {
    let small = PreprocessSpec(resize: 40, crop: 32, channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    func temporary(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("xray-\(UUID().uuidString)-\(name)")
    }

    /// What numpy.save writes for a float32 array: magic, version 1.0, a padded header, data.
    func npy(_ values: [Float], shape: [Int]) -> Data {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))\(shape.count == 1 ? "," : "")), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93]) + Data("NUMPY".utf8) + Data([1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data += Data(header.utf8)
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }

    @Test func modelFileRoundTripKeepsManifestAndWeights() throws {
        let model = try ModelFile.initialized(architecture: .smallCNN, labels: ["Pneumonia", "Effusion"], preprocess: small, seed: 4)
        let url = temporary("model.safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try model.write(to: url)
        let read = try ModelFile.read(url)
        #expect(read.manifest == model.manifest)
        #expect(read.manifest.input == [3, 32, 32])
        #expect(read.network.parameters.map(\.values) == model.network.parameters.map(\.values))
    }

    @Test func aStateDictWithoutManifestIsRefusedWithAHint() throws {
        let url = temporary("plain.safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try SafeTensors.write(SafeTensors.File(tensors: Network(architecture: .smallCNN, labels: 2).stateDict()), to: url)
        #expect { try ModelFile.read(url) } throws: { "\($0)".contains("xray model import") }
    }

    @Test func predictsImagesAndArraysAndReportsBadInputsInOrder() throws {
        let model = try ModelFile.initialized(architecture: .smallCNN, labels: ["Pneumonia"], preprocess: small, seed: 5)
        let jpeg = datasets.appendingPathComponent("kermany_pneumonia_224/train/NORMAL/IM-0115-0001.jpeg")
        let tensor: [Float] = (0..<(3 * 32 * 32)).map { i in Float(i % 7) / 7 - 0.5 }
        let array = temporary("input.npy"), batched = temporary("batched.npy"), wrong = temporary("wrong.npy")
        let broken = temporary("broken.png")
        defer { for u in [array, batched, wrong, broken] { try? FileManager.default.removeItem(at: u) } }
        try npy(tensor, shape: [3, 32, 32]).write(to: array)
        try npy(tensor, shape: [1, 3, 32, 32]).write(to: batched)
        try npy(tensor, shape: [3, 1024]).write(to: wrong)
        try Data([0x89, 0x50, 0x4E, 0x47, 0, 0, 0]).write(to: broken)

        var results: [OfflinePredictor.Prediction] = []
        OfflinePredictor(model: model, batchSize: 2).predict([jpeg, array, broken, batched, wrong]) { results.append($0) }
        #expect(results.map(\.input) == [jpeg, array, broken, batched, wrong].map(\.path))
        #expect(results.map { $0.probabilities == nil } == [false, false, true, false, true])
        #expect(results[2].error?.contains("PNG") == true)
        #expect(results[4].error?.contains("[3, 32, 32]") == true)
        // The same array with or without its batch axis scores the same; probabilities are in (0, 1).
        #expect(results[1].probabilities == results[3].probabilities)
        #expect(results.compactMap(\.probabilities).joined().allSatisfy { $0 > 0 && $0 < 1 })
        // The JPEG went through the manifest's preprocessing: the same as preprocessing it by hand.
        let alone = model.network.probabilities(batch: try OfflinePredictor(model: model).input(for: jpeg), shape: Shape(n: 1, c: 3, h: 32, w: 32))
        #expect(abs(alone[0][0] - results[0].probabilities![0]) < 1e-6)
    }

    @Test("malformed .npy files are refused", arguments: [
        Data("not numpy".utf8),
        Data([0x93]) + Data("NUMPY".utf8) + Data([1, 0, 20, 0]) + Data("{'descr': '<f8', }  \n".utf8),
    ])
    func malformedNpy(data: Data) {
        #expect(throws: BadInput.self) { try NpyArray(data) }
    }
}

@Suite("Offline evaluation")
struct EvaluationTests {
    @Test func aucTableAndROCPlotOnKermanyImages() throws {
        let spec = PreprocessSpec(resize: 40, crop: 32, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
        let model = try ModelFile.initialized(architecture: .smallCNN, labels: ["Pneumonia"], preprocess: spec, seed: 2)
        let evaluation = Evaluation(model: model, files: try kermanyFiles(normal: 5, pneumonia: 7), batchSize: 4)
        #expect(evaluation.images == 12 && evaluation.failures.isEmpty)
        let pneumonia = try #require(evaluation.labels.first)
        #expect(pneumonia.positives == 7 && pneumonia.negatives == 5)
        let roc = try #require(pneumonia.roc)
        #expect(roc.auc >= 0 && roc.auc <= 1 && evaluation.meanAUC == roc.auc)
        #expect(evaluation.table.contains("Pneumonia") && evaluation.table.contains("mean AUC"))
        // The plot is a real PNG of the requested size.
        let png = try ROCPlot.png([roc], size: 300)
        let decoded = try ImageDecoder(limits: DecodeLimits(maxSide: 4096)).decode(png)
        #expect(decoded.image.width == 300 && decoded.image.height == 300)
    }
}
