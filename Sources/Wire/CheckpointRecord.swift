/// How an aggregator keeps a shard's training state on xray.checkpoints (see
/// Topics/xray.checkpoints.md): after each step, the shard's weights, optimiser moments,
/// schedule and recently applied contributions, as a safetensors file cut into chunks, then a
/// commit record. Two slots per shard are written alternately, so the last complete
/// checkpoint survives a crash in the middle of writing the next one and compaction keeps
/// exactly two per shard.
public enum CheckpointRecord {
    public enum Header {
        public static let run = "xray.checkpoint.run"
        public static let shard = "xray.checkpoint.shard"
        /// 0 or 1: step mod 2.
        public static let slot = "xray.checkpoint.slot"
        public static let step = "xray.checkpoint.step"
        /// `chunk` or `commit`.
        public static let part = "xray.checkpoint.part"
        public static let chunk = "xray.checkpoint.chunk"
        public static let crc32 = "xray.checkpoint.crc32"
    }

    /// The record key: `run/shard-S/slot-B/chunk-I` or `run/shard-S/slot-B/commit`, so that
    /// compaction keeps the latest of each.
    public static func key(run: String, shard: Int, slot: Int, chunk: Int?) -> String {
        "\(run)/shard-\(shard)/slot-\(slot)/" + (chunk.map { "chunk-\($0)" } ?? "commit")
    }
}

/// The value of a checkpoint's commit record (JSON).
public struct CheckpointCommit: Codable, Sendable, Equatable {
    public var run: String
    public var shard: Int
    public var slot: Int
    public var step: Int
    public var chunks: Int
    public var bytes: Int
    public var crc32: String

    public init(run: String, shard: Int, slot: Int, step: Int, chunks: Int, bytes: Int, crc32: String) {
        self.run = run; self.shard = shard; self.slot = slot; self.step = step
        self.chunks = chunks; self.bytes = bytes; self.crc32 = crc32
    }

    /// Nil when the numbers are within the format's limits; otherwise what is wrong.
    public var problem: String? {
        typealias L = ModelVersionRecord.Limits
        if let p = ModelVersionRecord.nameProblem(run) { return "run: \(p)" }
        if !(0..<ShardLayout.maxShards).contains(shard) { return "shard \(shard) out of range" }
        if slot != 0 && slot != 1 { return "slot \(slot) is not 0 or 1" }
        if step < 0 { return "step \(step) is negative" }
        if !(1...L.maxChunks).contains(chunks) { return "\(chunks) chunks; 1 to \(L.maxChunks)" }
        if !(0...L.maxFileBytes).contains(bytes) { return "\(bytes) bytes; at most \(L.maxFileBytes)" }
        return nil
    }
}

/// Where a shard checkpoint's records are on xray.checkpoints (JSON, on the `checkpoints`
/// partition of xray.models.heads): written once they are acknowledged, so a restarting
/// aggregator reads its run's newest checkpoints straight from their offsets.
public struct CheckpointHead: Codable, Sendable, Equatable {
    public var run: String
    public var shard: Int
    public var slot: Int
    public var step: Int
    /// The xray.checkpoints partition and the offsets of the first and last record (inclusive).
    public var partition: Int32
    public var first: Int64
    public var last: Int64
    public var writtenAt: String

    public init(run: String, shard: Int, slot: Int, step: Int, partition: Int32, first: Int64, last: Int64, writtenAt: String) {
        self.run = run; self.shard = shard; self.slot = slot; self.step = step
        self.partition = partition; self.first = first; self.last = last; self.writtenAt = writtenAt
    }

    /// Nil when usable; otherwise what is wrong.
    public var problem: String? {
        if let p = ModelVersionRecord.nameProblem(run) { return "run: \(p)" }
        if !(0..<ShardLayout.maxShards).contains(shard) || (slot != 0 && slot != 1) || step < 0 { return "shard, slot or step out of range" }
        if partition < 0 || first < 0 || last < first { return "offsets \(first)...\(last) are not a range" }
        return nil
    }
}
