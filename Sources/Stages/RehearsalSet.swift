import Engine
import Foundation
public import ModelVersions

/// Where a trainer's rehearsal images come from: labelled files, how many of them to keep and
/// what share of each batch they make. The trainer preprocesses them for the model in force.
public struct RehearsalSource: Sendable {
    public var files: [ImageFile]
    public var limit: Int
    public var share: Double

    public init(files: [ImageFile], limit: Int = 512, share: Double = 0.25) {
        self.files = files; self.limit = limit; self.share = share
    }
}

/// Labelled images of the sites a model learnt before (for example the Kermany training split
/// a model arrives with), kept preprocessed in memory so a trainer can mix them into each
/// batch of the new site's images: rehearsal, against forgetting the old sites while learning
/// the new one. Images of held-out patients are left out, so the old sites' evaluation stays
/// on images nothing trained on.
public struct RehearsalSet: Sendable {
    public struct Example: Sendable {
        public var id: String
        /// The preprocessed input, in the model's shape.
        public var x: [Float]
        /// One target per model label (1 positive, 0 not).
        public var y: [Float]
    }

    public let examples: [Example]
    /// Files that could not be read, and the first reason.
    public let unreadable: Int
    public let firstProblem: String?

    /// Up to `limit` of the labelled `files` of training patients (`split` says who is held
    /// out), chosen by `seed`, preprocessed as `model` says.
    public init(files: [ImageFile], model: ModelFile, split: PatientSplit, limit: Int, seed: UInt64) {
        var candidates = files.filter { $0.metadata.labels != nil && !split.isValidation(patient: $0.metadata.patientID ?? $0.metadata.imageID) }
        var generator = SeededGenerator(seed: seed)
        candidates.shuffle(using: &generator)
        let loader = OfflinePredictor(model: model)
        let labels = model.manifest.labels
        var examples: [Example] = [], unreadable = 0, firstProblem: String?
        for file in candidates where examples.count < max(0, limit) {
            do {
                let x = try loader.input(for: URL(fileURLWithPath: file.path))
                let positives = Set(file.metadata.labels ?? [])
                examples.append(Example(id: file.metadata.imageID, x: x, y: labels.map { positives.contains($0) ? 1 : 0 }))
            } catch {
                unreadable += 1
                firstProblem = firstProblem ?? "\(file.path): \(error)"
            }
        }
        self.examples = examples
        self.unreadable = unreadable
        self.firstProblem = firstProblem
    }

    /// The examples to mix into a batch of `count` new images so that they make `share` of
    /// it, chosen by `seed` (a batch read again chooses the same ones).
    public func draw(joining count: Int, share: Double, seed: UInt64) -> [Example] {
        guard !examples.isEmpty, count > 0, share > 0, share < 1 else { return [] }
        let wanted = Int((Double(count) * share / (1 - share)).rounded())
        var generator = SeededGenerator(seed: seed)
        return (0..<wanted).map { _ in examples[Int(generator.next() % UInt64(examples.count))] }
    }
}
