import CheckedArithmetic
public import Engine
import Foundation
public import KafkaIO
public import Logging
import Metrics
public import ModelVersions
import Synchronization
public import Wire

/// A model version a trainer computes gradients at.
public final class TrainingModel: @unchecked Sendable {
    public let version: String
    /// Steps since the run's base (0 for a published file).
    public let step: Int
    /// The run of a trained version; nil for a published file.
    public let run: String?
    let model: ModelFile

    init(_ model: ModelFile, version: String, step: Int, run: String?) {
        self.model = model; self.version = version; self.step = step; self.run = run
    }
}

/// The version a trainer works at: the newest published file or trained version, never an
/// older step of the same run (versions are read again at start-up and may be republished);
/// and the contributions the trained versions say they applied.
public final class TrainingSlot: Sendable {
    private let state = Mutex<TrainingModel?>(nil)
    /// Contribution id → the version that applied it, for the last `rememberedIDs` ids.
    private let applied = Mutex<(versions: [String: String], order: [String])>(([:], []))
    static let rememberedIDs = 4096

    public init() {}

    public var current: TrainingModel? { state.withLock { $0 } }

    /// Takes a version from xray.models (checked by the follower) if it is newer than the one
    /// in force.
    public func offer(_ a: ModelAnnouncement, model: ModelFile) {
        remember((a.recentContributions ?? []) + (a.contributions ?? []), appliedIn: a.version)
        if let current, a.kind == .trained, a.run == current.run, (a.step ?? 0) <= current.step {
            return
        }
        state.withLock { $0 = TrainingModel(model, version: a.version, step: a.step ?? 0, run: a.run) }
    }

    /// The version that applied contribution `id`, if a trained version on xray.models says so.
    public func version(applying id: String) -> String? {
        applied.withLock { $0.versions[id] }
    }

    private func remember(_ ids: [String], appliedIn version: String) {
        applied.withLock { a in
            for id in ids where a.versions.updateValue(version, forKey: id) == nil {
                a.order.append(id)
                if a.order.count > Self.rememberedIDs { a.versions[a.order.removeFirst()] = nil }
            }
        }
    }

