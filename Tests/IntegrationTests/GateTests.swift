import Engine
import Foundation
import KafkaIO
import Logging
import ModelVersions
import Stages
import Testing
import Wire

/// The gate and the model followers against bad versions, on a real broker: a worse version
/// is held, a version with NaN weights is refused by content, and triage keeps its version.
@Suite("The gate on a real broker", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct GateTests {
    typealias S = StreamingTrainingTests

    /// A trained version of run v0-ft at `step` with `model`'s weights, written shard by shard
    /// as aggregators write it.
    static func publishTrained(_ model: ModelFile, step: Int, topics: TopicCatalog, _ producer: KafkaProducer) async throws {
        let flat = Array(model.network.store.flatValues)
        let layout = ShardLayout(parameterCount: flat.count, shards: TopicCatalog.gradients.partitions)
        let index = ModelHeadIndex(modelsTopic: topics.models, configuration: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)gate-heads"),
                                   logger: TestBroker.logger)
        // Read again for up to 60 s: once, during the full suite, a read right after v0 was
        // published found no head (the heads partition read as ending before it).
        var found = try await index.newestHead(named: "v0")
        let deadline = ContinuousClock.now + .seconds(60)
        while found == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .seconds(1))
            found = try await index.newestHead(named: "v0")
        }
        let base = try #require(found, "v0 has no head")
        for shard in 0..<layout.shards {
            let range = layout.range(shard)
            let announcement = ShardAnnouncement(version: ShardAggregator.versionName(run: "v0-ft", step: step), run: "v0-ft", step: step,
                                                 base: "v0", shard: shard, shards: layout.shards, start: range.lowerBound,
                                                 count: range.count, chunks: 0, crc32: "", manifest: model.manifest, publishedAt: "now")
            try await producer.sendVersion(try ModelVersionCodec.shardRecords(values: Array(flat[range]),
                                                                              state: shard == 0 ? model.network.floatState : nil,
                                                                              announcement: announcement, topic: topics.models),
                                           headsTopic: topics.modelHeads, base: base, logger: TestBroker.logger)
        }
    }

    /// A copy of `model` whose head gives 1 − p where `model` gives p (AUC becomes 1 − AUC).
    static func flipped(_ model: ModelFile) throws -> ModelFile {
        let copy = try ModelFile.decode(try model.encoded(), name: "copy")
        for p in copy.network.parameters where p.name.hasPrefix("classifier.") {
            for i in 0..<p.count { p.value[i] = -p.value[i] }
        }
        return copy
    }

    /// Runs an evaluator with `settings` and a scorer's model follower (into the slot returned)
    /// until the tasks are cancelled.
    static func startEvaluatorAndScorerFollower(_ settings: EvaluatorSettings, topics: TopicCatalog)
        -> (slot: ModelSlot, follower: ModelFollower, services: [Task<Void, any Error>]) {
        let evaluator = Evaluator(settings: settings, kafka: TestBroker.kafka, logger: TestBroker.logger)
        let slot = ModelSlot()
        let follower = ModelFollower.serving(into: slot, topic: topics.models,
                                             consumer: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)scorer-models"),
                                             logger: TestBroker.logger)
        return (slot, follower, [Task { try await evaluator.run() }, Task { try await follower.run() }])
    }

    /// Waits until xray.models.heads holds a decision on `version`, and returns it.
    static func decision(on version: String, topics: TopicCatalog, timeout: Duration = .seconds(120)) async throws -> GateDecision? {
        let isDecision: @Sendable (KafkaRecord) -> Bool = {
            $0.headers.text(ModelVersionRecord.Header.part) == ModelVersionRecord.Part.decision
                && $0.headers.text(ModelVersionRecord.Header.version) == version
        }
        let records = try await TestBroker.collect(topics.modelHeads, timeout: timeout) { $0.contains(where: isDecision) }
        return records.first(where: isDecision).flatMap { try? JSONDecoder().decode(GateDecision.self, from: Data($0.value)) }
    }

    @Test("a version made worse is held with the reason; a version with NaN weights is refused and the serving version stays")
    func worseHeldAndNaNRefused() async throws {
        let topics = try await TestBroker.freshTopics("gate")
        var v0 = try S.model()
        let examples = try S.examples(80, model: v0)
        let split = PatientSplit(validationFraction: 0.5)
        let heldOut = examples.filter { split.isValidation(patient: $0.patient ?? $0.id) }
        func auc(_ m: ModelFile) -> Double {
            let scores = m.network.probabilities(batch: heldOut.flatMap(\.x), shape: Shape(n: heldOut.count, c: 3, h: 32, w: 32))
            return Evaluation(manifest: m.manifest, scores: scores, truth: heldOut.map(\.labels)).meanAUC ?? 0.5
        }
        // v0 oriented so that it beats chance on the held-out images; the candidate is its mirror.
        if auc(v0) < 0.5 { v0 = try Self.flipped(v0) }
        let worse = try Self.flipped(v0)
        print(String(format: "held-out AUC on %d images: serving v0 %.3f, candidate %.3f", heldOut.count, auc(v0), auc(worse)))
        #expect(heldOut.count >= 20 && auc(v0) > 0.5 && auc(worse) < auc(v0))

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        try await S.publish(v0, version: "v0", topics: topics, producer)
        try await S.publish(examples, partition: 0, topics: topics, producer)

        var settings = EvaluatorSettings(topics: topics)
        settings.groupID = "\(topics.prefix)evaluator"
        settings.split = split
        settings.minimumImages = 10
        settings.interval = .zero
        let (slot, scorerFollower, services) = Self.startEvaluatorAndScorerFollower(settings, topics: topics)
        defer { services.forEach { $0.cancel() } }

        // A worse candidate: evaluated beside v0 on the same window, and held.
        try await Self.publishTrained(worse, step: 1, topics: topics, producer)
        let held = try #require(try await Self.decision(on: "v0-ft-000001", topics: topics))
        print("gate on the worse candidate: \(held.promoted ? "promoted" : "held") — \(held.reason)")
        #expect(!held.promoted && held.reason.contains("below the serving version's") && held.serving == "v0")

        // NaN weights: a published version (scorers refuse it) and a trained one (the evaluator
        // refuses it: no evaluation, no decision).
        let poisoned = try ModelFile.decode(try v0.encoded(), name: "copy")
        poisoned.network.parameters[0].value[0] = .nan
        try await S.publish(poisoned, version: "v-nan", topics: topics, producer)
        try await Self.publishTrained(poisoned, step: 2, topics: topics, producer)
        // Then a candidate as good as v0, to show the evaluator went on past the NaN one.
        try await Self.publishTrained(v0, step: 3, topics: topics, producer)
        await producer.close()
        let promoted = try #require(try await Self.decision(on: "v0-ft-000003", topics: topics))
        #expect(promoted.promoted, "\(promoted.reason)")

        let history = try await S.history(topics)
        #expect(history.evaluations["v0-ft-000002"] == nil && !history.decisions.contains { $0.version == "v0-ft-000002" })
        #expect(history.evaluations["v0-ft-000001"] != nil)
        let refused = scorerFollower.decisions.first { $0.version == "v-nan" }
        print("scorer's follower on v-nan: \(refused.map { $0.accepted ? "accepted" : "refused: \($0.reason ?? "")" } ?? "not seen")")
        #expect(refused?.accepted == false && refused?.reason?.contains("NaN") == true)
        #expect(slot.current.map { $0.version == "v0" || $0.version == "v0-ft-000003" } == true,
                "triage serves v0 or the promoted copy of it, never v-nan (serving \(slot.current?.version ?? "none"))")
    }

    @Test("a version that gains at one site and loses beyond the margin at the other is held, naming the site; an equal one is promoted with each site's own thresholds")
    func perSiteGate() async throws {
        let topics = try await TestBroker.freshTopics("site-gate")
        let v0 = try S.model()
        let split = PatientSplit(validationFraction: 0.5)
        let heldOut = try S.examples(160, model: v0).filter { split.isValidation(patient: $0.patient ?? $0.id) }
        let p = v0.network.probabilities(batch: heldOut.flatMap(\.x), shape: Shape(n: heldOut.count, c: 3, h: 32, w: 32)).map { $0[0] }
        // Two sites whose truths disagree: at north the images v0 scores high are the positive
        // ones, at south (twice as many images) the low ones. v0 serves north perfectly; its
        // mirror (1 − p) serves south perfectly and north not at all.
        let northCount = heldOut.count / 3
        func relabelled(_ range: Range<Int>, site: String, positiveIfHigh: Bool) -> [S.Example] {
            let median = range.map { p[$0] }.sorted()[range.count / 2]
            return range.map { i in
                var e = heldOut[i]
                e.site = site
                e.labels = (p[i] >= median) == positiveIfHigh ? ["Pneumonia"] : []
                return e
            }
        }
        let examples = relabelled(0..<northCount, site: "north", positiveIfHigh: true)
            + relabelled(northCount..<heldOut.count, site: "south", positiveIfHigh: false)
        print("per-site gate: \(northCount) held-out images at north, \(heldOut.count - northCount) at south")
        #expect(northCount >= 20)

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        try await S.publish(v0, version: "v0", topics: topics, producer)
        try await S.publish(examples, partition: 0, topics: topics, producer)
        var settings = EvaluatorSettings(topics: topics)
        settings.groupID = "\(topics.prefix)evaluator"
        settings.split = split
        settings.minimumImages = examples.count  // evaluate only once every image is in the window
        settings.minimumSiteImages = 10
        settings.interval = .zero
        // The overall rules are out of the way: only the per-site rule can hold a version here.
        settings.gate = GatePolicy(meanMargin: 1, labelMargin: 1, siteMargin: 0.05)
        settings.operatingPoints = OperatingPointChooser(sensitivity: 0.9, minimumPositives: 5)
        let (slot, _, services) = Self.startEvaluatorAndScorerFollower(settings, topics: topics)
        defer { services.forEach { $0.cancel() } }

        try await Self.publishTrained(try Self.flipped(v0), step: 1, topics: topics, producer)
        let held = try #require(try await Self.decision(on: "v0-ft-000001", topics: topics))
        print("gate on the mirror: \(held.promoted ? "promoted" : "held") — \(held.reason)")
        #expect(!held.promoted && held.reason.contains("site north mean AUC"), "\(held.reason)")
        let history = try await S.history(topics)
        let figures = history.evaluations["v0-ft-000001"]?.siteMeanAUC ?? [:]
        print("the mirror's evaluation per site: \(figures)")
        #expect(figures["north"].map { $0 < 0.05 } == true && figures["south"].map { $0 > 0.95 } == true)

        try await Self.publishTrained(v0, step: 2, topics: topics, producer)
        await producer.close()
        let promoted = try #require(try await Self.decision(on: "v0-ft-000002", topics: topics))
        print("gate on a copy of v0: \(promoted.promoted ? "promoted" : "held") — \(promoted.reason)")
        #expect(promoted.promoted)
        let points = promoted.siteOperatingPoints ?? [:]
        #expect(Set(points.keys) == ["north", "south"] && points.values.allSatisfy { $0["Pneumonia"]?.chosen == true })
        // The sites' truths run opposite ways, so their thresholds differ: north's is above its
        // median score, south's at or below its lowest positive.
        let deadline = ContinuousClock.now + .seconds(60)
        while slot.current?.version != "v0-ft-000002", ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let served = try #require(slot.current, "the promoted version did not reach the scorer's follower")
        let north = served.policy.threshold(for: "Pneumonia", site: "north"), south = served.policy.threshold(for: "Pneumonia", site: "south")
        print("thresholds served: north \(north), south \(south), no site \(served.policy.threshold(for: "Pneumonia"))")
        #expect(served.version == "v0-ft-000002" && north != south)
        #expect(north == points["north"]?["Pneumonia"]?.threshold && south == points["south"]?["Pneumonia"]?.threshold)
    }
}
