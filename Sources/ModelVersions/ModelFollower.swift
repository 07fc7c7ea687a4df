import Foundation
public import KafkaIO
public import Logging
public import ServiceLifecycle
import Synchronization
public import Wire

/// Follows the model versions on xray.models through their heads (xray.models.heads) and
/// hands each complete, valid version to its consumer: the scorer loads the weights into a
/// `ModelSlot` (`serving(into:)`), the preprocessor takes the manifest's preprocessing
/// (`manifests(_:)`). Every version's content is checked first (`ModelCheck`: dtypes, shapes,
/// finite weights and statistics, a finite forward pass). A corrupt, incomplete, removed or
/// unusable version, or one the consumer cannot use, is refused with a log line and the
/// previous one stays in force.
///
/// Start-up reads only the versions it will use, whatever the history: the newest serving
/// version (published, promoted or rolled back to) from the end of the heads' serving
/// partition, and, for a follower of trained versions, the newest one whose every shard has a
/// head; a version that fails is passed over for the one before it. Then it follows the heads
/// as they are written and reads each new version it wants straight from its offsets.
/// `ready()` returns once start-up is done and a version is in force.
public final class ModelFollower: Service, Sendable {
    /// What to do with an accepted version: its announcement, its model file's bytes and the
    /// model decoded and checked from them. Throws to refuse it.
    public typealias Use = @Sendable (ModelAnnouncement, [UInt8], ModelFile) throws -> Void
    /// Sees what else the heads say: the gate's evaluations and decisions, and every shard
    /// head of a trained version (at start-up those near the end, then each as it comes).
    public typealias Observe = @Sendable (Event) -> Void

    public enum Event: Sendable {
        case evaluation(VersionEvaluation)
        case decision(GateDecision)
        case trainedShard(ModelHead)
    }

    private let use: Use
    private let observe: Observe?
    private let kinds: Set<ModelAnnouncement.Kind>
    private let alsoNamed: String?
    private let current = Mutex<String?>(nil)
    /// The published or promoted version accepted last (`current` may be a trained one).
    private let servingVersion = Mutex<String?>(nil)
    private let metrics: ModelMetrics
    private let topic: String
    private let consumer: ConsumerConfiguration
    private let logger: Logger
    private let caughtUp = Mutex(false)
    /// The latest versions accepted and refused, in order (for status and tests), at most
    /// `keptDecisions` of them.
    private let history = Mutex<[(version: String, accepted: Bool, reason: String?)]>([])
    static let keptDecisions = 1000
    /// Trained versions some of whose shard heads came, at most this many.
    static let maxPendingTrained = 64
    /// What start-up and each load read from xray.models, all together.
    private let readCount = Mutex(ModelHeadIndex.ReadCount())

    /// `stage` names the user in metrics (`xray_model_version_info{stage=...}`); `kinds` are
    /// the versions it takes (scorers: published and promoted; trainers: published and
    /// trained); `alsoNamed` a published version to load at start-up besides the newest (an
    /// aggregator's `--base`).
    public init(topic: String, consumer: ConsumerConfiguration, logger: Logger,
                stage: String = "scorer", assembling kinds: Set<ModelAnnouncement.Kind> = [.published, .promoted],
                alsoNamed: String? = nil, use: @escaping Use, observe: Observe? = nil) {
        metrics = ModelMetrics(stage: stage)
        self.kinds = kinds
        self.alsoNamed = alsoNamed
        self.observe = observe
        self.topic = topic
        self.consumer = consumer
        self.logger = logger
        self.use = use
    }

    /// A follower that hands each version's manifest to `use` (the preprocessor), without
    /// loading weights.
    public static func manifests(topic: String, consumer: ConsumerConfiguration, logger: Logger,
                                 use: @escaping @Sendable (ModelManifest) throws -> Void) -> ModelFollower {
        ModelFollower(topic: topic, consumer: consumer, logger: logger, stage: "preprocessor") { announcement, _, _ in try use(announcement.manifest) }
    }

    /// The version in force, if any.
    public var version: String? { current.withLock { $0 } }

    public var decisions: [(version: String, accepted: Bool, reason: String?)] { history.withLock { $0 } }

    /// Records and bytes read from xray.models so far (start-up and every version since), and
    /// records of other versions passed over.
    public var read: ModelHeadIndex.ReadCount { readCount.withLock { $0 } }

    /// Start-up found heads of versions to use but could read none of them.
    struct StartUpIncomplete: Error, CustomStringConvertible {
        var candidates: Int
        var description: String { "none of the \(candidates) model version(s) the heads name could be used" }
    }

