import Foundation
public import KafkaIO
public import Wire

/// Turns a model file into the records of one version on xray.models, and records back into
/// versions: chunks with CRC-32s, then the announcement (see Topics/xray.models.md).
public enum ModelVersionCodec {
    /// The records of `version`: the file's bytes in chunks, then the announcement.
    public static func records(for file: [UInt8], manifest: ModelManifest, version: String, topic: String,
                               chunkBytes: Int = ModelVersionRecord.chunkBytes) -> [OutgoingRecord] {
        typealias H = ModelVersionRecord.Header
        var records: [OutgoingRecord] = []
        var index = 0
        for start in stride(from: 0, to: file.count, by: chunkBytes) {
            let chunk = Array(file[start..<min(file.count, start + chunkBytes)])
            records.append(OutgoingRecord(topic: topic, key: version, value: chunk, headers: [
                KafkaHeader(H.version, version), KafkaHeader(H.part, "chunk"),
                KafkaHeader(H.chunk, String(index)), KafkaHeader(H.crc32, crc32Hex(chunk)),
            ]))
            index += 1
        }
        var manifest = manifest
        manifest.version = version
        let announcement = ModelAnnouncement(version: version, manifest: manifest, chunks: index, bytes: file.count,
                                             crc32: crc32Hex(file), publishedAt: isoNow())
        let json = try! JSONEncoder().encode(announcement)
        records.append(OutgoingRecord(topic: topic, key: version, value: [UInt8](json), headers: [
            KafkaHeader(H.version, version), KafkaHeader(H.part, "announcement"),
            KafkaHeader(HeaderName.contentType, ContentType.json),
        ]))
        return records
    }
}

/// Collects chunks from xray.models in order and yields each version when its announcement
/// arrives and checks out, or the reason it does not. Pure: no I/O.
public struct ModelVersionAssembler {
    public enum Outcome: Sendable {
        case complete(ModelAnnouncement, file: [UInt8])
        case rejected(version: String, reason: String)
    }

    private var chunks: [String: [Int: [UInt8]]] = [:]
    private var faults: [String: String] = [:]

    public init() {}

    public mutating func add(_ record: KafkaRecord) -> Outcome? {
        typealias H = ModelVersionRecord.Header
        guard let version = record.headers.text(H.version) ?? record.keyText else { return nil }
        switch record.headers.text(H.part) {
        case "chunk":
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
        case "announcement":
            defer { chunks[version] = nil; faults[version] = nil }
            return assemble(version, record.value)
        default:
            return .rejected(version: version, reason: "record at offset \(record.offset) is neither a chunk nor an announcement")
        }
    }

    private func assemble(_ version: String, _ value: [UInt8]) -> Outcome {
        guard let a = try? JSONDecoder().decode(ModelAnnouncement.self, from: Data(value)) else {
            return .rejected(version: version, reason: "the announcement is not valid JSON for schema \(ModelAnnouncement.schemaVersion)")
        }
        if let fault = faults[version] { return .rejected(version: version, reason: fault) }
        let parts = chunks[version] ?? [:]
        guard parts.count == a.chunks, (0..<a.chunks).allSatisfy({ parts[$0] != nil }) else {
            return .rejected(version: version, reason: "incomplete: \(parts.count) of \(a.chunks) chunks arrived")
        }
        let file = (0..<a.chunks).flatMap { parts[$0]! }
        guard file.count == a.bytes, crc32Hex(file) == a.crc32 else {
            return .rejected(version: version, reason: "the assembled file does not match the announced size and CRC-32")
        }
        if let problem = a.manifest.problem { return .rejected(version: version, reason: "manifest: \(problem)") }
        return .complete(a, file: file)
    }
}
