import ArgumentParser
import Engine
import Foundation
import ModelVersions
import Stages
import Wire

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune a model offline on a labelled dataset folder (the engine's own loop), with a patient-wise validation split.",
        discussion: """
            Starts from --init (a model file) or fresh weights for --arch. Holds out --validation of \
            the patients (deterministic, by patient id), trains --epochs with Adam, warm-up then \
            plateau on the validation AUC, --augmentation (the streaming trainers' code path); prints loss and per-label \
            validation AUC after each epoch and writes the model with those metrics in its manifest.
            """)

    @Option(help: "Start from this model file.") var initial: String?
    @Option(help: "Or fresh weights of this architecture.", transform: parseArchitecture) var arch: Architecture?
    @Option(help: "Comma-separated labels for fresh weights (default: the 14 NIH findings).") var labels: String?
    @OptionGroup var preprocessing: PreprocessingOptions
    @Option(help: "NIH label table for NIH images.") var nihLabels: String?
    @Option(help: "Use at most this many images.") var limit: Int?
    @Option(help: "Share of patients held out for validation.") var validation: Double = 0.15
    @Option(help: "Epochs.") var epochs: Int = 3
    @Option(help: "Images per step.") var batch: Int = 16
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Warm-up steps.") var warmup: Int = 50
    @Option(help: "What trains: all, head, or last:K (the last K stages and the head).", transform: parseScope)
    var train: TrainableScope = .all
    @Option(help: "Seed (initialisation, order, augmentation).") var seed: UInt64 = 1
    @Option(help: "Augmentation: seeds (flip, brightness), radiograph (also crops, rotations, shifts, contrast, gamma) or none.",
            transform: parseAugmentation)
    var augmentation: AugmentationPolicy = .seeds
    @Option(help: "Dropout before the head in training (share of pooled features zeroed; 0 for none).") var dropout: Float = 0
    @Option(help: "Where to write the trained model.") var out: String
    @Argument(help: "Dataset folders.") var data: [String]

    func validate() throws {
        guard (0..<1).contains(validation) else { throw ValidationError("--validation must be in [0, 1)") }
        guard epochs >= 1, batch >= 1, warmup >= 0, limit.map({ $0 >= 1 }) ?? true else {
            throw ValidationError("--epochs, --batch and --limit must be positive; --warmup not negative")
        }
        guard lr > 0, lr <= 1000 else { throw ValidationError("--lr must be in (0, 1000]") }
        guard (0...Dropout.maxProbability).contains(dropout) else { throw ValidationError("--dropout must be in [0, \(Dropout.maxProbability)]") }
    }

    func run() async throws {
        var model: ModelFile
        if let initial { model = try ModelFile.read(URL(fileURLWithPath: initial)) } else {
            guard let arch else { throw ValidationError("give --initial FILE or --arch ARCH") }
            model = try ModelFile.initialized(architecture: arch, labels: try parseLabels(labels), preprocess: try preprocessing.spec(), seed: seed)
        }
        let table = try nihLabels.map { try NIHLabelTable(csv: String(contentsOfFile: $0, encoding: .utf8)) }
        var files = try DatasetScanner.scan(data, nihLabels: table).filter { $0.metadata.labels != nil }
        if let limit {
            var rng = SeededGenerator(seed: seed)
            files.shuffle(using: &rng)
            files = Array(files.prefix(limit))
        }
        let (training, held) = PatientSplit(validationFraction: validation).split(files)
        guard !training.isEmpty else { throw ValidationError("no labelled training images under \(data.joined(separator: ", "))") }
        var settings = OfflineTrainer.Settings()
        settings.epochs = epochs; settings.batchSize = batch; settings.seed = seed
        settings.augmentation = augmentation
        settings.dropout = dropout
        settings.schedule = .warmupPlateau(WarmupPlateau(base: lr, warmupSteps: warmup, factor: 0.3, patience: 1))
        settings.scope = train
        print("training \(model.manifest.architecture) (\(model.manifest.labels.joined(separator: ", "))) on \(training.count) images, "
            + "validating on \(held.count) (patient-wise), input \(model.manifest.input), \(epochs) epochs of batch \(batch)")
        let trainer = OfflineTrainer(model: model, settings: settings)
        let start = ContinuousClock.now
        trainer.train(training, validation: held, report: { r in
            let auc = r.validation?.meanAUC.map { String(format: "%.4f", $0) } ?? "-"
            print(String(format: "epoch %d: loss %.4f, %d images in %.0f s (%.1f images/s), lr %.2e, validation mean AUC ",
                         r.epoch, r.meanLoss, r.images, r.seconds, Double(r.images) / r.seconds, r.learningRate) + auc)
            if let v = r.validation { print(v.table) }
        }, progress: { images, loss in
            FileHandle.standardError.write(Data(String(format: "  %d images, loss %.4f\n", images, loss).utf8))
        })
        model = trainer.model
        model.manifest.origin = "xray train \(data.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: ",")) seed \(seed)"
        try model.write(to: URL(fileURLWithPath: out))
        print(String(format: "wrote %@ after %.0f s", out, (ContinuousClock.now - start) / .seconds(1)))
    }
}

/// `--train all|head|last:K`.
func parseScope(_ text: String) throws -> TrainableScope {
    guard let scope = TrainableScope(text) else { throw ValidationError("--train takes all, head or last:K") }
    return scope
}

/// `--augmentation seeds|radiograph|none`.
func parseAugmentation(_ text: String) throws -> AugmentationPolicy {
    guard let policy = AugmentationPolicy.named[text] else {
        throw ValidationError("--augmentation takes \(AugmentationPolicy.named.keys.sorted().joined(separator: ", "))")
    }
    return policy
}
