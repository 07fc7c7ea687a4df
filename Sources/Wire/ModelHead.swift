/// Where a model version's records are on xray.models: the record a reader finds at the end
/// of xray.models.heads (see Topics/xray.models.heads.md) before it seeks straight to the
/// version, so that start-up reads one version, not the whole history.
///
/// A writer sends a version's records to xray.models first and, once every one is
/// acknowledged, its head. A head therefore only ever names records that were written; a
/// reader still verifies the version it finds there (CRC-32s, content) and, if it fails,
/// falls back to the head before it.
public struct ModelHead: Codable, Sendable, Equatable {
    /// The partitions of xray.models.heads.
    public enum Partition {
        /// Published and promoted versions, and rollbacks: the newest record is what scorers
        /// serve. Keyed by version (compaction keeps one head per version: the registry).
        public static let serving: Int32 = 0
        /// One head per shard of each trained version. Keyed by run and shard (compaction
        /// keeps the newest step of each shard).
        public static let trained: Int32 = 1
        /// The gate's evaluations and decisions (the JSON of xray.models' `evaluation` and
        /// `decision` records). Keyed by version and part.
        public static let audit: Int32 = 2
        /// `CheckpointHead`s: where each shard checkpoint is on xray.checkpoints. Keyed like
        /// the checkpoint's commit (compaction keeps the newest per slot).
        public static let checkpoints: Int32 = 3
        public static let count = 4
    }

    /// The kind of version the head names.
    public var kind: ModelAnnouncement.Kind
    public var version: String
    /// The xray.models partition and the offsets of the version's first and last record
    /// (inclusive). Records of other versions may lie between them.
    public var partition: Int32
    public var first: Int64
    public var last: Int64
    /// Bytes of the version's record values (what a reader fetches, at least).
    public var bytes: Int
    /// ISO 8601 time the head was written.
    public var writtenAt: String
    /// Trained versions: run, step, base version, this head's shard and the shard count.
    public var run: String?
    public var step: Int?
    public var base: String?
    public var shard: Int?
    public var shards: Int?
    /// Trained versions: the contributions the shard applied in this step.
    public var contributions: [String]?
    /// Trained versions: where the base version's records are (the file the shards go into).
    public var baseFirst: Int64?
    public var baseLast: Int64?
    /// A head that puts an earlier version back into service (`xray model rollback`): who
    /// decided and why.
    public var rollback: Bool?
    public var reason: String?
    public var decidedBy: String?

    public init(kind: ModelAnnouncement.Kind, version: String, partition: Int32, first: Int64, last: Int64, bytes: Int, writtenAt: String) {
        self.kind = kind; self.version = version; self.partition = partition
        self.first = first; self.last = last; self.bytes = bytes; self.writtenAt = writtenAt
    }

    /// The key the head is written under on its partition.
    public var key: String {
        kind == .trained ? "\(run ?? "")#\(shard ?? 0)" : version
    }

    /// The heads partition the head belongs on.
    public var headsPartition: Int32 { kind == .trained ? Partition.trained : Partition.serving }

    /// Nil when the head is usable; otherwise what is wrong with it.
    public var problem: String? {
        if let p = ModelVersionRecord.nameProblem(version) { return "version: \(p)" }
        if partition < 0 || first < 0 || last < first { return "offsets \(first)...\(last) of partition \(partition) are not a range" }
        if bytes < 0 { return "negative byte count" }
        guard kind == .trained else { return nil }
        guard let run, let step, let base, let shard, let shards else { return "a trained head without run, step, base, shard and shards" }
        if let p = ModelVersionRecord.nameProblem(run) ?? ModelVersionRecord.nameProblem(base) { return "run or base: \(p)" }
        if step < 0 || shards < 1 || shards > ShardLayout.maxShards || !(0..<shards).contains(shard) {
            return "step \(step), shard \(shard) of \(shards) are out of range"
        }
        if (contributions?.count ?? 0) > ModelVersionRecord.Limits.maxContributions { return "too many contributions" }
        guard let baseFirst, let baseLast, baseFirst >= 0, baseLast >= baseFirst else { return "a trained head without its base's offsets" }
        return nil
    }
}
