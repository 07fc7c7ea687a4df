/// How a model version travels on xray.models (see Topics/xray.models.md): the model file's
/// bytes in chunks, then an announcement naming the version, its manifest, the chunk count and
/// checksums. The announcement comes last, so a version is complete exactly when it arrives
/// and every chunk before it checks out.
public enum ModelVersionRecord {
    /// Record headers on xray.models.
    public enum Header {
        public static let version = "xray.model.version"
        /// What the record is: `chunk` / `announcement` (a whole model file), `shard-chunk` /
        /// `shard-state` / `shard` (one aggregator's shard of a trained version),
        /// `evaluation` or `decision` (the gate's).
        public static let part = "xray.model.part"
        /// The shard of a `shard-chunk`, `shard-state` or `shard` record.
        public static let shard = "xray.model.shard"
        /// Chunk index, from 0.
        public static let chunk = "xray.model.chunk"
        /// CRC-32 (IEEE, as zlib computes it) of the chunk's value, 8 hex digits.
        public static let crc32 = "xray.model.crc32"
    }

    /// Bytes per chunk: below the topic's 8 MiB limit with room for headers.
    public static let chunkBytes = 4 << 20

    /// How many recently applied contributions a trained version lists (`recentContributions`):
    /// far more than the batches a trainer can hold uncommitted when it is killed.
    public static let recentContributions = 256

    /// What the records of xray.models may say; anything past these is refused.
    public enum Limits {
        /// Chunks of one model file or shard (4 GiB at 4 MiB a chunk).
        public static let maxChunks = 1024
        /// Bytes of one model file.
        public static let maxFileBytes = maxChunks * chunkBytes
        /// Bytes of a version name or run name.
        public static let maxNameBytes = 256
        /// Contribution ids listed by one version or shard.
        public static let maxContributions = 1 << 16
    }

    /// Nil when `name` may name a version or run; otherwise what is wrong with it.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "an empty name" }
        if name.utf8.count > Limits.maxNameBytes { return "a name longer than \(Limits.maxNameBytes) bytes" }
        return nil
    }

    /// The values of `xray.model.part`.
    public enum Part {
        public static let chunk = "chunk"
        public static let announcement = "announcement"
        public static let shardChunk = "shard-chunk"
        public static let shardState = "shard-state"
        public static let shard = "shard"
        public static let evaluation = "evaluation"
        public static let decision = "decision"
    }
}

/// The last record of a version (JSON value).
public struct ModelAnnouncement: Codable, Sendable, Equatable {
    public static let schemaVersion = 1

    public var version: String
    public var manifest: ModelManifest
    /// Chunks before this record, and their total size.
    public var chunks: Int
    public var bytes: Int
    /// CRC-32 of the whole model file, 8 hex digits.
    public var crc32: String
    /// ISO 8601 time of publication.
    public var publishedAt: String
    /// True when the gate (or `xray model promote`) republishes a trained version for triage;
    /// trainers ignore such records, scorers serve them.
    public var promotion: Bool?
    /// For a trained version: its run, step in the run and the version the run started from.
    public var run: String?
    public var step: Int?
    public var base: String?
    /// For a trained version: the contributions (`xray.contribution` ids) every shard applied
    /// in its step, so a restarted trainer can pass over a batch that is already in.
    public var contributions: [String]?
    /// For a trained version: the contributions every shard applied in the run's recent steps,
    /// this one included (at most `ModelVersionRecord.recentContributions`, oldest first). A
    /// trainer that starts from this version alone learns from it every replayed batch the run
    /// has taken, not only the last step's: otherwise a batch applied one step earlier and read
    /// again after a SIGKILL is sent at this version, refused as a duplicate, and a synchronous
    /// trainer waits for a step that never comes.
    public var recentContributions: [String]?

    public init(version: String, manifest: ModelManifest, chunks: Int, bytes: Int, crc32: String, publishedAt: String) {
        self.version = version; self.manifest = manifest; self.chunks = chunks; self.bytes = bytes
        self.crc32 = crc32; self.publishedAt = publishedAt
    }

