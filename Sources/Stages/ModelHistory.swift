import Foundation
public import KafkaIO
public import Logging
public import Wire

/// xray.models read once from the beginning to its end (for `xray model fetch` and
/// `xray model promote`): the versions asked for, the newest trained or published one, the
/// one scorers serve, and every evaluation. Versions are checked as the followers check them
/// (`ModelCheck`); one that fails is passed over with a warning.
public struct ModelHistory: Sendable {
    public typealias Version = (announcement: ModelAnnouncement, file: [UInt8])

    /// The version named when reading, if it is on the topic and intact.
    public private(set) var named: Version?
    /// The newest published or trained version.
    public private(set) var latest: Version?
    /// The newest published or promoted version: what scorers serve.
    public private(set) var serving: Version?
    public private(set) var evaluations: [String: VersionEvaluation] = [:]
    public private(set) var decisions: [GateDecision] = []

    /// Reads `topic` from its beginning to where it ends now.
    public static func read(topic: String, consumer: ConsumerConfiguration, logger: Logger, named: String? = nil) async throws -> ModelHistory {
        var assembler = ModelVersionAssembler(assembling: Set(ModelAnnouncement.Kind.allCases))
        var history = ModelHistory()
        try await KafkaConsumer.readWholeTopic(topic, configuration: consumer, logger: logger) { record in
            switch assembler.add(record) {
            case .complete(let a, let file)?:
                // As every follower does: a version whose content fails the checks is not one.
                do { _ = try ModelCheck.verified(file, name: "model version \(a.version)") } catch {
                    logger.warning("version \(a.version) is unusable: \(error)")
                    break
                }
                if a.version == named { history.named = (a, file) }
                if a.kind != .promoted { history.latest = (a, file) }
                if a.kind != .trained { history.serving = (a, file) }
            case .evaluation(let e)?: history.evaluations[e.version] = e
            case .decision(let d)?: history.decisions.append(d)
            case .rejected(let version, let reason)?: logger.warning("version \(version) is unusable: \(reason)")
            case .shard?, nil: break
            }
            for (version, reason) in assembler.drainDropped() { logger.warning("dropped the waiting parts of \(version): \(reason)") }
        }
        return history
    }
}
