import Engine
import Foundation
public import KafkaIO
public import Wire

/// Reads xray.models in order and yields each version when it is complete and checks out (or
/// the reason it does not), and each evaluation and decision. Pure: no I/O.
///
/// It assembles only the kinds of version it is asked for: scorers want published and
/// promoted files, trainers and evaluators published files and trained versions. A trained
/// version is rebuilt from its run's base file (kept when it passes by) with every shard's
/// values and shard 0's statistics in place, and handed on as a model file.
///
/// Memory is bounded whatever the topic holds: parts waiting for their announcement (chunks
/// of a file, parts and verified shards of a trained version) are limited in number and
/// bytes, and dropped when no record of theirs came for `Limits.expiryRecords` records. What
/// is dropped is reported by `drainDropped()` so the reader can log it.
public struct ModelVersionAssembler: Sendable {
    public enum Outcome: Sendable {
        case complete(ModelAnnouncement, file: [UInt8])
        case rejected(version: String, reason: String)
        case evaluation(VersionEvaluation)
        case decision(GateDecision)
        /// One shard of a trained version arrived intact (whether or not it is assembled).
        case shard(ShardAnnouncement)
    }

    /// How much an assembler holds for versions that are not complete yet.
    public struct Limits: Sendable {
        /// Versions with parts waiting (chunks, shard parts or verified shards).
        public var pendingVersions = 16
        /// Bytes held in waiting parts, all versions together.
        public var pendingBytes = 1 << 30
        /// A version none of whose records came in this many records is dropped.
        public var expiryRecords = 20_000

        public init() {}
    }

    /// The parts of one version that came before its announcement(s).
    private struct Pending {
        /// Chunks of a whole model file, by index.
        var chunks: [Int: [UInt8]] = [:]
        /// The first fault of the file's records (a CRC-32 mismatch, a bad index).
        var fault: String?
        /// Parts of trained-version shards, by shard.
        var shardParts: [Int: ShardParts] = [:]
        /// Shards that arrived intact, by shard.
        var verified: [Int: VerifiedShard] = [:]
        var bytes = 0
        /// `recordsSeen` when a record of this version last came.
        var lastSeen = 0
    }

    private struct ShardParts {
        var chunks: [Int: [UInt8]] = [:]
        var state: [UInt8]?
        var fault: String?
    }

    private struct VerifiedShard {
        var announcement: ShardAnnouncement
        var values: [Float]
        var state: [Float]?
    }

    public let kinds: Set<ModelAnnouncement.Kind>
    public let limits: Limits
    private var pending: [String: Pending] = [:]
    private var pendingBytes = 0
    private var recordsSeen = 0
    private var dropped: [(version: String, reason: String)] = []
    /// Published files by version, newest last: the bases trained versions are rebuilt from.
    private var bases: [(version: String, file: [UInt8])] = []
    private static let keptBases = 4

    public init(assembling kinds: Set<ModelAnnouncement.Kind> = [.published, .promoted], limits: Limits = Limits()) {
        self.kinds = kinds
        self.limits = limits
    }

    /// True when the published file `version` is kept as a base for trained versions.
    public func holdsBase(_ version: String) -> Bool { bases.contains { $0.version == version } }

    /// Versions with parts waiting, and the bytes those parts hold (for tests and status).
    public var waiting: (versions: Int, bytes: Int) { (pending.count, pendingBytes) }

    /// Versions whose waiting parts were dropped since the last call (bounds or expiry), with why.
    public mutating func drainDropped() -> [(version: String, reason: String)] {
        defer { dropped.removeAll() }
        return dropped
    }