    /// The kinds of whole-file version this follower loads from the serving partition (a
    /// follower of trained versions also needs their published bases).
    private var servingKinds: Set<ModelAnnouncement.Kind> {
        kinds.intersection([.published, .promoted]).union(kinds.contains(.trained) ? [.published] : [])
    }

    public func run() async throws {
        let index = ModelHeadIndex(modelsTopic: topic, configuration: consumer, logger: logger)
        var started: (resume: [TopicPartition: Int64], assembler: ModelVersionAssembler, pending: [String: [Int: ModelHead]])?
        while !Task.isCancelled, started == nil {
            do {
                started = try await retryingWhileBrokerAway("reading \(index.headsTopic)", logger: logger) {
                    var assembler = ModelVersionAssembler(assembling: self.kinds)
                    let (resume, candidates, pending) = try await self.startUp(index, &assembler)
                    // Heads named versions but none could be read whole (a broker too slow to
                    // serve them, or all refused): try again rather than wait for a new one.
                    if self.version == nil, candidates > 0 {
                        throw StartUpIncomplete(candidates: candidates)
                    }
                    return (resume, assembler, pending)
                }
            } catch is CancellationError {
                return
            } catch let error as StartUpIncomplete {
                logger.warning("\(error); reading the heads again in 5 s")
                try? await Task.sleep(for: .seconds(5))
            } catch {
                logger.warning("cannot read the newest model versions yet (\(error)); trying again")
                try? await Task.sleep(for: .seconds(1))
            }
        }
        guard let started, !Task.isCancelled else { return }
        markCaughtUp()
        let configuration = self.consumer
        let live = try await retryingWhileBrokerAway("opening \(index.headsTopic)", logger: logger) {
            try KafkaConsumer(configuration: configuration, subscription: .partitions(started.resume), logger: logger)
        }
        await cancelWhenGracefulShutdown {
            var assembler = started.assembler
            // Shards of trained versions whose other shards' heads had not come at start-up.
            var pending = started.pending
            // The next offset expected per heads partition: a record before it was handled
            // already (by the check below), one after it means the check missed nothing.
            var expected = started.resume
            // Heads partitions whose next head is to be read again at the next check (the
            // broker did not serve its version in time); their live records wait until then.
            var retrying: Set<TopicPartition> = []
            var lastCheck = ContinuousClock.now
            while !Task.isCancelled {
                var batch: [KafkaRecord] = []
                if let record = await live.next(timeout: Self.headsCheckInterval) {
                    live.complete(record)
                    batch = [record]
                }
                // Every few seconds, ask where the heads end: a live consumer that stopped
                // fetching (seen under heavy load) would otherwise leave a new version unseen.
                if ContinuousClock.now - lastCheck >= Self.headsCheckInterval {
                    lastCheck = .now
                    if let records = try? await self.missed(index, expected: expected) {
                        batch += records
                        retrying.removeAll()
                    }
                }
                for record in batch.sorted(by: { ($0.partition, $0.offset) < ($1.partition, $1.offset) }) {
                    let tp = TopicPartition(record.topic, record.partition)
                    guard !retrying.contains(tp), record.offset >= expected[tp] ?? 0 else { continue }
                    expected[tp] = record.offset + 1
                    do {
                        try await self.follow(record, index, &assembler, &pending)
                    } catch is CancellationError {
                        return
                    } catch let error as KafkaError where error.isRetriable {
                        self.logger.warning("could not read the version the head at \(record.topic)[\(record.partition)]@\(record.offset) names yet (\(error)); reading it again in \(Self.headsCheckInterval)")
                        expected[tp] = record.offset
                        retrying.insert(tp)
                    } catch {
                        self.logger.error("could not read the version the head at \(record.topic)[\(record.partition)]@\(record.offset) names: \(error)")
                    }
                }
            }
        }
        await live.close()
    }

    /// How often the live reader asks where the heads end, in case its consumer missed some.
    static let headsCheckInterval: Duration = .seconds(5)

    /// Head records written at or after `expected` that the live consumer has not handed over,
    /// read with a consumer of their own.
    private func missed(_ index: ModelHeadIndex, expected: [TopicPartition: Int64]) async throws -> [KafkaRecord] {
        let ends = try await index.ends()
        var records: [KafkaRecord] = []
        for (tp, next) in expected.sorted(by: { $0.key.partition < $1.key.partition }) {
            guard let high = ends[tp]?.high, high > next else { continue }
            logger.info("\(tp) holds heads from offset \(next) the live reader has not received; reading them directly")
            try await KafkaConsumer.readRange(tp, first: next, last: .max, configuration: consumer, logger: logger) { records.append($0) }
        }
        return records
    }