    /// Waits until the version in force is no longer `version`, or `limit` has passed.
    /// Returns false on the limit.
    public func waitForVersion(after version: String, limit: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while current?.version == version {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}

/// What a trainer does besides the mini-batch: its name in the barrier, where gradients go,
/// how the input is split and augmented, and the loss's positive weights.
public struct TrainerSettings: Sendable {
    public var trainerID: String
    public var gradientsTopic: String
    public var inputTopic: String
    /// Parameter shards: the partitions of xray.gradients.
    public var shards: Int
    public var batching: Batching
    public var scope: TrainableScope = .all
    public var split = PatientSplit()
    public var augment = true
    /// What augmentation draws from (when `augment`).
    public var augmentation = AugmentationPolicy.seeds
    public var seed: UInt64 = 1
    /// Dropout before the head: the share of pooled features zeroed in training, with masks
    /// seeded by the batch's contribution id (0: none).
    public var dropout: Float = 0
    /// Old sites' images mixed into every batch (rehearsal).
    public var rehearsal: RehearsalSource?
    /// Per-label positive weights of the loss (label → negatives/positives); 1 when absent.
    public var positiveWeights: [String: Float] = [:]
    /// Weight each label's positives by its batch's negatives/positives (within 0.1–10)
    /// instead of `positiveWeights`: class balance that needs no knowledge of the stream.
    public var balanceClasses = false
    /// After each contribution, wait for the version it makes before the next batch, and
    /// commit the batch only then (synchronous training).
    public var synchronous = true

    public init(trainerID: String, gradientsTopic: String, inputTopic: String, shards: Int, batching: Batching) {
        self.trainerID = trainerID; self.gradientsTopic = gradientsTopic; self.inputTopic = inputTopic
        self.shards = shards; self.batching = batching
    }
}

/// Consumes labelled tensors and publishes the gradient of each mini-batch at the version in
/// force to xray.gradients, one slice per parameter shard.
///
/// Unlabelled images and images of held-out patients (the evaluator's) are passed over; a
/// tensor of the wrong shape is dead-lettered. The gradient records are the outputs of the
/// batch's first trained record. The runner commits a batch only when all of its outputs are
/// acknowledged and, in synchronous training, the version after the one it was computed at
/// is out, so a killed trainer's batch is read again, not lost. Augmentation is seeded by the
/// image id, so a replayed batch computes the same gradient and keeps its id; a replayed batch
/// that a trained version lists as applied is passed over.
public final class TrainerStage: Stage, @unchecked Sendable {
    public let name = "trainer"
    public var inputTopic: String { settings.inputTopic }
    public var batching: Batching { settings.batching }
    public let settings: TrainerSettings
    public let slot: TrainingSlot
    private let logger: Logger
    /// The version the last contribution was computed at (for the synchronous wait).
    private let lastBase = Mutex<String?>(nil)
    /// Batches (by their first record) whose contribution awaits its version, and the version
    /// it was computed at.
    private let unsettled = Mutex<[String: String]>([:])
    /// The rehearsal images preprocessed for a model's input (keyed by its manifest's labels
    /// and preprocessing), made when a batch first needs them.
    private let rehearsalSet = Mutex<(key: String, set: RehearsalSet)?>(nil)

    public init(settings: TrainerSettings, slot: TrainingSlot, logger: Logger) {
        self.settings = settings
        self.slot = slot
        self.logger = logger
    }

    /// Awaited before each batch: in synchronous training, the version after the one the last
    /// contribution was computed at.
    public func beforeBatch() async throws {
        guard settings.synchronous, let base = lastBase.withLock({ $0 }) else { return }
        try await waitForVersion(after: base)
    }

    /// Awaited before a batch is committed: in synchronous training, the version after the one
    /// its contribution was computed at (whether the step took it or left it out as stale).
    public func settle(_ batch: [KafkaRecord]) async throws {
        guard settings.synchronous, let first = batch.first,
              let base = unsettled.withLock({ $0.removeValue(forKey: Self.coordinates(first)) }) else { return }
        try await waitForVersion(after: base)
    }

    /// Waits as long as it takes, saying so every half minute: synchronous training has no
    /// use for a gradient at a version the run has left, so going on would only lose batches.
    private func waitForVersion(after base: String) async throws {
        var waited = Duration.zero
        let interval = Duration.seconds(30)
        while try await !slot.waitForVersion(after: base, limit: interval) {
            waited += interval
            logger.warning("still waiting for the version after \(base) (\(Int(waited / .seconds(1))) s): is an aggregator running for this run? (--async trains without waiting)")
        }
    }

    public func process(_ record: KafkaRecord) throws -> [OutgoingRecord] {
        try process(batch: [record])[0].get()
    }

    public func process(batch: [KafkaRecord]) -> [Result<[OutgoingRecord], any Error>] {
        guard let current = slot.current else {
            return batch.map { _ in .failure(BadInput("the trainer has no model yet; publish one with xray model publish", code: "no-model")) }
        }
        let model = current.model
        let labels = model.manifest.labels, input = model.manifest.input
        var results = [Result<[OutgoingRecord], any Error>](repeating: .success([]), count: batch.count)
        var examples: [(index: Int, x: [Float], y: [Float])] = []
        var heldOut = 0, unlabelled = 0
        for (index, record) in batch.enumerated() {
            do {
                let id = try record.imageID()
                guard let labelText = record.headers.text(HeaderName.labels) else { unlabelled += 1; continue }
                if settings.split.isValidation(patient: record.headers.text(HeaderName.patientID) ?? id) { heldOut += 1; continue }
                let tensor = try Tensor(decoding: record.value)
                guard tensor.shape == input else {
                    throw BadInput("tensor of shape \(tensor.shape) does not fit model \(current.version)'s input \(input)", code: "wrong-shape")
                }
                var x = tensor.values
                if settings.augment {
                    let sample = record.headers.text(HeaderName.acquiredAt).flatMap { Int64($0) }
                    var augmenter = Augmenter(policy: settings.augmentation, seed: Augmenter.seed(settings.seed, imageID: id, sample: sample))
                    augmenter.augment(&x, shape: input, mean: model.manifest.preprocess.mean, std: model.manifest.preprocess.std)
                }
                let positives = Set(ImageMetadata.parseLabels(labelText))
                examples.append((index, x, labels.map { positives.contains($0) ? 1 : 0 }))
            } catch {
                results[index] = .failure(error)
            }
        }
        let contribution = Self.digest(examples.map { Self.coordinates(batch[$0.index]) }.joined(separator: ","))
        let appliedIn = examples.isEmpty ? nil : slot.version(applying: contribution)
        // Made at use: the metrics system is bootstrapped after the stage is built.
        for (use, n) in [(appliedIn == nil ? "trained" : "already-applied", examples.count), ("held-out", heldOut), ("unlabelled", unlabelled)]
        where n > 0 {
            Counter(label: "xray_trainer_images_total", dimensions: [("use", use)]).increment(by: n)
        }
        guard let first = examples.first else { return results }
        if let appliedIn {
            logger.info("batch from \(Self.coordinates(batch[first.index])): contribution \(contribution) is already in \(appliedIn); passing over it")
            return results
        }
        var inputs = examples.flatMap(\.x), targets = examples.flatMap(\.y), count = examples.count
        if let source = settings.rehearsal {
            // Chosen and augmented by the contribution id: a batch read again mixes in the same.
            let seed = settings.seed ^ fnv1a64(contribution)
            let rehearsed = rehearsal(source, for: model).draw(joining: examples.count, share: source.share, seed: seed)
            for (i, e) in rehearsed.enumerated() where e.x.count == input.reduce(1, *) && e.y.count == labels.count {
                var x = e.x
                if settings.augment {
                    var augmenter = Augmenter(policy: settings.augmentation,
                                              seed: Augmenter.seed(settings.seed, imageID: e.id, sample: Int64(bitPattern: seed &+ UInt64(i))))
                    augmenter.augment(&x, shape: input, mean: model.manifest.preprocess.mean, std: model.manifest.preprocess.std)
                }
                inputs += x
                targets += e.y
                count += 1
            }
            if count > examples.count {
                Counter(label: "xray_trainer_images_total", dimensions: [("use", "rehearsed")]).increment(by: count - examples.count)
            }
        }
        let records: [OutgoingRecord]
        do {
            records = try gradientRecords(model, version: current, inputs: inputs, targets: targets,
                                          count: count, contribution: contribution)
        } catch {
            // Finite inputs gave a non-finite loss or gradient: the version is suspect, not the
            // images. They go to the dead-letter topic (kept for a replay) and nothing is sent.
            logger.error("batch from \(Self.coordinates(batch[first.index])) at \(current.version): \(error); dead-lettering its \(examples.count) images")
            Counter(label: "xray_trainer_images_total", dimensions: [("use", "non-finite")]).increment(by: examples.count)
            for e in examples { results[e.index] = .failure(error) }
            return results
        }
        results[first.index] = .success(records)
        lastBase.withLock { $0 = current.version }
        unsettled.withLock { $0[Self.coordinates(batch[0])] = current.version }
        return results
    }

    /// The rehearsal images for `model`'s input, preprocessed once per labels and preprocessing.
    private func rehearsal(_ source: RehearsalSource, for model: ModelFile) -> RehearsalSet {
        let m = model.manifest
        let key = "\(m.labels)|\(m.input)|\(m.preprocess.resize)|\(m.preprocess.crop)|\(m.preprocess.mean)|\(m.preprocess.std)"
        if let cached = rehearsalSet.withLock({ $0 }), cached.key == key { return cached.set }
        let start = ContinuousClock.now
        let set = RehearsalSet(files: source.files, model: model, split: settings.split, limit: source.limit, seed: settings.seed)
        logger.info("rehearsal: \(set.examples.count) images of training patients ready for input \(m.input) in \(String(format: "%.1f s", (ContinuousClock.now - start) / .seconds(1)))\(set.unreadable > 0 ? "; \(set.unreadable) unreadable, first: \(set.firstProblem ?? "")" : "")")
        rehearsalSet.withLock { $0 = (key, set) }
        return set
    }

    static func coordinates(_ record: KafkaRecord) -> String { "\(record.topic)/\(record.partition)@\(record.offset)" }

    /// One forward and backward pass; the gradient and the statistics change as records. The
    /// network's running statistics are put back, so the version in force stays as published.
    /// Throws `BadInput` (`non-finite-gradient`) if the loss, a gradient or a statistic is
    /// not finite: such a contribution is never sent.
    func gradientRecords(_ model: ModelFile, version: TrainingModel, inputs: [Float], targets: [Float], count n: Int,
                         contribution: String) throws -> [OutgoingRecord] {
        let network = model.network, s = model.manifest.input
        network.setTrainable(settings.scope)
        // Seeded by the batch: a replayed batch drops the same features.
        network.setHeadDropout(probability: settings.dropout, seed: settings.seed ^ fnv1a64("dropout:" + contribution))
        let labels = model.manifest.labels
        let loss = SigmoidCrossEntropy(labels: labels.count,
                                       positiveWeights: settings.balanceClasses
                                           ? SigmoidCrossEntropy.batchBalancedWeights(targets: targets, labels: labels.count)
                                           : labels.map { settings.positiveWeights[$0] ?? 1 })
        let before = network.floatState
        let x = UnsafeMutablePointer<Float>.allocate(capacity: inputs.count)
        defer { x.deallocate() }
        x.initialize(from: inputs, count: inputs.count)
        network.store.zeroGradients()
        let value = loss.forward(network.forward(Activation(data: x, shape: Shape(n: n, c: s[0], h: s[1], w: s[2])), mode: .training),
                                 targets: targets)
        network.backward(loss.backward())
        let after = network.floatState
        network.floatState = before
        let delta = zip(after, before).map { $0 - $1 }
        guard value.isFinite, CheckedSize.firstNonFinite(UnsafeBufferPointer(network.store.flatGradients)) == nil,
              CheckedSize.firstNonFinite(delta) == nil else {
            throw BadInput("model \(version.version) gave a non-finite loss (\(value)), gradient or statistic on this batch; the gradient is not sent",
                           code: "non-finite-gradient")
        }
        Gauge(label: "xray_trainer_loss").record(Double(value))
        return GradientCodec.records(gradient: UnsafeBufferPointer(network.store.flatGradients),
                                     stateDelta: delta,
                                     layout: ShardLayout(parameterCount: network.store.count, shards: settings.shards),
                                     contribution: contribution, trainer: settings.trainerID, baseVersion: version.version,
                                     baseStep: version.step, samples: n, loss: value, topic: settings.gradientsTopic)
    }

    /// 16 hex digits of FNV-1a of `text`: a contribution id from its records' coordinates.
    static func digest(_ text: String) -> String {
        let hex = String(fnv1a64(text), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
