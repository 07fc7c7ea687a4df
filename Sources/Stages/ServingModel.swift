import Engine
public import KafkaIO
public import Logging
public import ModelVersions
import Synchronization
public import Wire

/// A model version ready to score: its manifest (with version and triage policy) and network.
///
/// The network is not thread-safe; a scorer uses it from one task, one batch at a time (the
/// runner processes batches one after another), hence `@unchecked Sendable`.
public final class ServingModel: @unchecked Sendable {
    public let manifest: ModelManifest
    public let version: String
    public let policy: TriagePolicy
    /// The figures the version was promoted on (its manifest's metrics, training figures
    /// left out); nil when it has none. Every prediction carries them.
    public let evaluation: [String: Double]?
    let network: Network

    public init(_ model: ModelFile, version: String) {
        manifest = model.manifest
        self.version = version
        policy = model.manifest.triagePolicy
        let figures = (model.manifest.metrics ?? [:]).filter { !$0.key.hasPrefix("train.") && $0.value.isFinite }
        evaluation = figures.isEmpty ? nil : figures
        network = model.network
    }

    /// Per-label probabilities for a batch of model inputs, each of the manifest's input shape.
    func probabilities(_ inputs: [[Float]]) -> [[Float]] {
        let s = manifest.input
        return network.probabilities(batch: inputs.flatMap { $0 }, shape: Shape(n: inputs.count, c: s[0], h: s[1], w: s[2]))
    }
}

/// The version a scorer serves now. The follower of xray.models replaces it; the scorer reads
/// it once per batch, so a switch happens between batches and no image is scored twice or
/// skipped.
public final class ModelSlot: Sendable {
    private let state = Mutex<ServingModel?>(nil)

    public init() {}

    public var current: ServingModel? { state.withLock { $0 } }

    func replace(with model: ServingModel) { state.withLock { $0 = model } }
}

extension ModelFollower {
    /// A follower that loads each version's weights into `slot` (the scorer).
    public static func serving(into slot: ModelSlot, topic: String, consumer: ConsumerConfiguration, logger: Logger) -> ModelFollower {
        ModelFollower(topic: topic, consumer: consumer, logger: logger) { announcement, _, model in
            guard model.manifest.architecture == announcement.manifest.architecture,
                  model.manifest.labels == announcement.manifest.labels else {
                throw BadInput("the weights' manifest (\(model.manifest.architecture), \(model.manifest.labels.count) labels) differs from the announcement's")
            }
            slot.replace(with: ServingModel(ModelFile(manifest: announcement.manifest, network: model.network), version: announcement.version))
        }
    }
}
