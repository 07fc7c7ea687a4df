import Foundation
import ModelVersions
import Testing
@testable import Stages

/// The demo's model (Models/kermany-pneumonia-64.safetensors): what its card claims holds.
struct ShippedModelTests {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Models/kermany-pneumonia-64.safetensors")

    @Test func theDemoModelIsTheTrainedPneumoniaModelItsCardDescribes() throws {
        let model = try ModelFile.read(Self.file)
        #expect(model.manifest.version == "kermany-v0-ft-000978")
        #expect(model.manifest.labels == ["Pneumonia"] && model.manifest.architecture == "small-cnn")
        #expect(model.manifest.input == [3, 64, 64] && model.manifest.triage?.urgent == ["Pneumonia"])
    }

    /// Models/README.md: AUC 0.994 on the 794 images of the held-out 15% of patients.
    @Test func itSeparatesPneumoniaOnPatientsItNeverSaw() throws {
        let root = datasets.appendingPathComponent("kermany_pneumonia_224/train")
        let files = PatientSplit(validationFraction: 0.15).split(try DatasetScanner.scan([root.path])).validation
        #expect(files.count == 794)
        let evaluation = Evaluation(model: try ModelFile.read(Self.file), files: files, batchSize: 32)
        #expect(evaluation.failures.isEmpty)
        let pneumonia = try #require(evaluation.labels.first)
        #expect(pneumonia.positives == 589 && pneumonia.negatives == 205)
        #expect(try #require(pneumonia.roc).auc >= 0.99)
        #expect(pneumonia.sensitivity ?? 0 >= 0.95 && pneumonia.specificity ?? 0 >= 0.9)
    }
}
