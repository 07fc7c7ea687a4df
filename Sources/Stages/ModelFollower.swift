import Foundation
public import KafkaIO
public import Logging
public import ServiceLifecycle
import Synchronization
import Wire

/// Follows xray.models from the beginning and puts each complete, valid version into a
/// `ModelSlot`: the latest accepted version serves. A corrupt or incomplete version, or one
/// whose weights do not load, is refused with a log line and the previous one keeps serving.
///
/// `ready()` returns once the topic has been read to its end at start-up and a version is
/// serving, so a starting scorer serves the latest version, not the first.
public final class ModelFollower: Service, Sendable {
    public let slot: ModelSlot
    private let topic: String
    private let consumer: ConsumerConfiguration
    private let logger: Logger
    /// How long the topic must stay quiet at start-up to count as read to its end.
    private let settle: Duration
    private let caughtUp = Mutex(false)
    /// Versions accepted and refused, in order (for status and tests).
    private let history = Mutex<[(version: String, accepted: Bool, reason: String?)]>([])

    public init(topic: String, consumer: ConsumerConfiguration, slot: ModelSlot = ModelSlot(), logger: Logger,
                settle: Duration = .seconds(2)) {
        self.topic = topic
        self.consumer = consumer
        self.slot = slot
        self.logger = logger
        self.settle = settle
    }

    public var decisions: [(version: String, accepted: Bool, reason: String?)] { history.withLock { $0 } }

    public func run() async throws {
        let consumer = try KafkaConsumer(configuration: consumer, subscription: .wholeTopic(topic, fromBeginning: true), logger: logger)
        await cancelWhenGracefulShutdown {
            var assembler = ModelVersionAssembler()
            while !Task.isCancelled {
                guard let record = await consumer.next(timeout: self.settle) else {
                    if !self.caughtUp.withLock({ $0 }) {
                        self.caughtUp.withLock { $0 = true }
                        self.logger.info(self.slot.current.map { "read \(self.topic) to its end; serving \($0.version)" }
                                         ?? "read \(self.topic) to its end; no model yet, waiting for one (xray model publish)")
                    }
                    continue
                }
                consumer.complete(record)
                switch assembler.add(record) {
                case .complete(let announcement, let file)?: self.accept(announcement, file)
                case .rejected(let version, let reason)?: self.refuse(version, reason)
                case nil: break
                }
            }
        }
        await consumer.close()
    }

    private func accept(_ announcement: ModelAnnouncement, _ file: [UInt8]) {
        let version = announcement.version
        do {
            let model = try ModelFile.decode(file, name: "model version \(version)")
            guard model.manifest.architecture == announcement.manifest.architecture,
                  model.manifest.labels == announcement.manifest.labels else {
                throw BadInput("the weights' manifest (\(model.manifest.architecture), \(model.manifest.labels.count) labels) differs from the announcement's")
            }
            var manifest = announcement.manifest
            manifest.version = version
            slot.replace(with: ServingModel(ModelFile(manifest: manifest, network: model.network), version: version))
            history.withLock { $0.append((version, true, nil)) }
            logger.info("serving model \(version): \(manifest.architecture), \(manifest.labels.count) labels, input \(manifest.input)")
        } catch {
            refuse(version, "weights do not load: \(error)")
        }
    }

    private func refuse(_ version: String, _ reason: String) {
        history.withLock { $0.append((version, false, reason)) }
        logger.error("refused model \(version): \(reason); \(slot.current.map { "still serving \($0.version)" } ?? "no model serving")")
    }

    /// Waits until the topic has been read to its end and a version serves.
    public func ready() async throws {
        var waited = Duration.zero
        while !(caughtUp.withLock { $0 } && slot.current != nil) {
            try await Task.sleep(for: .milliseconds(100))
            waited += .milliseconds(100)
            if waited == .seconds(30) { logger.warning("still waiting for a model on \(topic)") }
        }
    }
}