    /// Nil when every count is within the format's limits and the manifest is consistent;
    /// otherwise what is wrong.
    public var problem: String? {
        typealias L = ModelVersionRecord.Limits
        if let p = ModelVersionRecord.nameProblem(version) { return "version: \(p)" }
        if !(0...L.maxChunks).contains(chunks) { return "\(chunks) chunks; at most \(L.maxChunks)" }
        if !(0...L.maxFileBytes).contains(bytes) { return "\(bytes) bytes; at most \(L.maxFileBytes)" }
        if let step, step < 0 { return "step \(step) is negative" }
        if let run, let p = ModelVersionRecord.nameProblem(run) { return "run: \(p)" }
        if (contributions?.count ?? 0) > L.maxContributions { return "more than \(L.maxContributions) contributions" }
        if (recentContributions?.count ?? 0) > L.maxContributions { return "more than \(L.maxContributions) recent contributions" }
        if let p = manifest.problem { return "manifest: \(p)" }
        return nil
    }
}

extension ModelAnnouncement {
    /// Where a version comes from, which decides who uses it.
    public enum Kind: String, Codable, Sendable, Hashable, CaseIterable {
        /// A model file an operator published (`xray model publish`): scorers serve it, and
        /// trainers start a run from it.
        case published
        /// A trained version an aggregator published, shard by shard: trainers and evaluators
        /// use it; scorers only once the gate promotes it.
        case trained
        /// A trained version republished whole by the gate or an operator for triage.
        case promoted
    }

    public var kind: Kind { promotion == true ? .promoted : step != nil ? .trained : .published }
}

/// The last record of one shard of a trained version, written by the aggregator that owns the
/// shard after the shard's `shard-chunk` records (parameter values, float32 little-endian) and,
/// for shard 0, its `shard-state` record (batch-norm running statistics). A trained version is
/// complete when all `shards` of them have arrived; its weights are the run's base model with
/// these values and statistics in place.
public struct ShardAnnouncement: Codable, Sendable, Equatable {
    public var version: String
    public var run: String
    /// Optimiser steps applied since the base version.
    public var step: Int
    /// The model version the run started from (a whole model file on xray.models).
    public var base: String
    public var shard: Int
    public var shards: Int
    /// The flat parameter range of this shard.
    public var start: Int
    public var count: Int
    /// `shard-chunk` records before this one and the CRC-32 of their bytes in order.
    public var chunks: Int
    public var crc32: String
    /// Floats in the `shard-state` record (shard 0 only) and their CRC-32.
    public var stateCount: Int?
    public var stateCRC32: String?
    /// The version's manifest (metrics include `train.loss` and `train.images` of the step).
    public var manifest: ModelManifest
    public var publishedAt: String
    /// The contributions (`xray.contribution` ids) this shard applied in the step.
    public var contributions: [String]?
    /// The contributions this shard applied in the run's recent steps, this one included
    /// (oldest first, at most `ModelVersionRecord.recentContributions`).
    public var recentContributions: [String]?

    public init(version: String, run: String, step: Int, base: String, shard: Int, shards: Int, start: Int, count: Int,
                chunks: Int, crc32: String, manifest: ModelManifest, publishedAt: String) {
        self.version = version; self.run = run; self.step = step; self.base = base; self.shard = shard
        self.shards = shards; self.start = start; self.count = count; self.chunks = chunks; self.crc32 = crc32
        self.manifest = manifest; self.publishedAt = publishedAt
    }

    /// Nil when the shard's numbers are consistent and within the format's limits (so
    /// `start + count` and the float counts cannot overflow); otherwise what is wrong.
    public var problem: String? {
        typealias L = ModelVersionRecord.Limits
        if let p = ModelVersionRecord.nameProblem(version) { return "version: \(p)" }
        if let p = ModelVersionRecord.nameProblem(run) { return "run: \(p)" }
        if let p = ModelVersionRecord.nameProblem(base) { return "base: \(p)" }
        if step < 1 { return "step \(step) is not positive" }
        if !(1...ShardLayout.maxShards).contains(shards) || !(0..<shards).contains(shard) {
            return "shard \(shard) of \(shards) (at most \(ShardLayout.maxShards))"
        }
        let maxFloats = GradientRecord.Limits.maxParameters
        if !(0...maxFloats).contains(start) || !(0...maxFloats).contains(count) { return "range \(start) + \(count) out of bounds" }
        if !(0...L.maxChunks).contains(chunks) { return "\(chunks) chunks; at most \(L.maxChunks)" }
        if let stateCount, !(0...maxFloats).contains(stateCount) { return "stateCount \(stateCount) out of bounds" }
        if (contributions?.count ?? 0) > L.maxContributions { return "more than \(L.maxContributions) contributions" }
        if (recentContributions?.count ?? 0) > L.maxContributions { return "more than \(L.maxContributions) recent contributions" }
        if let p = manifest.problem { return "manifest: \(p)" }
        return nil
    }
}

