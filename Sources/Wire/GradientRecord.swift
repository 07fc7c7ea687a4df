/// How a trainer's gradient travels on xray.gradients (see Topics/xray.gradients.md).
///
/// One *contribution* is the gradient of one trainer's mini-batch at one model version. It is
/// cut by `ShardLayout` into one slice per parameter shard; shard s goes to partition s, so
/// the aggregator that owns partition s receives exactly its slice. A slice larger than
/// `chunkFloats` travels in several chunks. Shard 0 also carries the change the batch made to
/// the network's batch-norm running statistics (`state` part).
public enum GradientRecord {
    /// Record headers on xray.gradients.
    public enum Header {
        /// The contribution's id: a digest of the input records' topic/partition@offset, so a
        /// batch replayed after a trainer restart (or by another trainer after a rebalance)
        /// keeps its id.
        public static let contribution = "xray.gradient.id"
        /// The trainer that computed it (its member name in the barrier).
        public static let trainer = "xray.gradient.trainer"
        /// The model version the gradient was computed at, and that version's step in its run.
        public static let baseVersion = "xray.gradient.base-version"
        public static let baseStep = "xray.gradient.base-step"
        /// The shard (= partition) and how many shards the parameters are cut into.
        public static let shard = "xray.gradient.shard"
        public static let shards = "xray.gradient.shards"
        /// `values` (gradient of the mean loss, float32) or `state` (batch-norm statistics change).
        public static let part = "xray.gradient.part"
        /// Index of this record among the shard's records of the contribution, and their number.
        public static let index = "xray.gradient.index"
        public static let count = "xray.gradient.count"
        /// Flat parameter index of the first value (values part).
        public static let start = "xray.gradient.start"
        /// Images in the mini-batch and their mean loss.
        public static let samples = "xray.gradient.samples"
        public static let loss = "xray.gradient.loss"
        /// CRC-32 of the value, 8 hex digits.
        public static let crc32 = "xray.gradient.crc32"
    }

    /// Floats per values record: 4 MiB, below the topic's 8 MiB limit.
    public static let chunkFloats = 1 << 20

    /// What a gradient record's headers may say; anything past these is refused as malformed.
    public enum Limits {
        /// Parameter shards (partitions of xray.gradients).
        public static let maxShards = ShardLayout.maxShards
        /// Records of one shard's part of a contribution.
        public static let maxRecords = 1 << 16
        /// Parameters of a network (a flat index is below this).
        public static let maxParameters = 1 << 36
        /// Images in one mini-batch.
        public static let maxSamples = 1 << 20
        /// Optimiser steps of a run.
        public static let maxStep = Int(Int32.max)
        /// Bytes of a text header (ids, versions, trainer names).
        public static let maxTextBytes = 1024
    }
}

/// The headers of one record of a contribution, parsed and checked.
public struct GradientChunkInfo: Sendable, Equatable {
    public enum Part: String, Sendable { case values, state }

    public var contribution: String
    public var trainer: String
    public var baseVersion: String
    public var baseStep: Int
    public var shard: Int
    public var shards: Int
    public var part: Part
    public var index: Int
    public var count: Int
    public var start: Int
    public var samples: Int
    public var loss: Float
    public var crc32: String

    public init(contribution: String, trainer: String, baseVersion: String, baseStep: Int, shard: Int, shards: Int,
                part: Part, index: Int, count: Int, start: Int, samples: Int, loss: Float, crc32: String) {
        self.contribution = contribution; self.trainer = trainer; self.baseVersion = baseVersion
        self.baseStep = baseStep; self.shard = shard; self.shards = shards; self.part = part; self.index = index
        self.count = count; self.start = start; self.samples = samples; self.loss = loss; self.crc32 = crc32
    }