    /// Loads the versions to start with and returns where each heads partition's live reading
    /// goes on.
    private func startUp(_ index: ModelHeadIndex, _ assembler: inout ModelVersionAssembler) async throws
        -> (resume: [TopicPartition: Int64], candidates: Int, pending: [String: [Int: ModelHead]]) {
        let ends = try await index.ends()
        func bounds(_ p: Int32) -> (low: Int64, high: Int64) { ends[TopicPartition(index.headsTopic, p)] ?? (0, 0) }
        var resume: [TopicPartition: Int64] = [:]
        /// The end of a heads partition (the last `tailRecords`, or all), noting where live reading goes on.
        func tail(_ p: Int32, all: Bool = false) async throws -> [KafkaRecord] {
            let read = try await index.records(p, in: bounds(p), last: all ? nil : ModelHeadIndex.tailRecords)
            resume[TopicPartition(index.headsTopic, p)] = read.end
            return read.records
        }
        // Whole-file versions: the newest of the kinds wanted, from the end of the partition
        // (all of it only if none is near the end); the one before if it fails.
        var servingHeads = index.heads(try await tail(ModelHead.Partition.serving))
        let wanted = servingKinds
        if !servingHeads.contains(where: { wanted.contains($0.kind) }) || (alsoNamed.map { n in !servingHeads.contains { $0.version == n } } ?? false) {
            servingHeads = index.heads(try await tail(ModelHead.Partition.serving, all: true))
        }
        var trained: [[ModelHead]] = []
        let trainedHeads = index.heads(try await tail(ModelHead.Partition.trained))
        for head in trainedHeads { observe?(.trainedShard(head)) }
        if kinds.contains(.trained) { trained = ModelHeadIndex.completeTrained(trainedHeads) }
        for record in try await tail(ModelHead.Partition.audit) where observe != nil {
            switch assembler.add(record) {
            case .evaluation(let e)?: observe?(.evaluation(e))
            case .decision(let d)?: observe?(.decision(d))
            default: break
            }
        }
        // Oldest first, so the consumer ends on the newest (by position on xray.models). Each
        // entry is a list of candidates, newest first: the first that loads is used.
        var plan: [(last: Int64, candidates: [[ModelHead]])] = []
        let whole = servingHeads.filter { wanted.contains($0.kind) }.reversed().map { [$0] }
        if let newest = whole.first?.first { plan.append((newest.last, Array(whole))) }
        if let name = alsoNamed, let head = servingHeads.last(where: { $0.version == name }) { plan.append((-1, [[head]])) }
        if let newest = trained.first { plan.append((newest.map(\.last).max() ?? 0, trained)) }
        for entry in plan.sorted(by: { $0.last < $1.last }) {
            for candidate in entry.candidates where try await load(candidate, index, &assembler) { break }
        }
        // Trained versions with only some shard heads yet: the rest come live.
        var pending: [String: [Int: ModelHead]] = [:]
        if kinds.contains(.trained) {
            let complete = Set(trained.compactMap { $0.first?.version })
            for head in trainedHeads where !complete.contains(head.version) { pending[head.version, default: [:]][head.shard ?? 0] = head }
            if pending.count > Self.maxPendingTrained {
                for stale in pending.sorted(by: { ($0.value.values.map(\.last).max() ?? 0) < ($1.value.values.map(\.last).max() ?? 0) })
                    .prefix(pending.count - Self.maxPendingTrained) { pending[stale.key] = nil }
            }
        }
        return (resume, plan.reduce(0) { $0 + $1.candidates.count }, pending)
    }

