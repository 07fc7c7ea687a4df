import Foundation
public import KafkaIO
public import Logging
public import Wire

extension KafkaProducer {
    /// Writes a model version: its records (`ModelVersionCodec`) to xray.models in order, and,
    /// once every one is acknowledged, its head to xray.models.heads, naming the offsets they
    /// got. Readers find versions by their heads, so a version is visible only once it is
    /// whole. `base` is the head of a trained version's base (where its file is).
    ///
    /// A writer that dies between the two leaves a version without a head: readers never see
    /// it, and the writer's successor writes it again (the aggregator republishes a shard its
    /// checkpoint has and the heads lack).
    @discardableResult
    public func sendVersion(_ records: [OutgoingRecord], headsTopic: String, base: ModelHead? = nil, logger: Logger) async throws -> ModelHead {
        let reports = try await sendInOrder(records, logger: logger)
        let offsets = reports.map(\.offset).filter { $0 >= 0 }
        guard let last = records.last, let lastReport = reports.last, let first = offsets.min(), let end = offsets.max() else {
            throw BadInput("the broker acknowledged the version's records without offsets; its head cannot be written")
        }
        var head = try Self.head(of: last, partition: lastReport.partition, first: first, last: end,
                                 bytes: records.reduce(0) { $0 + $1.value.count }, base: base)
        head.writtenAt = isoNow()
        try await sendInOrder([try ModelVersionCodec.record(head, headsTopic: headsTopic)], logger: logger)
        return head
    }

    /// Writes `head` alone (a rollback: an earlier version's records, served again).
    public func sendHead(_ head: ModelHead, headsTopic: String, logger: Logger) async throws {
        try await sendInOrder([try ModelVersionCodec.record(head, headsTopic: headsTopic)], logger: logger)
    }

    /// The head of the version whose last record is `record` (an announcement or a shard).
    static func head(of record: OutgoingRecord, partition: Int32, first: Int64, last: Int64, bytes: Int, base: ModelHead?) throws -> ModelHead {
        typealias Part = ModelVersionRecord.Part
        let part = record.headers.first { $0.name == ModelVersionRecord.Header.part }?.text
        switch part {
        case Part.announcement:
            let a = try JSONDecoder().decode(ModelAnnouncement.self, from: Data(record.value))
            return ModelHead(kind: a.kind, version: a.version, partition: partition, first: first, last: last, bytes: bytes, writtenAt: "")
        case Part.shard:
            let a = try JSONDecoder().decode(ShardAnnouncement.self, from: Data(record.value))
            guard let base, base.version == a.base else {
                throw BadInput("the head of \(a.version) shard \(a.shard) needs the head of its base \(a.base)")
            }
            var head = ModelHead(kind: .trained, version: a.version, partition: partition, first: first, last: last, bytes: bytes, writtenAt: "")
            head.run = a.run; head.step = a.step; head.base = a.base; head.shard = a.shard; head.shards = a.shards
            head.contributions = a.contributions
            head.baseFirst = base.first; head.baseLast = base.last
            return head
        default:
            throw BadInput("a version's last record must be its announcement or shard announcement, not \(part ?? "untyped")")
        }
    }
}