    /// The record's headers, as (name, text value).
    public var headerFields: [(name: String, value: String)] {
        typealias H = GradientRecord.Header
        return [
            (H.contribution, contribution), (H.trainer, trainer), (H.baseVersion, baseVersion), (H.baseStep, String(baseStep)),
            (H.shard, String(shard)), (H.shards, String(shards)), (H.part, part.rawValue), (H.index, String(index)),
            (H.count, String(count)), (H.start, String(start)), (H.samples, String(samples)), (H.loss, String(loss)),
            (H.crc32, crc32), (HeaderName.schema, String(TopicCatalog.gradients.schemaVersion)),
        ]
    }

    /// Parses a record's headers (`lookup` gives a header's text by name); throws `WireError`
    /// naming the first missing or bad one. Numbers must be integers within the format's
    /// limits (`GradientRecord.Limits`) and the loss a finite number.
    public init(lookup: (String) -> String?) throws {
        typealias H = GradientRecord.Header
        typealias L = GradientRecord.Limits
        func text(_ name: String) throws -> String {
            guard let value = lookup(name), !value.isEmpty else { throw WireError.invalid("gradient", "no \(name) header") }
            guard value.utf8.count <= L.maxTextBytes else {
                throw WireError.tooLarge("gradient", "header \(name) is longer than \(L.maxTextBytes) bytes")
            }
            return value
        }
        func int(_ name: String, min: Int = 0, max: Int) throws -> Int {
            guard let value = Int(try text(name)), value >= min, value <= max else {
                throw WireError.invalid("gradient", "header \(name) is not an integer in \(min)...\(max)")
            }
            return value
        }
        guard let part = Part(rawValue: try text(H.part)) else { throw WireError.invalid("gradient", "\(H.part) must be values or state") }
        guard let loss = Float(try text(H.loss)) else { throw WireError.invalid("gradient", "header \(H.loss) is not a number") }
        guard loss.isFinite else { throw WireError.nonFinite("gradient loss", index: 0) }
        self.init(contribution: try text(H.contribution), trainer: try text(H.trainer), baseVersion: try text(H.baseVersion),
                  baseStep: try int(H.baseStep, max: L.maxStep), shard: try int(H.shard, max: L.maxShards - 1),
                  shards: try int(H.shards, min: 1, max: L.maxShards), part: part,
                  index: try int(H.index, max: L.maxRecords - 1), count: try int(H.count, min: 1, max: L.maxRecords),
                  start: try int(H.start, max: L.maxParameters), samples: try int(H.samples, min: 1, max: L.maxSamples),
                  loss: loss, crc32: try text(H.crc32))
        guard shard < shards else { throw WireError.invalid("gradient", "shard \(shard) of \(shards)") }
        guard index < count else { throw WireError.invalid("gradient", "record \(index) of \(count)") }
    }
}

/// How a network's flat parameter vector is cut into shards: contiguous ranges of nearly
/// equal size, shard s = [s·P/S, (s+1)·P/S). Trainers and aggregators compute the same cut
/// from the parameter count and the shard count (the partitions of xray.gradients).
public struct ShardLayout: Sendable, Equatable {
    /// The most shards a layout may have.
    public static let maxShards = 4096

    public let parameterCount: Int
    public let shards: Int

    /// For counts the program itself chose (a network's parameters, a topic's partitions).
    public init(parameterCount: Int, shards: Int) {
        precondition(shards >= 1 && shards <= Self.maxShards && parameterCount >= shards)
        self.parameterCount = parameterCount
        self.shards = shards
    }

    /// For a shard count read from a record: throws instead of trapping.
    public static func checked(parameterCount: Int, shards: Int) throws -> ShardLayout {
        guard shards >= 1, shards <= maxShards, parameterCount >= shards else {
            throw WireError.invalid("shard layout", "\(shards) shards of \(parameterCount) parameters")
        }
        return ShardLayout(parameterCount: parameterCount, shards: shards)
    }

    public func range(_ shard: Int) -> Range<Int> {
        (shard * parameterCount / shards)..<((shard + 1) * parameterCount / shards)
    }
}
