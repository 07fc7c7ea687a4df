import Foundation
public import KafkaIO
public import Logging
public import Wire

/// What xray.models holds, found through xray.models.heads (for `xray model fetch`, `promote`,
/// `rollback` and `list`): the version asked for, the newest trained or published one, the
/// one scorers serve, and the gate's evaluations and decisions. Only the versions asked for
/// are read from xray.models; versions are checked as the followers check them (`ModelCheck`),
/// and one that fails is passed over for the one before it, with a warning.
public struct ModelHistory: Sendable {
    public typealias Version = (announcement: ModelAnnouncement, file: [UInt8])

    /// The version named when reading, if it is on the topic and intact.
    public private(set) var named: Version?
    /// The newest published or trained version.
    public private(set) var latest: Version?
    /// The newest published or promoted version (or the one rolled back to): what scorers serve.
    public private(set) var serving: Version?
    /// The head of what scorers serve (whether or not it was read).
    public private(set) var servingHead: ModelHead?
    /// Every head of the serving partition, oldest first: published, promoted and rolled-back
    /// versions (the registry), and the heads of the newest trained versions.
    public private(set) var servingHeads: [ModelHead] = []
    public private(set) var recentTrained: [[ModelHead]] = []
    public private(set) var evaluations: [String: VersionEvaluation] = [:]
    public private(set) var decisions: [GateDecision] = []
    /// What reading the versions cost.
    public private(set) var read = ModelHeadIndex.ReadCount()

    /// Which versions `read` reads from xray.models.
    public enum Wanted: Sendable, Hashable { case named, latest, serving }

    /// Reads the heads of `topic` (xray.models), then the versions `loading` asks for: the one
    /// `named` (a version id), the latest, the serving one. Nothing else is read from
    /// xray.models.
    public static func read(topic: String, consumer: ConsumerConfiguration, logger: Logger, named: String? = nil,
                            loading: Set<Wanted> = [.named, .latest, .serving]) async throws -> ModelHistory {
        let index = ModelHeadIndex(modelsTopic: topic, configuration: consumer, logger: logger)
        var history = ModelHistory()
        let ends = try await index.ends()
        func records(_ p: Int32, last: Int64? = nil) async throws -> [KafkaRecord] {
            try await index.records(p, in: ends[TopicPartition(index.headsTopic, p)] ?? (0, 0), last: last).records
        }
        history.servingHeads = index.heads(try await records(ModelHead.Partition.serving))
        history.servingHead = history.servingHeads.last
        history.recentTrained = ModelHeadIndex.completeTrained(index.heads(try await records(ModelHead.Partition.trained, last: ModelHeadIndex.tailRecords)))
        var assembler = ModelVersionAssembler(assembling: Set(ModelAnnouncement.Kind.allCases))
        for record in try await records(ModelHead.Partition.audit) {
            switch assembler.add(record) {
            case .evaluation(let e)?: history.evaluations[e.version] = e
            case .decision(let d)?: history.decisions.append(d)
            default: break
            }
        }
        let serving = history.servingHeads.reversed().map { [$0] }
        let newestPublished = history.servingHeads.reversed().filter { $0.kind == .published && $0.rollback != true }.map { [$0] }
        // The newest published or trained version: by position on xray.models.
        let latest = (newestPublished + history.recentTrained).sorted { ($0.map(\.last).max() ?? 0) > ($1.map(\.last).max() ?? 0) }
        if loading.contains(.latest) { history.latest = try await history.first(of: latest, index, &assembler, logger) }
        if loading.contains(.serving) { history.serving = try await history.first(of: serving, index, &assembler, logger) }
        if loading.contains(.named), let name = named {
            var candidates = history.servingHeads.reversed().filter { $0.version == name }.map { [$0] }
            if candidates.isEmpty, let trained = try await index.trainedHeads(of: name) { candidates = [trained] }
            history.named = try await history.first(of: candidates, index, &assembler, logger)
        }
        return history
    }

    /// The first of `candidates` (each a version's heads) that reads whole and checks out.
    private mutating func first(of candidates: [[ModelHead]], _ index: ModelHeadIndex, _ assembler: inout ModelVersionAssembler,
                                _ logger: Logger) async throws -> Version? {
        for heads in candidates {
            guard case .complete(let a, let file) = try await loaded(heads, index, &assembler, logger) else { continue }
            do {
                _ = try ModelCheck.verified(file, name: "model version \(a.version)")
                return (a, file)
            } catch {
                logger.warning("version \(a.version) is unusable: \(error)")
            }
        }
        return nil
    }

    private mutating func loaded(_ heads: [ModelHead], _ index: ModelHeadIndex, _ assembler: inout ModelVersionAssembler,
                                 _ logger: Logger) async throws -> ModelVersionAssembler.Outcome {
        let outcome = try await index.load(heads, into: &assembler, count: &read)
        if case .rejected(let version, let reason) = outcome { logger.warning("version \(version) is unusable: \(reason)") }
        return outcome
    }
}
