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
                               chunkBytes: Int = ModelVersionRecord.chunkBytes) -> [OutgoingRecord] {
        var records: [OutgoingRecord] = []
        var index = 0
        for chunk in chunked(file, size: chunkBytes) where !chunk.isEmpty {
            records.append(OutgoingRecord(topic: topic, key: version, value: chunk, headers: [
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
        records.append(json(announcement, version: version, part: Part.announcement, topic: topic))
        return records
    }

    /// A version's file republished whole for triage (the gate's or an operator's promotion),
    /// with `metrics` (its evaluation) merged into its manifest.
    public static func promotionRecords(_ version: (announcement: ModelAnnouncement, file: [UInt8]), metrics: [String: Double],
                                        topic: String) throws -> [OutgoingRecord] {
        let a = version.announcement
        var model = try ModelFile.decode(version.file, name: "model version \(a.version)")
        model.manifest.metrics = (model.manifest.metrics ?? [:]).merging(metrics) { $1 }
        let trained = a.run.map { (run: $0, step: a.step ?? 0, base: a.base ?? "") }
        return records(for: try model.encoded(), manifest: model.manifest, version: a.version, topic: topic,
                       promotion: true, trained: trained)
    }

    /// One aggregator's records of a trained version: its shard's values in chunks, shard 0's
    /// batch-norm statistics, then the shard announcement (`chunks` and checksums filled in).
    public static func shardRecords(values: [Float], state: [Float]?, announcement: ShardAnnouncement, topic: String,
                                    chunkBytes: Int = ModelVersionRecord.chunkBytes) -> [OutgoingRecord] {
        var a = announcement
        let bytes = FloatBytes.encode(values)
        let version = a.version, shard = String(a.shard)
        var records = chunked(bytes, size: chunkBytes).enumerated().map { index, chunk in
            OutgoingRecord(topic: topic, key: version, value: chunk, headers: [
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
            records.append(OutgoingRecord(topic: topic, key: version, value: stateBytes, headers: [
                KafkaHeader(H.version, version), KafkaHeader(H.part, Part.shardState), KafkaHeader(H.shard, shard),
                KafkaHeader(H.crc32, a.stateCRC32!),
            ]))
        }
        var shardHeader = json(a, version: version, part: Part.shard, topic: topic)
        shardHeader.headers.append(KafkaHeader(H.shard, shard))
        records.append(shardHeader)
        return records
    }

    /// The record of an evaluation.
    public static func record(_ evaluation: VersionEvaluation, topic: String) -> OutgoingRecord {
        json(evaluation, version: evaluation.version, part: Part.evaluation, topic: topic)
    }

    /// The record of a gate decision.
    public static func record(_ decision: GateDecision, topic: String) -> OutgoingRecord {
        json(decision, version: decision.version, part: Part.decision, topic: topic)
    }

    private static func json(_ value: some Encodable, version: String, part: String, topic: String) -> OutgoingRecord {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return OutgoingRecord(topic: topic, key: version, value: [UInt8](try! encoder.encode(value)), headers: [
            KafkaHeader(H.version, version), KafkaHeader(H.part, part), KafkaHeader(HeaderName.contentType, ContentType.json),
        ])
    }
}

/// Reads xray.models in order and yields each version when it is complete and checks out (or
/// the reason it does not), and each evaluation and decision. Pure: no I/O.
///
/// It assembles only the kinds of version it is asked for: scorers want published and
/// promoted files, trainers and evaluators published files and trained versions. A trained
/// version is rebuilt from its run's base file (kept when it passes by) with every shard's
/// values and shard 0's statistics in place, and handed on as a model file.
public struct ModelVersionAssembler {
    public enum Outcome: Sendable {
        case complete(ModelAnnouncement, file: [UInt8])
        case rejected(version: String, reason: String)
        case evaluation(VersionEvaluation)
        case decision(GateDecision)
        /// One shard of a trained version arrived intact (whether or not it is assembled).
        case shard(ShardAnnouncement)
    }

    private struct ShardParts {
        var chunks: [Int: [UInt8]] = [:]
        var state: [UInt8]?
        var fault: String?
    }

    private struct VerifiedShard {
        var announcement: ShardAnnouncement
        var values: [Float]
        var state: [Float]?
    }

    public let kinds: Set<ModelAnnouncement.Kind>
    private var chunks: [String: [Int: [UInt8]]] = [:]
    private var faults: [String: String] = [:]
    private var shardParts: [String: [Int: ShardParts]] = [:]
    private var verified: [String: [Int: VerifiedShard]] = [:]
    /// Published files by version, newest last: the bases trained versions are rebuilt from.
    private var bases: [(version: String, file: [UInt8])] = []
    private static let keptBases = 4, keptPendingVersions = 16

    public init(assembling kinds: Set<ModelAnnouncement.Kind> = [.published, .promoted]) {
        self.kinds = kinds
    }

    public mutating func add(_ record: KafkaRecord) -> Outcome? {
        typealias H = ModelVersionRecord.Header
        typealias Part = ModelVersionRecord.Part
        guard let version = record.headers.text(H.version) ?? record.keyText else { return nil }
        let shard = record.headers.text(H.shard).flatMap(Int.init)
        switch record.headers.text(H.part) {
        case Part.chunk:
            guard let indexText = record.headers.text(H.chunk), let index = Int(indexText), index >= 0 else {
                faults[version] = faults[version] ?? "chunk at offset \(record.offset) has no index"
                return nil
            }
            guard record.headers.text(H.crc32) == crc32Hex(record.value) else {
                faults[version] = faults[version] ?? "chunk \(index) fails its CRC-32 (corrupted in transit or at rest)"
                return nil
            }
            chunks[version, default: [:]][index] = record.value
            return nil
        case Part.announcement:
            defer { chunks[version] = nil; faults[version] = nil }
            return assemble(version, record.value)
        case Part.shardChunk, Part.shardState:
            guard kinds.contains(.trained), let shard else { return nil }
            var parts = shardParts[version, default: [:]][shard] ?? ShardParts()
            if record.headers.text(H.crc32) != crc32Hex(record.value) {
                parts.fault = parts.fault ?? "shard \(shard) has a record that fails its CRC-32"
            } else if record.headers.text(H.part) == Part.shardState {
                parts.state = record.value
            } else if let index = record.headers.text(H.chunk).flatMap(Int.init) {
                parts.chunks[index] = record.value
            }
            shardParts[version, default: [:]][shard] = parts
            return nil
        case Part.shard:
            guard let a = try? JSONDecoder().decode(ShardAnnouncement.self, from: Data(record.value)) else {
                return .rejected(version: version, reason: "a shard announcement is not valid JSON")
            }
            guard kinds.contains(.trained) else { return .shard(a) }
            return addShard(a)
        case Part.evaluation:
            return (try? JSONDecoder().decode(VersionEvaluation.self, from: Data(record.value))).map { .evaluation($0) }
        case Part.decision:
            return (try? JSONDecoder().decode(GateDecision.self, from: Data(record.value))).map { .decision($0) }
        default:
            return .rejected(version: version, reason: "record at offset \(record.offset) has an unknown part")
        }
    }

    private mutating func assemble(_ version: String, _ value: [UInt8]) -> Outcome? {
        guard let a = try? JSONDecoder().decode(ModelAnnouncement.self, from: Data(value)) else {
            return .rejected(version: version, reason: "the announcement is not valid JSON for schema \(ModelAnnouncement.schemaVersion)")
        }
        let wanted = kinds.contains(a.kind)
        guard wanted || (a.kind == .published && kinds.contains(.trained)) else { return nil }
        if let fault = faults[version] { return .rejected(version: version, reason: fault) }
        let parts = chunks[version] ?? [:]
        guard let file = joined(parts, count: a.chunks) else {
            return .rejected(version: version, reason: "incomplete: \(parts.count) of \(a.chunks) chunks arrived")
        }
        guard file.count == a.bytes, crc32Hex(file) == a.crc32 else {
            return .rejected(version: version, reason: "the assembled file does not match the announced size and CRC-32")
        }
        if let problem = a.manifest.problem { return .rejected(version: version, reason: "manifest: \(problem)") }
        if a.kind == .published && kinds.contains(.trained) {
            bases.removeAll { $0.version == version }
            bases.append((version, file))
            if bases.count > Self.keptBases { bases.removeFirst() }
        }
        return wanted ? .complete(a, file: file) : nil
    }

    private mutating func addShard(_ a: ShardAnnouncement) -> Outcome {
        let version = a.version
        let parts = shardParts[version]?[a.shard] ?? ShardParts()
        shardParts[version]?[a.shard] = nil
        if let fault = parts.fault { return .rejected(version: version, reason: fault) }
        guard let bytes = joined(parts.chunks, count: a.chunks) else {
            return .rejected(version: version, reason: "shard \(a.shard) incomplete: \(parts.chunks.count) of \(a.chunks) chunks arrived")
        }
        guard crc32Hex(bytes) == a.crc32, let values = try? FloatBytes.decode(bytes, what: "model shard"), values.count == a.count else {
            return .rejected(version: version, reason: "shard \(a.shard) does not match its announced size and CRC-32")
        }
        var state: [Float]?
        if let count = a.stateCount {
            guard let s = parts.state, crc32Hex(s) == a.stateCRC32, let floats = try? FloatBytes.decode(s, what: "model state"),
                  floats.count == count else {
                return .rejected(version: version, reason: "shard \(a.shard)'s batch-norm statistics are missing or fail their CRC-32")
            }
            state = floats
        }
        verified[version, default: [:]][a.shard] = VerifiedShard(announcement: a, values: values, state: state)
        if verified.count > Self.keptPendingVersions, let oldest = verified.keys.min(by: { stepOf($0) < stepOf($1) }), oldest != version {
            verified[oldest] = nil
        }
        guard verified[version]!.count == a.shards else { return .shard(a) }
        defer { verified[version] = nil; shardParts[version] = nil }
        do {
            let model = try rebuilt(version, verified[version]!)
            let file = try model.encoded(), first = verified[version]![0]!.announcement
            var announcement = ModelAnnouncement(version: version, manifest: model.manifest, chunks: 0, bytes: file.count,
                                                 crc32: crc32Hex(file), publishedAt: first.publishedAt)
            announcement.run = first.run; announcement.step = first.step; announcement.base = first.base
            // Applied by every shard in this step: a trainer may pass over such a batch.
            let shards = verified[version]!.values.map { Set($0.announcement.contributions ?? []) }
            announcement.contributions = first.contributions?.filter { id in shards.allSatisfy { $0.contains(id) } }
            return .complete(announcement, file: file)
        } catch {
            return .rejected(version: version, reason: "\(error)")
        }
    }

    private func stepOf(_ version: String) -> Int { verified[version]?.values.first?.announcement.step ?? 0 }

    /// The run's base model with every shard's values, shard 0's statistics and manifest.
    private func rebuilt(_ version: String, _ shards: [Int: VerifiedShard]) throws -> ModelFile {
        guard let first = shards[0]?.announcement else { throw BadInput("shard 0 missing") }
        guard let base = bases.last(where: { $0.version == first.base })?.file else {
            throw BadInput("its base version \(first.base) is not on xray.models before it (or is too old to be kept)")
        }
        var model = try ModelFile.decode(base, name: "base version \(first.base)")
        let flat = model.network.store.flatValues
        let layout = ShardLayout(parameterCount: flat.count, shards: first.shards)
        for (index, shard) in shards {
            guard layout.range(index) == shard.announcement.start..<(shard.announcement.start + shard.announcement.count) else {
                throw BadInput("shard \(index) covers a different parameter range than the base model's cut")
            }
            shard.values.withUnsafeBufferPointer { flat.baseAddress!.advanced(by: shard.announcement.start).update(from: $0.baseAddress!, count: $0.count) }
        }
        if let state = shards[0]!.state {
            guard state.count == model.network.floatState.count else { throw BadInput("shard 0's statistics do not fit the base model") }
            model.network.floatState = state
        }
        model.manifest = first.manifest
        model.manifest.version = version
        return model
    }
}
