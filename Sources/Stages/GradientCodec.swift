import Foundation
public import KafkaIO
public import Wire

/// One shard's part of a trainer's contribution, assembled from its records on xray.gradients.
public struct ShardContribution: Sendable {
    public var id: String
    public var trainer: String
    public var baseVersion: String
    public var baseStep: Int
    public var shard: Int
    public var shards: Int
    public var samples: Int
    public var loss: Float
    /// Flat parameter index of `gradient[0]`.
    public var start: Int
    /// ∂(mean loss over the batch)/∂parameters for this shard's range.
    public var gradient: [Float]
    /// Change of the batch-norm running statistics (shard 0 only).
    public var stateDelta: [Float]?
    /// The records it came in (values dropped), to mark done once it is applied or dropped.
    public var records: [KafkaRecord]
}

/// Cuts a trainer's gradient into records for xray.gradients, and assembles them back.
public enum GradientCodec {
    /// The records of one contribution: per shard, its gradient slice in chunks of at most
    /// `chunkFloats` (partition = shard); shard 0 also carries `stateDelta`.
    public static func records(gradient: UnsafeBufferPointer<Float>, stateDelta: [Float], layout: ShardLayout,
                               contribution: String, trainer: String, baseVersion: String, baseStep: Int,
                               samples: Int, loss: Float, topic: String,
                               chunkFloats: Int = GradientRecord.chunkFloats) -> [OutgoingRecord] {
        precondition(gradient.count == layout.parameterCount)
        var records: [OutgoingRecord] = []
        for shard in 0..<layout.shards {
            let range = layout.range(shard)
            let starts = Array(stride(from: range.lowerBound, to: range.upperBound, by: chunkFloats))
            let hasState = shard == 0 && !stateDelta.isEmpty
            let count = starts.count + (hasState ? 1 : 0)
            func record(_ part: GradientChunkInfo.Part, index: Int, start: Int, value: [UInt8]) -> OutgoingRecord {
                let info = GradientChunkInfo(contribution: contribution, trainer: trainer, baseVersion: baseVersion,
                                             baseStep: baseStep, shard: shard, shards: layout.shards, part: part, index: index,
                                             count: count, start: start, samples: samples, loss: loss, crc32: crc32Hex(value))
                return OutgoingRecord(topic: topic, key: [UInt8]("shard-\(shard)".utf8), value: value,
                                      headers: info.headerFields.map { KafkaHeader($0.name, $0.value) },
                                      partition: Int32(shard))
            }
            for (index, start) in starts.enumerated() {
                let end = min(range.upperBound, start + chunkFloats)
                records.append(record(.values, index: index, start: start, value: FloatBytes.encode(gradient[start..<end])))
            }
            if hasState { records.append(record(.state, index: starts.count, start: 0, value: FloatBytes.encode(stateDelta))) }
        }
        return records
    }
}

/// Collects the records of contributions per shard and yields each shard contribution when
/// all of its records have arrived. Pure: no I/O.
public struct GradientAssembler {
    private struct Pending {
        var info: GradientChunkInfo
        var parts: [Int: (GradientChunkInfo, [Float])] = [:]
        var records: [KafkaRecord] = []
    }

    private var pending: [String: Pending] = [:]

    public init() {}

    /// Contributions still missing records.
    public var incomplete: Int { pending.count }

    /// Adds a record; returns the shard contribution it completes, if any. Throws (the record
    /// is bad: headers, checksum, or a shard/partition mismatch) without touching the others.
    public mutating func add(_ record: KafkaRecord) throws -> ShardContribution? {
        let info = try GradientChunkInfo(lookup: record.headers.text)
        guard info.shard == Int(record.partition) else {
            throw BadInput("gradient shard \(info.shard) arrived on partition \(record.partition); shards must go to their own partition")
        }
        guard crc32Hex(record.value) == info.crc32 else {
            throw BadInput("gradient record \(info.index) of \(info.contribution) fails its CRC-32 (corrupted in transit or at rest)")
        }
        let floats = try FloatBytes.decode(record.value, what: "gradient")
        let key = "\(info.contribution)#\(info.shard)"
        var entry = pending[key] ?? Pending(info: info)
        guard entry.info.count == info.count, entry.info.baseStep == info.baseStep, entry.info.samples == info.samples else {
            throw BadInput("gradient record \(info.index) of \(info.contribution) disagrees with the contribution's other records")
        }
        var stripped = record
        stripped.value = []
        entry.parts[info.index] = (info, floats)
        entry.records.append(stripped)
        guard entry.parts.count == info.count else { pending[key] = entry; return nil }
        pending[key] = nil
        var gradient: [Float] = [], state: [Float]?
        let values = entry.parts.values.filter { $0.0.part == .values }.sorted { $0.0.start < $1.0.start }
        let first = values.first?.0.start ?? 0
        for (part, floats) in values {
            guard part.start == first + gradient.count else {
                throw BadInput("gradient chunks of \(info.contribution) shard \(info.shard) leave a gap at \(part.start)")
            }
            gradient += floats
        }
        if let s = entry.parts.values.first(where: { $0.0.part == .state }) { state = s.1 }
        return ShardContribution(id: info.contribution, trainer: info.trainer, baseVersion: info.baseVersion, baseStep: info.baseStep,
                                 shard: info.shard, shards: info.shards, samples: info.samples, loss: info.loss,
                                 start: first, gradient: gradient, stateDelta: state, records: entry.records)
    }

    /// Forgets partial contributions of shards this member no longer owns.
    public mutating func drop(shards: Set<Int>) {
        pending = pending.filter { !shards.contains($0.value.info.shard) }
    }
}
