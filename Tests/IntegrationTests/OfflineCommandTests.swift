import Foundation
import Testing
import TestSupport

/// The offline model commands as a user runs them: `xray model import` on models this project
/// did not write (PyTorch's ONNX export, a torchvision state dict), then `xray predict`.
@Suite("Offline model commands", .enabled(if: EngineReference.directory != nil, "XRAY_ENGINE_REFERENCE not set: run Ops/test"))
struct OfflineCommandTests {

    /// Runs `xray ARGS`; returns (exit status, stdout).
    func xray(_ arguments: [String]) async throws -> (Int32, String) {
        try await runProgram(TestBroker.xrayBinary, arguments, errors: false)
    }

    func lines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    @Test func importAnONNXCheXNetAndPredict() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xray-offline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("chexnet.safetensors").path
        let (status, said) = try await xray(["model", "import", EngineReference.directory! + "/chexnet_densenet121.onnx", "--out", model])
        #expect(status == 0, "\(said)")
        #expect(said.contains("densenet121"))

        let png = Dataset.root.appendingPathComponent("nih_cxr14_fullres_starter_subset/images/00000075_000.png").path
        let jpeg = Dataset.root.appendingPathComponent("kermany_pneumonia_224/train/PNEUMONIA/person1000_bacteria_2931.jpeg").path
        let missing = dir.appendingPathComponent("missing.png").path
        let (predictStatus, out) = try await xray(["predict", "--model", model, png, jpeg, missing])
        #expect(predictStatus == 1) // one input failed
        let results = try lines(out)
        #expect(results.map { $0["input"] as? String } == [png, jpeg, missing])
        for result in results.prefix(2) {
            let p = try #require(result["probabilities"] as? [String: Double])
            #expect(p.count == 14 && p["Pneumonia"] != nil && p.values.allSatisfy { $0 > 0 && $0 < 1 })
        }
        #expect((results[2]["error"] as? String)?.contains("cannot read") == true)
    }

    @Test func torchvisionWeightsWithANewHeadAndAFreshModel() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xray-offline-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let imported = dir.appendingPathComponent("resnet18.safetensors").path
        let (status, said) = try await xray(["model", "import", EngineReference.directory! + "/resnet18.safetensors", "--arch", "resnet18",
                                       "--labels", "Pneumonia", "--out", imported])
        #expect(status == 0, "\(said)")
        #expect(said.contains("head replaced"))
        let fresh = dir.appendingPathComponent("small.safetensors").path
        #expect(try await xray(["model", "init", "--arch", "small-cnn", "--labels", "Normal,Pneumonia", "--out", fresh]).0 == 0)
        #expect(try await xray(["model", "init", "--arch", "vgg16", "--out", fresh]).0 != 0)

        let jpeg = Dataset.root.appendingPathComponent("kermany_pneumonia_224/train/NORMAL/IM-0115-0001.jpeg").path
        for (model, labels) in [(imported, ["Pneumonia"]), (fresh, ["Normal", "Pneumonia"])] {
            let (code, out) = try await xray(["predict", "--model", model, jpeg])
            #expect(code == 0)
            let p = try #require(try lines(out).first?["probabilities"] as? [String: Double])
            #expect(Set(p.keys) == Set(labels))
        }
    }
}

/// The engine's reference models (`Ops/test` writes them with PyTorch and sets the variable).
enum EngineReference {
    static let directory = ProcessInfo.processInfo.environment["XRAY_ENGINE_REFERENCE"]
}
