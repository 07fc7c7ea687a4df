import CheckedArithmetic
public import KafkaIO
import ModelVersions
import Wire

/// Collects the records of contributions per shard and yields each shard contribution when
/// all of its records have arrived. Pure: no I/O, no clock of its own (callers pass `now`).
///
/// Every record is checked before it is kept: headers within the format's limits, the shard
/// on its own partition, the CRC-32, and every value a finite number. Memory is bounded:
/// at most `Limits.contributions` partial contributions holding `Limits.bytes` wait at once,
/// and one whose records stopped coming `Limits.expiry` ago is given up. What is given up
/// (`expire(now:)`, or pushed out by the bounds) comes back with its records, so the caller
/// can mark them done and their offsets no longer hold back commits.
public struct GradientAssembler {
    public struct Limits: Sendable {
        /// Partial contributions waiting at once.
        public var contributions = 256
        /// Bytes of gradient values they hold together.
        public var bytes = 1 << 30
        /// A partial contribution none of whose records came for this long is given up.
        public var expiry: Duration = .seconds(600)

        public init() {}
    }

    /// A partial contribution given up, with the records it had collected.
    public struct Abandoned: Sendable {
        public var contribution: String
        public var shard: Int
        public var reason: String
        public var records: [KafkaRecord]
    }

    private struct Pending {
        var info: GradientChunkInfo
        var parts: [Int: (GradientChunkInfo, [Float])] = [:]
        var records: [KafkaRecord] = []
        var bytes = 0
        var lastSeen: ContinuousClock.Instant
    }

    public let limits: Limits
    private var pending: [String: Pending] = [:]
    private var pendingBytes = 0
    private var abandoned: [Abandoned] = []

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Contributions still missing records.
    public var incomplete: Int { pending.count }

    /// Adds a record; returns the shard contribution it completes, if any. Throws (the record
    /// is bad: headers, checksum, non-finite values, or a shard/partition mismatch) without
    /// touching the others.
    public mutating func add(_ record: KafkaRecord, now: ContinuousClock.Instant = .now) throws -> ShardContribution? {
        let info = try GradientChunkInfo(lookup: record.headers.text)
        guard info.shard == Int(record.partition) else {
            throw BadInput("gradient shard \(info.shard) arrived on partition \(record.partition); shards must go to their own partition")
        }
        guard crc32Hex(record.value) == info.crc32 else {
            throw BadInput("gradient record \(info.index) of \(info.contribution) fails its CRC-32 (corrupted in transit or at rest)",
                           code: "checksum")
        }
        let floats = try FloatBytes.decode(record.value, what: "gradient")
        if let index = CheckedSize.firstNonFinite(floats) { throw WireError.nonFinite("gradient", index: index) }
        let key = "\(info.contribution)#\(info.shard)"
        var entry = pending[key] ?? Pending(info: info, lastSeen: now)
        guard entry.info.count == info.count, entry.info.baseStep == info.baseStep, entry.info.samples == info.samples,
              entry.info.baseVersion == info.baseVersion, entry.info.shards == info.shards else {
            throw BadInput("gradient record \(info.index) of \(info.contribution) disagrees with the contribution's other records")
        }
        // A replayed contribution sends its records again; far more than that is not a replay.
        guard entry.records.count < 4 * info.count + 16 else {
            throw BadInput("contribution \(info.contribution) shard \(info.shard) sent record \(info.index) too many times")
        }
        var stripped = record
        stripped.value = []
        let replaced = entry.parts.updateValue((info, floats), forKey: info.index)?.1.count ?? 0
        let added = (floats.count - replaced) * 4
        entry.records.append(stripped)
        entry.bytes += added
        entry.lastSeen = now
        pendingBytes += added
        guard entry.parts.count == info.count else {
            pending[key] = entry
            enforceBounds(keeping: key)
            return nil
        }
        pending[key] = nil
        pendingBytes -= entry.bytes
        var gradient: [Float] = [], state: [Float]?
        let values = entry.parts.values.filter { $0.0.part == .values }.sorted { $0.0.start < $1.0.start }
        let first = values.first?.0.start ?? 0
        for (part, floats) in values {
            guard part.start == first + gradient.count else {
                abandoned.append(Abandoned(contribution: info.contribution, shard: info.shard,
                                           reason: "its chunks leave a gap at \(part.start)", records: entry.records))
                throw BadInput("gradient chunks of \(info.contribution) shard \(info.shard) leave a gap at \(part.start)")
            }
            gradient += floats
        }
        if let s = entry.parts.values.first(where: { $0.0.part == .state }) { state = s.1 }
        return ShardContribution(id: info.contribution, trainer: info.trainer, baseVersion: info.baseVersion, baseStep: info.baseStep,
                                 shard: info.shard, shards: info.shards, samples: info.samples, loss: info.loss,
                                 start: first, gradient: gradient, stateDelta: state, records: entry.records)
    }

    /// Gives up partial contributions none of whose records came within `limits.expiry`;
    /// returns them with everything given up since the last call.
    public mutating func expire(now: ContinuousClock.Instant) -> [Abandoned] {
        for (key, entry) in pending where now - entry.lastSeen > limits.expiry {
            abandon(key, "no record of it for \(limits.expiry); the trainer stopped sending it")
        }
        defer { abandoned.removeAll() }
        return abandoned
    }

    /// Forgets partial contributions of shards this member no longer owns.
    public mutating func drop(shards: Set<Int>) {
        for (key, entry) in pending where shards.contains(entry.info.shard) {
            pending[key] = nil
            pendingBytes -= entry.bytes
        }
    }

    private mutating func enforceBounds(keeping current: String) {
        while pending.count > limits.contributions || (pendingBytes > limits.bytes && pending.count > 1) {
            guard let oldest = pending.filter({ $0.key != current }).min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key else { break }
            abandon(oldest, "more than \(limits.contributions) contributions or \(limits.bytes) bytes were waiting for their other records")
        }
    }

    private mutating func abandon(_ key: String, _ reason: String) {
        guard let entry = pending.removeValue(forKey: key) else { return }
        pendingBytes -= entry.bytes
        abandoned.append(Abandoned(contribution: entry.info.contribution, shard: entry.info.shard, reason: reason,
                                   records: entry.records))
    }
}