    public mutating func add(_ record: KafkaRecord) -> Outcome? {
        typealias H = ModelVersionRecord.Header
        typealias Part = ModelVersionRecord.Part
        recordsSeen += 1
        if recordsSeen % 256 == 0 { expire() }
        guard let version = record.headers.text(H.version) else {
            return .rejected(version: "?", reason: "record at offset \(record.offset) has no \(H.version) header")
        }
        if let problem = ModelVersionRecord.nameProblem(version) {
            return .rejected(version: String(version.prefix(64)), reason: "record at offset \(record.offset) names \(problem)")
        }
        let shard = record.headers.text(H.shard).flatMap(Int.init)
        switch record.headers.text(H.part) {
        case Part.chunk:
            let index = record.headers.text(H.chunk).flatMap(Int.init)
            update(version) { p in
                guard let index, (0..<ModelVersionRecord.Limits.maxChunks).contains(index) else {
                    p.fault = p.fault ?? "chunk at offset \(record.offset) has no valid index"
                    return 0
                }
                guard record.headers.text(H.crc32) == crc32Hex(record.value) else {
                    p.fault = p.fault ?? "chunk \(index) fails its CRC-32 (corrupted in transit or at rest)"
                    return 0
                }
                let replaced = p.chunks.updateValue(record.value, forKey: index)?.count ?? 0
                return record.value.count - replaced
            }
            return nil
        case Part.announcement:
            return assemble(version, record.value)
        case Part.shardChunk, Part.shardState:
            guard kinds.contains(.trained) else { return nil }
            guard let shard, (0..<ShardLayout.maxShards).contains(shard) else {
                return .rejected(version: version, reason: "a shard record at offset \(record.offset) has no valid shard number")
            }
            let isState = record.headers.text(H.part) == Part.shardState
            let index = record.headers.text(H.chunk).flatMap(Int.init)
            update(version) { p in
                var parts = p.shardParts[shard] ?? ShardParts()
                defer { p.shardParts[shard] = parts }
                if record.headers.text(H.crc32) != crc32Hex(record.value) {
                    parts.fault = parts.fault ?? "shard \(shard) has a record that fails its CRC-32"
                    return 0
                }
                if isState {
                    defer { parts.state = record.value }
                    return record.value.count - (parts.state?.count ?? 0)
                }
                guard let index, (0..<ModelVersionRecord.Limits.maxChunks).contains(index) else {
                    parts.fault = parts.fault ?? "shard \(shard) has a chunk without a valid index"
                    return 0
                }
                return record.value.count - (parts.chunks.updateValue(record.value, forKey: index)?.count ?? 0)
            }
            return nil
        case Part.shard:
            guard let a = try? JSONDecoder().decode(ShardAnnouncement.self, from: Data(record.value)) else {
                return .rejected(version: version, reason: "a shard announcement is not valid JSON")
            }
            if let problem = a.problem { return .rejected(version: version, reason: "shard announcement: \(problem)") }
            guard a.version == version else {
                return .rejected(version: version, reason: "a shard announcement for \(a.version) is filed under \(version)")
            }
            guard kinds.contains(.trained) else { return .shard(a) }
            return addShard(a)
        case Part.evaluation:
            return (try? JSONDecoder().decode(VersionEvaluation.self, from: Data(record.value))).map { .evaluation($0) }
        case Part.decision:
            return (try? JSONDecoder().decode(GateDecision.self, from: Data(record.value))).map { .decision($0) }
        default:
            return .rejected(version: version, reason: "record at offset \(record.offset) has an unknown part")
        }
    }

    /// Applies `change` to `version`'s waiting parts (creating them); `change` returns the
    /// bytes it added (negative if it freed some). Then enforces the bounds.
    private mutating func update(_ version: String, _ change: (inout Pending) -> Int) {
        var p = pending[version] ?? Pending()
        let added = change(&p)
        p.bytes += added
        p.lastSeen = recordsSeen
        pendingBytes += added
        pending[version] = p
        enforceBounds(keeping: version)
    }

    /// Drops the least recently fed versions while there are too many or they hold too much.
    private mutating func enforceBounds(keeping current: String) {
        while pending.count > limits.pendingVersions || (pendingBytes > limits.pendingBytes && pending.count > 1) {
            guard let oldest = pending.filter({ $0.key != current }).min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key else { break }
            drop(oldest, "more than \(limits.pendingVersions) versions or \(limits.pendingBytes) bytes are waiting for their announcements")
        }
        if pendingBytes > limits.pendingBytes {
            drop(current, "its parts alone hold more than \(limits.pendingBytes) bytes")
        }
    }

    private mutating func expire() {
        let horizon = recordsSeen - limits.expiryRecords
        for (version, p) in pending where p.lastSeen < horizon {
            drop(version, "no record of it in the last \(limits.expiryRecords) records; its announcement never came")
        }
    }

    private mutating func drop(_ version: String, _ reason: String) {
        guard let p = pending.removeValue(forKey: version) else { return }
        pendingBytes -= p.bytes
        dropped.append((version, reason))
        if dropped.count > 100 { dropped.removeFirst() }  // a reader that never drains stays bounded
    }

    /// Takes `version`'s waiting parts out of the bounds' accounting.
    private mutating func take(_ version: String) -> Pending {
        let p = pending.removeValue(forKey: version) ?? Pending()
        pendingBytes -= p.bytes
        return p
    }

    private mutating func assemble(_ version: String, _ value: [UInt8]) -> Outcome? {
        let parts = take(version)
        guard let a = try? JSONDecoder().decode(ModelAnnouncement.self, from: Data(value)) else {
            return .rejected(version: version, reason: "the announcement is not valid JSON for schema \(ModelAnnouncement.schemaVersion)")
        }
        let wanted = kinds.contains(a.kind)
        guard wanted || (a.kind == .published && kinds.contains(.trained)) else { return nil }
        if let problem = a.problem { return .rejected(version: version, reason: "announcement: \(problem)") }
        guard a.version == version else {
            return .rejected(version: version, reason: "an announcement for \(a.version) is filed under \(version)")
        }
        if let fault = parts.fault { return .rejected(version: version, reason: fault) }
        guard let file = joined(parts.chunks, count: a.chunks) else {
            return .rejected(version: version, reason: "incomplete: \(parts.chunks.count) of \(a.chunks) chunks arrived")
        }
        guard file.count == a.bytes, crc32Hex(file) == a.crc32 else {
            return .rejected(version: version, reason: "the assembled file does not match the announced size and CRC-32")
        }
        if a.kind == .published && kinds.contains(.trained) {
            bases.removeAll { $0.version == version }
            bases.append((version, file))
            if bases.count > Self.keptBases { bases.removeFirst() }
        }
        return wanted ? .complete(a, file: file) : nil
    }

