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
