import Foundation
public import KafkaIO
import ModelVersions
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

    public init(id: String, trainer: String, baseVersion: String, baseStep: Int, shard: Int, shards: Int, samples: Int, loss: Float,
                start: Int, gradient: [Float], stateDelta: [Float]?, records: [KafkaRecord]) {
        self.id = id; self.trainer = trainer; self.baseVersion = baseVersion; self.baseStep = baseStep; self.shard = shard
        self.shards = shards; self.samples = samples; self.loss = loss; self.start = start; self.gradient = gradient
        self.stateDelta = stateDelta; self.records = records
    }
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
