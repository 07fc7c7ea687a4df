import Foundation
public import KafkaIO
public import Logging
public import Wire

/// Finds model versions through xray.models.heads and reads exactly their records from
/// xray.models (see Topics/xray.models.heads.md): the newest heads are at the end of their
/// partition, and each names the offsets of its version's records. Start-up therefore costs
/// one version, whatever the history.
public struct ModelHeadIndex: Sendable {
    /// xray.models and xray.models.heads.
    public let modelsTopic: String
    public let headsTopic: String
    let configuration: ConsumerConfiguration
    let logger: Logger
    /// How many records from the end of a heads partition a start-up looks at first.
    public static let tailRecords: Int64 = 512

    public init(modelsTopic: String, configuration: ConsumerConfiguration, logger: Logger) {
        self.modelsTopic = modelsTopic
        headsTopic = Self.headsTopic(for: modelsTopic)
        self.configuration = configuration
        self.logger = logger
    }

    /// xray.models.heads under the same deployment prefix as `modelsTopic`.
    public static func headsTopic(for modelsTopic: String) -> String { modelsTopic + ".heads" }

    /// What one load read: records and bytes of the version (and its base), and records of
    /// other versions passed over between them.
    public struct ReadCount: Sendable {
        public var records = 0
        public var bytes = 0
        public var passedOver = 0

        public init() {}
    }

    /// The heads partitions' (low, high) watermarks: the high ones are where live reading goes on.
    public func ends() async throws -> [TopicPartition: (low: Int64, high: Int64)] {
        let partitions = (0..<Int32(ModelHead.Partition.count)).map { TopicPartition(headsTopic, $0) }
        return try await KafkaConsumer.watermarks(partitions, configuration: configuration, logger: logger)
    }

    /// The records of a heads partition from its start (`bounds.low`) or, with `count`, from
    /// about `count` records before its end, to its end; and the offset after them, where live
    /// reading goes on.
    public func records(_ partition: Int32, in bounds: (low: Int64, high: Int64), last count: Int64? = nil) async throws -> (records: [KafkaRecord], end: Int64) {
        let from = max(bounds.low, count.map { bounds.high - $0 } ?? bounds.low)
        var records: [KafkaRecord] = []
        do {
            let end = try await KafkaConsumer.readRange(TopicPartition(headsTopic, partition), first: from, last: .max,
                                                        configuration: configuration, logger: logger) { records.append($0) }
            return (records, end)
        } catch let error as KafkaError where error.name == "OFFSET_OUT_OF_RANGE" && records.isEmpty && from >= bounds.high {
            return ([], from)  // an empty partition
        }
    }

    /// The heads among `records`, oldest first; unreadable ones are logged and left out.
    func heads(_ records: [KafkaRecord]) -> [ModelHead] {
        records.compactMap { record in
            guard let head = try? JSONDecoder().decode(ModelHead.self, from: Data(record.value)) else {
                logger.warning("\(headsTopic)[\(record.partition)]@\(record.offset) is not a model head; passed over")
                return nil
            }
            if let problem = head.problem {
                logger.warning("the head at \(headsTopic)[\(record.partition)]@\(record.offset) is unusable (\(problem)); passed over")
                return nil
            }
            return head
        }
    }

    /// The newest head of `version` on the serving partition (the whole partition is read:
    /// one small record per published or promoted version), if any.
    public func newestHead(named version: String) async throws -> ModelHead? {
        let bounds = try await ends()[TopicPartition(headsTopic, ModelHead.Partition.serving)] ?? (0, 0)
        return heads(try await records(ModelHead.Partition.serving, in: bounds).records).last { $0.version == version }
    }

    /// The shard heads of the trained `version` if all are near the end of the trained
    /// partition (the whole partition is read only if it is not whole there).
    public func trainedHeads(of version: String) async throws -> [ModelHead]? {
        let bounds = try await ends()[TopicPartition(headsTopic, ModelHead.Partition.trained)] ?? (0, 0)
        let near = Self.completeTrained(heads(try await records(ModelHead.Partition.trained, in: bounds, last: Self.tailRecords).records))
        if let found = near.first(where: { $0.first?.version == version }) { return found }
        return Self.completeTrained(heads(try await records(ModelHead.Partition.trained, in: bounds).records)).first { $0.first?.version == version }
    }

    /// Trained versions whose every shard has a head among `heads`, newest first.
    static func completeTrained(_ heads: [ModelHead]) -> [[ModelHead]] {
        var byVersion: [String: [Int: ModelHead]] = [:]
        for head in heads where head.kind == .trained { byVersion[head.version, default: [:]][head.shard ?? 0] = head }
        return byVersion.values.compactMap { shards -> [ModelHead]? in
            guard let any = shards.first?.value, shards.count == any.shards else { return nil }
            return shards.keys.sorted().compactMap { shards[$0] }
        }.sorted { ($0.map(\.last).max() ?? 0) > ($1.map(\.last).max() ?? 0) }
    }

    /// Reads the version `heads` name (one head for a whole file, one per shard for a trained
    /// version) into `assembler` and returns its outcome: complete, or rejected with why.
    /// A trained version's base file is read first unless the assembler holds it.
    public func load(_ heads: [ModelHead], into assembler: inout ModelVersionAssembler, count: inout ReadCount) async throws -> ModelVersionAssembler.Outcome {
        guard let head = heads.first else { return .rejected(version: "?", reason: "no head") }
        let version = head.version
        do {
            if head.kind == .trained, let base = head.base, !assembler.holdsBase(base), let first = head.baseFirst, let last = head.baseLast {
                _ = try await read(base, first: first, last: last, partition: head.partition, into: &assembler, count: &count)
            }
            let first = heads.map(\.first).min() ?? head.first, last = heads.map(\.last).max() ?? head.last
            if let outcome = try await read(version, first: first, last: last, partition: head.partition, into: &assembler, count: &count) {
                return outcome
            }
            return .rejected(version: version, reason: "its records at \(modelsTopic)[\(head.partition)] \(first)...\(last) do not make it whole")
        } catch let error as KafkaError where error.name == "OFFSET_OUT_OF_RANGE" {
            return .rejected(version: version, reason: "its records are no longer on \(modelsTopic): \(error.message)")
        }
    }

    /// Feeds `version`'s records in [first, last] to the assembler; the outcome they give.
    private func read(_ version: String, first: Int64, last: Int64, partition: Int32, into assembler: inout ModelVersionAssembler,
                      count: inout ReadCount) async throws -> ModelVersionAssembler.Outcome? {
        var outcome: ModelVersionAssembler.Outcome?
        var local = count
        var a = assembler
        try await KafkaConsumer.readRange(TopicPartition(modelsTopic, partition), first: first, last: last,
                                          configuration: configuration, logger: logger) { record in
            guard record.headers.text(ModelVersionRecord.Header.version) == version else {
                local.passedOver += 1
                return
            }
            local.records += 1
            local.bytes += record.value.count
            switch a.add(record) {
            case let o?:
                switch o {
                case .complete(let an, _) where an.version == version: outcome = o
                case .rejected(let v, _) where v == version: outcome = o
                default: break
                }
            case nil: break
            }
        }
        assembler = a
        count = local
        return outcome
    }
}