/// An evaluator's figures for one version on its window of held-out labelled images.
public struct VersionEvaluation: Codable, Sendable, Equatable {
    public var version: String
    /// Images in the window the figures come from.
    public var images: Int
    /// `auc.<label>`, `auc.mean`, `accuracy.<label>` (at the manifest's thresholds), and per
    /// site `site.<site>.auc.mean`, `site.<site>.auc.<label>`, `site.<site>.images`.
    public var metrics: [String: Double]
    public var evaluatedAt: String

    public init(version: String, images: Int, metrics: [String: Double], evaluatedAt: String) {
        self.version = version; self.images = images; self.metrics = metrics; self.evaluatedAt = evaluatedAt
    }

    /// The mean AUC, when the record gives one in [0, 1] (a forged or broken figure is ignored).
    public var meanAUC: Double? { metrics["auc.mean"].flatMap { (0...1).contains($0) ? $0 : nil } }

    /// The mean AUC of each site the record gives one for in [0, 1].
    public var siteMeanAUC: [String: Double] { SiteMetrics.meanAUC(metrics) }
}

/// The names of per-site figures in evaluation metrics: `site.<site>.<figure>`.
public enum SiteMetrics {
    public static func key(site: String, _ figure: String) -> String { "site.\(site).\(figure)" }

    /// The figures of `site`, without the prefix (`auc.mean`, `auc.<label>`, `images`).
    public static func figures(_ metrics: [String: Double], site: String) -> [String: Double] {
        let prefix = "site.\(site)."
        return Dictionary(uniqueKeysWithValues: metrics.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
    }

    /// Each site's mean AUC, when in [0, 1].
    public static func meanAUC(_ metrics: [String: Double]) -> [String: Double] {
        var result: [String: Double] = [:]
        for (key, value) in metrics where key.hasPrefix("site.") && key.hasSuffix(".auc.mean") && (0...1).contains(value) {
            let site = String(key.dropFirst(5).dropLast(9))
            if !site.isEmpty { result[site] = value }
        }
        return result
    }
}

/// Whether a version may serve triage, and why: written by the evaluator's gate, or by an
/// operator (`xray model promote`, `forced`).
public struct GateDecision: Codable, Sendable, Equatable {
    public var version: String
    public var promoted: Bool
    public var forced: Bool
    /// The version serving when the decision was taken.
    public var serving: String?
    public var reason: String
    /// `evaluator` or `operator`.
    public var decidedBy: String
    public var decidedAt: String
    /// For a promotion by the gate: the threshold chosen for each urgent label on the
    /// held-out window, or why the previous one stayed.
    public var operatingPoints: [String: OperatingPoint]?
    /// The same per site (site → label → point), for the sites whose held-out images could
    /// choose one.
    public var siteOperatingPoints: [String: [String: OperatingPoint]]?

    public init(version: String, promoted: Bool, forced: Bool, serving: String?, reason: String, decidedBy: String, decidedAt: String) {
        self.version = version; self.promoted = promoted; self.forced = forced; self.serving = serving
        self.reason = reason; self.decidedBy = decidedBy; self.decidedAt = decidedAt
    }
}

/// A label's operating threshold as the gate chose it for a target sensitivity on held-out
/// images, with what it gave there; or the threshold kept and why.
public struct OperatingPoint: Codable, Sendable, Equatable {
    public var threshold: Float
    /// True when chosen on this window; false when the previous threshold was kept (`reason`).
    public var chosen: Bool
    public var sensitivity: Double?
    public var specificity: Double?
    public var positives: Int
    public var negatives: Int
    public var reason: String?

    public init(threshold: Float, chosen: Bool, sensitivity: Double?, specificity: Double?, positives: Int, negatives: Int, reason: String? = nil) {
        self.threshold = threshold; self.chosen = chosen; self.sensitivity = sensitivity; self.specificity = specificity
        self.positives = positives; self.negatives = negatives; self.reason = reason
    }
}
