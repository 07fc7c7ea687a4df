import Foundation
public import KafkaIO
public import Logging
public import ServiceLifecycle
import Synchronization
public import Wire

/// Follows xray.models from the beginning and hands each complete, valid version to its
/// consumer: the scorer loads the weights into a `ModelSlot` (`serving(into:)`), the
/// preprocessor takes the manifest's preprocessing (`manifests(_:)`). Every version's content
/// is checked first (`ModelCheck`: dtypes, shapes, finite weights and statistics, a finite
/// forward pass). A corrupt, incomplete or unusable version, or one the consumer cannot use,
/// is refused with a log line and the previous one stays in force.
///
/// `ready()` returns once the topic has been read up to where it ended at start-up (its end
/// offsets, asked of the broker) and a version is in force, so a starting stage uses the
/// latest version, not the first, however slowly the broker answers.
public final class ModelFollower: Service, Sendable {
    /// What to do with an accepted version: its announcement, its model file's bytes and the
    /// model decoded and checked from them. Throws to refuse it.
    public typealias Use = @Sendable (ModelAnnouncement, [UInt8], ModelFile) throws -> Void
    /// Sees every other outcome: evaluations, gate decisions, shard announcements.
    public typealias Observe = @Sendable (ModelVersionAssembler.Outcome) -> Void

    private let use: Use
    private let observe: Observe?
    private let kinds: Set<ModelAnnouncement.Kind>
    private let current = Mutex<String?>(nil)
    private let metrics: ModelMetrics
    private let topic: String
    private let consumer: ConsumerConfiguration
    private let logger: Logger
    private let caughtUp = Mutex(false)
    /// The latest versions accepted and refused, in order (for status and tests), at most
    /// `keptDecisions` of them.
    private let history = Mutex<[(version: String, accepted: Bool, reason: String?)]>([])
    static let keptDecisions = 1000

    /// `stage` names the user in metrics (`xray_model_version_info{stage=...}`); `kinds` are
    /// the versions it takes (scorers: published and promoted; trainers: published and trained).
    public init(topic: String, consumer: ConsumerConfiguration, logger: Logger,
                stage: String = "scorer", assembling kinds: Set<ModelAnnouncement.Kind> = [.published, .promoted],
                use: @escaping Use, observe: Observe? = nil) {
        metrics = ModelMetrics(stage: stage)
        self.kinds = kinds
        self.observe = observe
        self.topic = topic
        self.consumer = consumer
        self.logger = logger
        self.use = use
    }

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

    /// A follower that hands each version's manifest to `use` (the preprocessor), without
    /// loading weights.
    public static func manifests(topic: String, consumer: ConsumerConfiguration, logger: Logger,
                                 use: @escaping @Sendable (ModelManifest) throws -> Void) -> ModelFollower {
        ModelFollower(topic: topic, consumer: consumer, logger: logger, stage: "preprocessor") { announcement, _, _ in try use(announcement.manifest) }
    }

    /// The version in force, if any.
    public var version: String? { current.withLock { $0 } }

    public var decisions: [(version: String, accepted: Bool, reason: String?)] { history.withLock { $0 } }

    public func run() async throws {
        let configuration = self.consumer
        let consumer = try await retryingWhileBrokerAway("opening \(topic)", logger: logger) {
            try KafkaConsumer(configuration: configuration, subscription: .wholeTopic(topic, fromBeginning: true), logger: logger)
        }
        await cancelWhenGracefulShutdown {
            var assembler = ModelVersionAssembler(assembling: self.kinds)
            // Start-up: everything written before now, then `ready()` may return.
            while !Task.isCancelled {
                do {
                    try await consumer.readToEnd { self.handle(&assembler, $0) }
                    self.markCaughtUp()
                    break
                } catch {
                    guard !Task.isCancelled else { break }
                    self.logger.warning("cannot tell where \(self.topic) ends yet (\(error)); asking again")
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            while let record = await consumer.next() {
                consumer.complete(record)
                self.handle(&assembler, record)
            }
        }
        await consumer.close()
    }

    private func handle(_ assembler: inout ModelVersionAssembler, _ record: KafkaRecord) {
        handle(assembler.add(record))
        for (version, reason) in assembler.drainDropped() {
            logger.warning("dropped the waiting parts of model version \(version): \(reason)")
        }
    }

    private func handle(_ outcome: ModelVersionAssembler.Outcome?) {
        switch outcome {
        case .complete(let announcement, let file)?: accept(announcement, file)
        case .rejected(let version, let reason)?: refuse(version, reason)
        case .decision(let d)?:
            logger.info("gate: \(d.version) \(d.promoted ? "promoted" : "held")\(d.forced ? " (forced by an operator)" : "") — \(d.reason)")
            observe?(.decision(d))
        case let other?: observe?(other)
        case nil: break
        }
    }

    private func markCaughtUp() {
        caughtUp.withLock { $0 = true }
        logger.info(version.map { "read \(topic) to its end; using \($0)" }
                    ?? "read \(topic) to its end; no model yet, waiting for one (xray model publish)")
    }

    private func accept(_ announcement: ModelAnnouncement, _ file: [UInt8]) {
        let version = announcement.version
        var announcement = announcement
        announcement.manifest.version = version
        do {
            let model = try ModelCheck.verified(file, name: "model version \(version)")
            try use(announcement, file, model)
            let previous = current.withLock { state in defer { state = version }; return state }
            metrics.accepted(version, previous: previous)
            remember(version, accepted: true, reason: nil)
            let m = announcement.manifest
            logger.info("using model \(version): \(m.architecture), \(m.labels.count) labels, input \(m.input)")
        } catch {
            refuse(version, "\(error)")
        }
    }

    private func remember(_ version: String, accepted: Bool, reason: String?) {
        history.withLock { h in
            h.append((version, accepted, reason))
            if h.count > Self.keptDecisions { h.removeFirst(h.count - Self.keptDecisions) }
        }
    }

    private func refuse(_ version: String, _ reason: String) {
        remember(version, accepted: false, reason: reason)
        metrics.refused()
        logger.error("refused model \(version): \(reason); \(self.version.map { "still using \($0)" } ?? "no model in force")")
    }

    /// True once the topic has been read to its end at start-up.
    public var hasCaughtUp: Bool { caughtUp.withLock { $0 } }

    /// Waits until the topic has been read to its end and a version serves.
    public func ready() async throws {
        var waited = Duration.zero
        while !(hasCaughtUp && version != nil) {
            try await Task.sleep(for: .milliseconds(100))
            waited += .milliseconds(100)
            if waited == .seconds(30) { logger.warning("still waiting for a model on \(topic)") }
        }
    }
}
