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

    /// Reads the heads of `topic` (xray.models), then, if `loading`: with `named` nil, the
    /// latest and the serving version; `latest` or `serving`, that one; a version id, that
    /// version.
    public static func read(topic: String, consumer: ConsumerConfiguration, logger: Logger, named: String? = nil,
                            loading: Bool = true) async throws -> ModelHistory {
        let index = ModelHeadIndex(modelsTopic: topic, configuration: consumer, logger: logger)
        var history = ModelHistory()
        let ends = try await index.ends()
        func end(_ p: Int32) -> Int64 { ends[TopicPartition(index.headsTopic, p)] ?? 0 }
        history.servingHeads = index.heads(try await index.records(ModelHead.Partition.serving, before: end(ModelHead.Partition.serving)))
        history.servingHead = history.servingHeads.last
        let trainedHeads = index.heads(try await index.records(ModelHead.Partition.trained, before: end(ModelHead.Partition.trained),
                                                               last: ModelHeadIndex.tailRecords))
        history.recentTrained = ModelHeadIndex.completeTrained(trainedHeads)
        var assembler = ModelVersionAssembler(assembling: Set(ModelAnnouncement.Kind.allCases))
        for record in try await index.records(ModelHead.Partition.audit, before: end(ModelHead.Partition.audit)) {
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
        guard loading else { return history }
        switch named {
        case nil:
            history.latest = try await history.first(of: latest, index, &assembler, logger)
            history.serving = try await history.first(of: serving, index, &assembler, logger)
        case "latest"?: history.latest = try await history.first(of: latest, index, &assembler, logger)
        case "serving"?: history.serving = try await history.first(of: serving, index, &assembler, logger)
        case let name?:
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
