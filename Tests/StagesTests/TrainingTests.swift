import Engine
import Foundation
import ModelVersions
@testable import Stages
import Testing
import Wire

@Suite("Offline training, split and augmentation")
struct TrainingTests {
    @Test func patientWiseSplitIsDeterministicAndKeepsPatientsTogether() throws {
        let split = PatientSplit(validationFraction: 0.2)
        let ids = (0..<5000).map { "patient-\($0)" }
        let held = ids.filter(split.isValidation)
        #expect(abs(Double(held.count) / 5000 - 0.2) < 0.02)
        #expect(held == ids.filter(PatientSplit(validationFraction: 0.2).isValidation))  // same in any process
        #expect(held != ids.filter(PatientSplit(validationFraction: 0.2, salt: "other").isValidation))
        let files = try DatasetScanner.scan([datasets.appendingPathComponent("kermany_pneumonia_224/train/PNEUMONIA").path]).prefix(400)
        let (training, validation) = split.split(Array(files))
        let trainingPatients = Set(training.compactMap(\.metadata.patientID)), validationPatients = Set(validation.compactMap(\.metadata.patientID))
        #expect(trainingPatients.isDisjoint(with: validationPatients) && !validation.isEmpty)
    }

    /// Each augmented tensor, mapped back to pixel values, is b·(the image) or b·(the image
    /// mirrored left-right) for one factor b in [0.7, 1.3].
    @Test func augmentationFlipsRowsAndScalesBrightnessInPixelSpace() {
        let mean: [Float] = [0.4, 0.5], std: [Float] = [0.2, 0.25], shape = [2, 3, 4]
        let pixels: [Float] = (0..<24).map { i in Float(10 + i * 9) / 255 }
        var mirrored = pixels
        for row in 0..<6 { mirrored[(row * 4)..<(row * 4 + 4)].reverse() }
        var x = [Float](repeating: 0, count: 24)
        for i in 0..<24 { x[i] = (pixels[i] - mean[i / 12]) / std[i / 12] }
        func matches(_ back: [Float], _ source: [Float]) -> Bool {
            let b: Float = back[0] / source[0]
            guard b >= 0.7 - 1e-4, b <= 1.3 + 1e-4 else { return false }
            return (0..<24).allSatisfy { i in abs(back[i] - b * source[i]) < 1e-4 }
        }
        var flips = 0
        var policy = AugmentationPolicy.seeds
        policy.brightness = 0.3
        var augmenter = Augmenter(policy: policy, seed: 9)
        for _ in 0..<40 {
            var y = x
            augmenter.augment(&y, shape: shape, mean: mean, std: std)
            var back = [Float](repeating: 0, count: 24)
            for i in 0..<24 { back[i] = y[i] * std[i / 12] + mean[i / 12] }
            let plain = matches(back, pixels), flipped = matches(back, mirrored)
            #expect(plain || flipped)
            if flipped { flips += 1 }
        }
        #expect(flips > 10 && flips < 30)
    }

    @Test func trainingLowersTheLossAndRecordsValidationMetrics() throws {
        let spec = PreprocessSpec(resize: 36, crop: 32, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
        let model = try ModelFile.initialized(architecture: .smallCNN, labels: ["Pneumonia"], preprocess: spec, seed: 3)
        let (training, validation) = PatientSplit(validationFraction: 0.25).split(try kermanyFiles(normal: 48, pneumonia: 48))
        var settings = OfflineTrainer.Settings()
        settings.epochs = 4; settings.batchSize = 8
        settings.schedule = .constant(3e-3)
        let trainer = OfflineTrainer(model: model, settings: settings)
        var losses: [Float] = []
        trainer.train(training, validation: validation, report: { losses.append($0.meanLoss) })
        print("  epoch losses: \(losses)")
        #expect(losses.count == 4)
        #expect(losses.last! < losses.first! * 0.9)
        #expect(trainer.model.manifest.metrics?["auc.Pneumonia"] != nil)
        #expect(OfflineTrainer.positiveWeights(training, labels: ["Pneumonia"])[0] > 0)
        let pneumonia = training.filter { $0.metadata.labels?.contains("Pneumonia") == true }
        #expect(OfflineTrainer.positiveWeights(pneumonia, labels: ["Pneumonia"]) == [1], "all positive: weight 1, not 0")
    }
}
