public import Engine
import Foundation
public import KafkaIO
import ModelVersions
public import Wire

/// Everything an aggregator needs to continue a shard after a restart: its step, weights,
/// batch-norm statistics (shard 0), optimiser moments and step, schedule, and the ids of the
/// contributions it applied last. Stored as a safetensors file on xray.checkpoints.
public struct ShardCheckpoint: Sendable, Equatable {
    public var run: String
    public var base: String
    public var shard: Int
    public var shards: Int
    public var step: Int
    public var values: [Float]
    public var state: [Float]?
    public var optimizer: OptimizerState
    public var schedule: LearningRateSchedule
    public var applied: [String]
    /// The contributions of the latest step (announced again if the version is republished).
    public var lastApplied: [String]

    private struct Header: Codable {
        var run: String, base: String, shard: Int, shards: Int, step: Int
        var schedule: LearningRateSchedule
        var applied: [String]
        var lastApplied: [String]?
    }

    static let metadataKey = "xray.checkpoint"

    /// The checkpoint as the bytes of a safetensors file.
    public func encoded() throws -> [UInt8] {
        var file = try optimizer.file()
        file.tensors.append(NamedTensor(name: "values", shape: [values.count], floats: values))
        if let state { file.tensors.append(NamedTensor(name: "state", shape: [state.count], floats: state)) }
        let header = Header(run: run, base: base, shard: shard, shards: shards, step: step, schedule: schedule, applied: applied,
                            lastApplied: lastApplied)
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        file.metadata[Self.metadataKey] = String(decoding: try encoder.encode(header), as: UTF8.self)
        return [UInt8](try SafeTensors.encode(file))
    }

    public init(run: String, base: String, shard: Int, shards: Int, step: Int, values: [Float], state: [Float]?,
                optimizer: OptimizerState, schedule: LearningRateSchedule, applied: [String], lastApplied: [String] = []) {
        self.run = run; self.base = base; self.shard = shard; self.shards = shards; self.step = step
        self.values = values; self.state = state; self.optimizer = optimizer; self.schedule = schedule; self.applied = applied
        self.lastApplied = lastApplied
    }

    public init(decoding bytes: [UInt8]) throws {
        let file = try SafeTensors.decode(Data(bytes))
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let json = file.metadata[Self.metadataKey],
              let header = try? decoder.decode(Header.self, from: Data(json.utf8)),
              let values = file.byName["values"]?.floats else {
            throw BadInput("not a shard checkpoint (no \(Self.metadataKey) metadata or no values)")
        }
        self.init(run: header.run, base: header.base, shard: header.shard, shards: header.shards, step: header.step,
                  values: values, state: file.byName["state"]?.floats, optimizer: try OptimizerState(file: file),
                  schedule: header.schedule, applied: header.applied, lastApplied: header.lastApplied ?? [])
    }
}

/// Writes checkpoints to xray.checkpoints and finds the latest complete one of a shard.
public enum CheckpointCodec {
    /// The records of `checkpoint`: its file in chunks, then the commit, in slot step mod 2.
    public static func records(_ checkpoint: ShardCheckpoint, topic: String,
                               chunkBytes: Int = ModelVersionRecord.chunkBytes) throws -> [OutgoingRecord] {
        typealias H = CheckpointRecord.Header
        let bytes = try checkpoint.encoded()
        let slot = checkpoint.step % 2, run = checkpoint.run, shard = checkpoint.shard
        let common = [KafkaHeader(H.run, run), KafkaHeader(H.shard, String(shard)), KafkaHeader(H.slot, String(slot)),
                      KafkaHeader(H.step, String(checkpoint.step))]
        let chunks = chunked(bytes, size: chunkBytes)
        var records = chunks.enumerated().map { index, chunk in
            OutgoingRecord(topic: topic, key: CheckpointRecord.key(run: run, shard: shard, slot: slot, chunk: index), value: chunk,
                           headers: common + [KafkaHeader(H.part, "chunk"), KafkaHeader(H.chunk, String(index)),
                                              KafkaHeader(H.crc32, crc32Hex(chunk))])
        }
        let commit = CheckpointCommit(run: run, shard: shard, slot: slot, step: checkpoint.step, chunks: chunks.count,
                                      bytes: bytes.count, crc32: crc32Hex(bytes))
        records.append(OutgoingRecord(topic: topic, key: CheckpointRecord.key(run: run, shard: shard, slot: slot, chunk: nil),
                                      value: [UInt8](try JSONEncoder().encode(commit)),
                                      headers: common + [KafkaHeader(H.part, "commit"), KafkaHeader(HeaderName.contentType, ContentType.json)]))
        return records
    }
}

/// Reads xray.checkpoint records (the ranges their heads name, or the whole topic) and keeps, for one run, each shard's complete
/// checkpoints: the newest of each slot whose chunks all arrived and check out. Pure: no I/O.
///
/// Memory is bounded whatever the topic holds: records of other runs are passed over, chunk
/// buffers exist only for this run's slots (two per shard, at most `ShardLayout.maxShards`
/// shards), and a slot's chunks of an older step are dropped when a newer step begins.
public struct CheckpointReader {
    private struct SlotKey: Hashable { var shard: Int, slot: Int }
    public let run: String
    /// Chunks of the newest step seen per slot.
    private var chunks: [SlotKey: (step: Int, parts: [Int: [UInt8]])] = [:]
    private var complete: [SlotKey: ShardCheckpoint] = [:]

    public init(run: String) { self.run = run }

    public mutating func add(_ record: KafkaRecord) {
        typealias H = CheckpointRecord.Header
        let h = record.headers
        guard h.text(H.run) == run, let shard = h.text(H.shard).flatMap(Int.init), (0..<ShardLayout.maxShards).contains(shard),
              let slot = h.text(H.slot).flatMap(Int.init), slot == 0 || slot == 1,
              let step = h.text(H.step).flatMap(Int.init) else { return }
        let key = SlotKey(shard: shard, slot: slot)
        switch h.text(H.part) {
        case "chunk":
            guard let index = h.text(H.chunk).flatMap(Int.init), (0..<ModelVersionRecord.Limits.maxChunks).contains(index),
                  h.text(H.crc32) == crc32Hex(record.value) else { return }
            if chunks[key]?.step != step { chunks[key] = (step, [:]) }
            chunks[key]?.parts[index] = record.value
        case "commit":
            guard let commit = try? JSONDecoder().decode(CheckpointCommit.self, from: Data(record.value)), commit.problem == nil,
                  commit.run == run, commit.shard == shard, commit.slot == slot,
                  let held = chunks[key], held.step == commit.step, let bytes = joined(held.parts, count: commit.chunks)
            else { return }
            chunks[key] = nil
            guard bytes.count == commit.bytes, crc32Hex(bytes) == commit.crc32,
                  let checkpoint = try? ShardCheckpoint(decoding: bytes),
                  checkpoint.run == run, checkpoint.shard == shard, checkpoint.step == commit.step else { return }
            complete[key] = checkpoint
        default:
            return
        }
    }

    /// The run's complete checkpoints of `shard`, newest first (at most one per slot): a
    /// restorer tries the next if one is refused.
    public func checkpoints(shard: Int) -> [ShardCheckpoint] {
        [complete[SlotKey(shard: shard, slot: 0)], complete[SlotKey(shard: shard, slot: 1)]].compactMap { $0 }
            .sorted { $0.step > $1.step }
    }

    /// The newest complete checkpoint of `shard`.
    public func checkpoint(shard: Int) -> ShardCheckpoint? { checkpoints(shard: shard).first }
}
