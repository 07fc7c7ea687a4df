public import Engine
import Foundation
public import ModelVersions
import Wire

/// Fine-tunes a model on labelled files, offline: the engine's own training loop (the
/// streaming trainers of xray.gradients are checked against it). Mini-batches in a seeded
/// shuffled order, augmentation (`Augmenter`, as the streaming trainers do it), sigmoid cross-entropy with per-label positive
/// weights (negatives/positives of the training set), an optimiser and a learning-rate
/// schedule stepped per batch; validation after each epoch feeds the plateau schedule.
public final class OfflineTrainer {
    public struct Settings: Sendable {
        public var epochs = 3
        public var batchSize = 16
        public var optimizer = OptimizerSettings(kind: .adam, weightDecay: 1e-4)
        public var schedule = LearningRateSchedule.warmupPlateau(WarmupPlateau(base: 1e-3, warmupSteps: 50, factor: 0.3, patience: 1))
        public var scope = TrainableScope.all
        public var augment = true
        /// What augmentation draws from (when `augment`): the streaming trainers' own code path.
        public var augmentation = AugmentationPolicy.seeds
        public var seed: UInt64 = 1
        /// Dropout before the head (share of pooled features zeroed in training; 0: none).
        public var dropout: Float = 0
        public init() {}
    }

    /// What one epoch did.
    public struct EpochReport: Sendable {
        public var epoch: Int
        public var meanLoss: Float
        public var images: Int
        public var seconds: Double
        public var learningRate: Float
        public var validation: Evaluation?
    }

    public private(set) var model: ModelFile
    public let settings: Settings
    public let optimizer: Optimizer
    public private(set) var schedule: LearningRateSchedule
    private var step = 0

    public init(model: ModelFile, settings: Settings) {
        self.model = model
        self.settings = settings
        model.network.setTrainable(settings.scope)
        optimizer = Optimizer(settings.optimizer, parameterCount: model.network.store.count)
        schedule = settings.schedule
    }

    /// Trains for `settings.epochs` over `training`, evaluating on `validation` after each
    /// epoch; `report` is called as each epoch ends (and `progress` every few batches).
    public func train(_ training: [ImageFile], validation: [ImageFile], report: (EpochReport) -> Void,
                      progress: ((_ images: Int, _ loss: Float) -> Void)? = nil) {
        let labels = model.manifest.labels
        let loss = SigmoidCrossEntropy(labels: labels.count, positiveWeights: Self.positiveWeights(training, labels: labels))
        let loader = OfflinePredictor(model: model)
        let spec = model.manifest.preprocess
        let input = model.manifest.input
        var rng = SeededGenerator(seed: settings.seed &+ 1)
        for epoch in 1...settings.epochs {
            let start = ContinuousClock.now
            var order = Array(training.indices)
            order.shuffle(using: &rng)
            var total: Float = 0, batches = 0, seen = 0
            for batchStart in stride(from: 0, to: order.count, by: settings.batchSize) {
                var inputs: [Float] = [], targets: [Float] = []
                for index in order[batchStart..<min(order.count, batchStart + settings.batchSize)] {
                    let file = training[index]
                    guard var x = try? loader.input(for: URL(fileURLWithPath: file.path)) else { continue }
                    if settings.augment {
                        // Seeded by the image and the epoch, as a streaming trainer seeds it by
                        // the image and the record's acquisition stamp.
                        var augmenter = Augmenter(policy: settings.augmentation,
                                                  seed: Augmenter.seed(settings.seed, imageID: file.metadata.imageID, sample: Int64(epoch)))
                        augmenter.augment(&x, shape: input, mean: spec.mean, std: spec.std)
                    }
                    inputs += x
                    let positives = file.metadata.labels ?? []
                    targets += labels.map { positives.contains($0) ? 1 : 0 }
                }
                let n = targets.count / labels.count
                guard n > 0 else { continue }
                total += trainStep(inputs, targets, n: n, loss: loss)
                batches += 1
                seen += n
                if batches % 20 == 0 { progress?(seen, total / Float(batches)) }
            }
            let evaluation = validation.isEmpty ? nil : Evaluation(model: model, files: validation, batchSize: settings.batchSize)
            if let auc = evaluation?.meanAUC { schedule.observe(Float(1 - auc)) }
            report(EpochReport(epoch: epoch, meanLoss: batches > 0 ? total / Float(batches) : .nan, images: seen,
                               seconds: (ContinuousClock.now - start) / .seconds(1), learningRate: schedule.rate(atStep: step),
                               validation: evaluation))
            if let evaluation { model.manifest.metrics = evaluation.metrics }
        }
    }

    /// One optimiser step on a batch; returns the batch's loss.
    public func trainStep(_ inputs: [Float], _ targets: [Float], n: Int, loss: SigmoidCrossEntropy) -> Float {
        let network = model.network, s = model.manifest.input
        let shape = Shape(n: n, c: s[0], h: s[1], w: s[2])
        network.setHeadDropout(probability: settings.dropout, seed: settings.seed ^ fnv1a64("dropout:step \(step)"))
        let x = UnsafeMutablePointer<Float>.allocate(capacity: inputs.count)
        defer { x.deallocate() }
        x.initialize(from: inputs, count: inputs.count)
        network.store.zeroGradients()
        let value = loss.forward(network.forward(Activation(data: x, shape: shape), mode: .training), targets: targets)
        network.backward(loss.backward())
        optimizer.apply(to: network.store, learningRate: schedule.rate(atStep: step))
        step += 1
        return value
    }

    /// negatives/positives per label over the training files (1 where a label has no positive
    /// or no negative: a weight of 0 would leave the label's positives out of the loss).
    static func positiveWeights(_ files: [ImageFile], labels: [String]) -> [Float] {
        labels.map { label in
            let positives = files.filter { $0.metadata.labels?.contains(label) == true }.count
            return positives == 0 || positives == files.count ? 1 : Float(files.count - positives) / Float(positives)
        }
    }
}
