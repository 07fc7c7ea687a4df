import Engine
import Foundation
public import KafkaIO
public import Wire

/// Turns models into the records of xray.models and back (see Topics/xray.models.md): a
/// whole model file in chunks with CRC-32s then its announcement; a trained version as one
/// set of shard records per aggregator; the gate's evaluations and decisions.
public enum ModelVersionCodec {
    private typealias H = ModelVersionRecord.Header
    private typealias Part = ModelVersionRecord.Part

    /// The records of `version`: the file's bytes in chunks, then the announcement.
    /// `trained` carries the run, step and base of a trained version being promoted.
    public static func records(for file: [UInt8], manifest: ModelManifest, version: String, topic: String,
                               promotion: Bool = false, trained: (run: String, step: Int, base: String)? = nil,
                               chunkBytes: Int = ModelVersionRecord.chunkBytes) throws -> [OutgoingRecord] {
        var records: [OutgoingRecord] = []
        var index = 0
        for chunk in chunked(file, size: chunkBytes) where !chunk.isEmpty {
            records.append(OutgoingRecord(topic: topic, key: "\(version)#chunk#\(index)", value: chunk, headers: [
                KafkaHeader(H.version, version), KafkaHeader(H.part, Part.chunk),
                KafkaHeader(H.chunk, String(index)), KafkaHeader(H.crc32, crc32Hex(chunk)),
            ]))
            index += 1
        }
        var manifest = manifest
        manifest.version = version
        var announcement = ModelAnnouncement(version: version, manifest: manifest, chunks: index, bytes: file.count,
                                             crc32: crc32Hex(file), publishedAt: isoNow())
        if promotion { announcement.promotion = true }
        announcement.run = trained?.run; announcement.step = trained?.step; announcement.base = trained?.base
        var last = try json(announcement, version: version, part: Part.announcement, topic: topic)
        last.key = Array("\(version)#announcement".utf8)
        records.append(last)
        return records
    }

    /// A version's file republished whole for triage (the gate's or an operator's promotion),
    /// with `metrics` (its evaluation) merged into its manifest.
    /// `thresholds` replace the triage policy's thresholds of those labels, `siteThresholds` those
    /// of those sites and labels.
    public static func promotionRecords(_ version: (announcement: ModelAnnouncement, file: [UInt8]), metrics: [String: Double],
                                        thresholds: [String: Float] = [:], siteThresholds: [String: [String: Float]] = [:],
                                        topic: String) throws -> [OutgoingRecord] {
        let a = version.announcement
        var model = try ModelFile.decode(version.file, name: "model version \(a.version)")
        model.manifest.metrics = (model.manifest.metrics ?? [:]).merging(metrics) { $1 }
        if !thresholds.isEmpty || !siteThresholds.isEmpty {
            var policy = model.manifest.triagePolicy
            policy.thresholds.merge(thresholds) { $1 }
            for (site, chosen) in siteThresholds {
                policy.siteThresholds = policy.siteThresholds ?? [:]
                policy.siteThresholds?[site, default: [:]].merge(chosen) { $1 }
            }
            model.manifest.triage = policy
        }
        let trained = a.run.map { (run: $0, step: a.step ?? 0, base: a.base ?? "") }
        return try records(for: try model.encoded(), manifest: model.manifest, version: a.version, topic: topic,
                       promotion: true, trained: trained)
    }

    /// One aggregator's records of a trained version: its shard's values in chunks, shard 0's
    /// batch-norm statistics, then the shard announcement (`chunks` and checksums filled in).
    public static func shardRecords(values: [Float], state: [Float]?, announcement: ShardAnnouncement, topic: String,
                                    chunkBytes: Int = ModelVersionRecord.chunkBytes) throws -> [OutgoingRecord] {
        var a = announcement
        let bytes = FloatBytes.encode(values)
        let version = a.version, shard = String(a.shard)
        // Keys by run, shard, part and the step's parity: log compaction keeps the newest two
        // steps of each shard, and nothing older (Topics/xray.models.md).
        let key = { (part: String) in "\(a.run)#\(a.shard)#\(part)#\(a.step % 2)" }
        var records = chunked(bytes, size: chunkBytes).enumerated().map { index, chunk in
            OutgoingRecord(topic: topic, key: key("chunk#\(index)"), value: chunk, headers: [
                KafkaHeader(H.version, version), KafkaHeader(H.part, Part.shardChunk), KafkaHeader(H.shard, shard),
                KafkaHeader(H.chunk, String(index)), KafkaHeader(H.crc32, crc32Hex(chunk)),
            ])
        }
        a.chunks = records.count
        a.crc32 = crc32Hex(bytes)
        if let state {
            let stateBytes = FloatBytes.encode(state)
            a.stateCount = state.count
            a.stateCRC32 = crc32Hex(stateBytes)
            records.append(OutgoingRecord(topic: topic, key: key("state"), value: stateBytes, headers: [
                KafkaHeader(H.version, version), KafkaHeader(H.part, Part.shardState), KafkaHeader(H.shard, shard),
                KafkaHeader(H.crc32, crc32Hex(stateBytes)),
            ]))
        }
        var shardHeader = try json(a, version: version, part: Part.shard, topic: topic)
        shardHeader.key = Array(key("shard").utf8)
        shardHeader.headers.append(KafkaHeader(H.shard, shard))
        records.append(shardHeader)
        return records
    }

    /// The record of an evaluation, for the audit partition of xray.models.heads (`headsTopic`).
    /// Throws if a figure is not a finite number (JSON has none).
    public static func record(_ evaluation: VersionEvaluation, headsTopic: String) throws -> OutgoingRecord {
        try audit(json(evaluation, version: evaluation.version, part: Part.evaluation, topic: headsTopic), Part.evaluation)
    }

    /// The record of a gate decision, for the audit partition of xray.models.heads.
    public static func record(_ decision: GateDecision, headsTopic: String) throws -> OutgoingRecord {
        try audit(json(decision, version: decision.version, part: Part.decision, topic: headsTopic), Part.decision)
    }

    /// The record of a head, for its partition of xray.models.heads.
    public static func record(_ head: ModelHead, headsTopic: String) throws -> OutgoingRecord {
        var record = try json(head, version: head.version, part: "head", topic: headsTopic)
        record.key = Array(head.key.utf8)
        record.partition = head.headsPartition
        return record
    }

    /// The record of a checkpoint's head, for the checkpoints partition of xray.models.heads,
    /// keyed like the checkpoint's commit (compaction keeps the newest per slot).
    public static func record(_ head: CheckpointHead, headsTopic: String) throws -> OutgoingRecord {
        var record = OutgoingRecord(topic: headsTopic, key: CheckpointRecord.key(run: head.run, shard: head.shard, slot: head.slot, chunk: nil),
                                    value: [UInt8](try JSONEncoder().encode(head)), headers: [KafkaHeader(HeaderName.contentType, ContentType.json)])
        record.partition = ModelHead.Partition.checkpoints
        return record
    }

    private static func audit(_ record: OutgoingRecord, _ part: String) -> OutgoingRecord {
        var record = record
        record.key = (record.key ?? []) + Array("#\(part)".utf8)
        record.partition = ModelHead.Partition.audit
        return record
    }

    private static func json(_ value: some Encodable, version: String, part: String, topic: String) throws -> OutgoingRecord {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return OutgoingRecord(topic: topic, key: version, value: [UInt8](try encoder.encode(value)), headers: [
            KafkaHeader(H.version, version), KafkaHeader(H.part, part), KafkaHeader(HeaderName.contentType, ContentType.json),
        ])
    }
}