    /// One record of the heads, live.
    private func follow(_ record: KafkaRecord, _ index: ModelHeadIndex, _ assembler: inout ModelVersionAssembler,
                        _ pending: inout [String: [Int: ModelHead]]) async throws {
        switch record.partition {
        case ModelHead.Partition.audit:
            switch assembler.add(record) {
            case .evaluation(let e)?: observe?(.evaluation(e))
            case .decision(let d)?:
                logger.info("gate: \(d.version) \(d.promoted ? "promoted" : "held")\(d.forced ? " (forced by an operator)" : "") — \(d.reason)")
                observe?(.decision(d))
            default: break
            }
        case ModelHead.Partition.serving:
            guard let head = index.heads([record]).first, servingKinds.contains(head.kind) else { return }
            // The same name may be a trained version already in use: only the serving copy counts.
            guard head.version != servingVersion.withLock({ $0 }) || head.rollback == true else { return }
            if head.rollback == true { logger.info("rollback to \(head.version) by \(head.decidedBy ?? "an operator"): \(head.reason ?? "no reason given")") }
            _ = try await load([head], index, &assembler)
        case ModelHead.Partition.trained:
            guard let head = index.heads([record]).first else { return }
            observe?(.trainedShard(head))
            guard kinds.contains(.trained), let shard = head.shard, let shards = head.shards else { return }
            pending[head.version, default: [:]][shard] = head
            if pending.count > Self.maxPendingTrained, let oldest = pending.min(by: { ($0.value.values.first?.last ?? 0) < ($1.value.values.first?.last ?? 0) })?.key {
                pending[oldest] = nil
            }
            guard let heads = pending[head.version], heads.count == shards else { return }
            do {
                _ = try await load(heads.keys.sorted().compactMap { heads[$0] }, index, &assembler)
                pending[head.version] = nil
            } catch let error as KafkaError where error.isRetriable {
                throw error  // the heads stay pending: this one comes again
            } catch {
                pending[head.version] = nil
                throw error
            }
        default:
            return
        }
    }

    /// Reads the version `heads` name and accepts or refuses it; true when accepted.
    private func load(_ heads: [ModelHead], _ index: ModelHeadIndex, _ assembler: inout ModelVersionAssembler) async throws -> Bool {
        var count = ModelHeadIndex.ReadCount()
        let outcome = try await index.load(heads, into: &assembler, count: &count)
        readCount.withLock { total in
            total.records += count.records; total.bytes += count.bytes; total.passedOver += count.passedOver
        }
        for (version, reason) in assembler.drainDropped() {
            logger.warning("dropped the waiting parts of model version \(version): \(reason)")
        }
        logger.debug("read \(heads.first?.version ?? "?"): \(count.records) records, \(count.bytes) bytes; \(count.passedOver) records of other versions passed over")
        switch outcome {
        case .complete(let announcement, let file): return accept(announcement, file)
        case .rejected(let version, let reason): refuse(version, reason); return false
        default: return false
        }
    }

    private func markCaughtUp() {
        caughtUp.withLock { $0 = true }
        let r = read
        logger.info(version.map { "found the newest versions through \(topic).heads (read \(r.records) records, \(r.bytes) bytes of \(topic)); using \($0)" }
                    ?? "no model on \(topic) yet; waiting for one (xray model publish)")
    }

    @discardableResult
    private func accept(_ announcement: ModelAnnouncement, _ file: [UInt8]) -> Bool {
        let version = announcement.version
        var announcement = announcement
        announcement.manifest.version = version
        do {
            let model = try ModelCheck.verified(file, name: "model version \(version)")
            try use(announcement, file, model)
            let previous = current.withLock { state in defer { state = version }; return state }
            if announcement.kind != .trained { servingVersion.withLock { $0 = version } }
            metrics.accepted(version, previous: previous)
            remember(version, accepted: true, reason: nil)
            let m = announcement.manifest
            logger.info("using model \(version): \(m.architecture), \(m.labels.count) labels, input \(m.input)")
            return true
        } catch {
            refuse(version, "\(error)")
            return false
        }
    }

    private func remember(_ version: String, accepted: Bool, reason: String?) {
        history.withLock { h in
            h.append((version, accepted, reason))
            if h.count > Self.keptDecisions { h.removeFirst(h.count - Self.keptDecisions) }
        }
    }

    private func refuse(_ version: String, _ reason: String) {
        remember(version, accepted: false, reason: reason)
        metrics.refused()
        logger.error("refused model \(version): \(reason); \(self.version.map { "still using \($0)" } ?? "no model in force")")
    }

    /// True once start-up has read the versions to start with.
    public var hasCaughtUp: Bool { caughtUp.withLock { $0 } }

    /// Waits until start-up has read the versions to start with and a version serves.
    public func ready() async throws {
        var waited = Duration.zero
        while !(hasCaughtUp && version != nil) {
            try await Task.sleep(for: .milliseconds(100))
            waited += .milliseconds(100)
            if waited == .seconds(30) { logger.warning("still waiting for a model on \(topic)") }
        }
    }
}