    private mutating func addShard(_ a: ShardAnnouncement) -> Outcome {
        let version = a.version
        var failure: String?
        var complete: [Int: VerifiedShard]?
        update(version) { p in
            let parts = p.shardParts.removeValue(forKey: a.shard) ?? ShardParts()
            let freed = parts.chunks.values.reduce(0) { $0 + $1.count } + (parts.state?.count ?? 0)
            if let fault = parts.fault { failure = fault; return -freed }
            guard let bytes = joined(parts.chunks, count: a.chunks) else {
                failure = "shard \(a.shard) incomplete: \(parts.chunks.count) of \(a.chunks) chunks arrived"
                return -freed
            }
            guard crc32Hex(bytes) == a.crc32, let values = try? FloatBytes.decode(bytes, what: "model shard"), values.count == a.count else {
                failure = "shard \(a.shard) does not match its announced size and CRC-32"
                return -freed
            }
            var state: [Float]?
            if let count = a.stateCount {
                guard let s = parts.state, crc32Hex(s) == a.stateCRC32, let floats = try? FloatBytes.decode(s, what: "model state"),
                      floats.count == count else {
                    failure = "shard \(a.shard)'s batch-norm statistics are missing or fail their CRC-32"
                    return -freed
                }
                state = floats
            }
            p.verified[a.shard] = VerifiedShard(announcement: a, values: values, state: state)
            if p.verified.count == a.shards { complete = p.verified }
            return 0  // the bytes move from parts to verified values of the same size
        }
        if let failure {
            _ = take(version)
            return .rejected(version: version, reason: failure)
        }
        guard let complete else { return .shard(a) }
        _ = take(version)
        do {
            let (model, first) = try rebuilt(version, complete)
            let file = try model.encoded()
            var announcement = ModelAnnouncement(version: version, manifest: model.manifest, chunks: 0, bytes: file.count,
                                                 crc32: crc32Hex(file), publishedAt: first.publishedAt)
            announcement.run = first.run; announcement.step = first.step; announcement.base = first.base
            // Applied by every shard in this step: a trainer may pass over such a batch.
            let shards = complete.values.map { Set($0.announcement.contributions ?? []) }
            announcement.contributions = first.contributions?.filter { id in shards.allSatisfy { $0.contains(id) } }
            let recent = complete.values.map { Set($0.announcement.recentContributions ?? []) }
            announcement.recentContributions = first.recentContributions?.filter { id in recent.allSatisfy { $0.contains(id) } }
            return .complete(announcement, file: file)
        } catch {
            return .rejected(version: version, reason: "\(error)")
        }
    }

    /// The run's base model with every shard's values, shard 0's statistics and manifest, and
    /// shard 0's announcement. Throws if the shards disagree or do not fit the base.
    private func rebuilt(_ version: String, _ shards: [Int: VerifiedShard]) throws -> (ModelFile, ShardAnnouncement) {
        guard let zero = shards[0] else { throw BadInput("shard 0 missing") }
        let first = zero.announcement
        for s in shards.values where (s.announcement.run, s.announcement.step, s.announcement.base, s.announcement.shards)
            != (first.run, first.step, first.base, first.shards) {
            throw BadInput("shard \(s.announcement.shard) is of another step, run or cut than shard 0")
        }
        guard let base = bases.last(where: { $0.version == first.base })?.file else {
            throw BadInput("its base version \(first.base) is not on xray.models before it (or is too old to be kept)")
        }
        var model = try ModelFile.decode(base, name: "base version \(first.base)")
        let flat = model.network.store.flatValues
        let layout = try ShardLayout.checked(parameterCount: flat.count, shards: first.shards)
        for (index, shard) in shards {
            let range = layout.range(index)
            guard index < layout.shards, range == shard.announcement.start..<(shard.announcement.start + shard.announcement.count),
                  shard.values.count == range.count else {
                throw BadInput("shard \(index) covers a different parameter range than the base model's cut")
            }
            for (offset, value) in zip(range, shard.values) { flat[offset] = value }
        }
        if let state = zero.state {
            guard state.count == model.network.floatState.count else { throw BadInput("shard 0's statistics do not fit the base model") }
            model.network.floatState = state
        }
        model.manifest = first.manifest
        model.manifest.version = version
        return (model, first)
    }
}
