import Engine
import Foundation
public import KafkaIO
public import Logging
import Metrics
import ModelVersions
public import ServiceLifecycle
import Synchronization
public import Wire

/// What the evaluator holds out, how often it evaluates and how strict its gate is.
public struct EvaluatorSettings: Sendable {
    public var topics: TopicCatalog
    public var groupID = "evaluator"
    /// The patient-wise split trainers skip (must be the trainers').
    public var split = PatientSplit()
    /// Held-out images kept, of all sites together: when full, the site with the most images
    /// gives up its oldest, so a small site keeps its images beside a large one.
    public var window = 500
    /// A site's own figures (AUC, gate, thresholds) need at least this many of its images.
    public var minimumSiteImages = 20
    /// Fewer held-out images than this and nothing is evaluated.
    public var minimumImages = 20
    /// At most one evaluation per `interval`; versions published meanwhile are skipped for
    /// the newest.
    public var interval: Duration = .seconds(10)
    public var gate = GatePolicy()
    /// How a promoted version's urgent labels get their thresholds (target sensitivity and the
    /// positives it needs).
    public var operatingPoints = OperatingPointChooser()
    public var batchSize = 16
    /// How long its consumers may see records waiting and receive none before they report a
    /// stall and reconnect (`ConsumerConfiguration.stallAfterMilliseconds`).
    public var stallAfter: Duration = .seconds(30)

    public init(topics: TopicCatalog) { self.topics = topics }
}

/// The newest held-out labelled images, one per image id: at most `capacity` in all (when
/// full, the site with the most images, the images without a site counting as one, gives up
/// its oldest) and at most `maxSites` sites. Pure.
struct HeldOutWindow {
    struct Example { var id: String; var site: String?; var input: [Float]; var positives: [String] }
    let capacity: Int
    static let maxSites = 16
    private(set) var examples: [Example] = []

    init(capacity: Int) { self.capacity = capacity }

    /// Adds `e`, replacing an image of the same id, and makes room as above. False when `e`
    /// is of a site beyond `maxSites` (it is not kept).
    @discardableResult
    mutating func add(_ e: Example) -> Bool {
        examples.removeAll { $0.id == e.id }
        if let site = e.site, !examples.contains(where: { $0.site == site }) {
            guard Set(examples.compactMap(\.site)).count < Self.maxSites else { return false }
        }
        examples.append(e)
        if examples.count > capacity {
            var counts: [String?: Int] = [:]
            for x in examples { counts[x.site, default: 0] += 1 }
            // The largest site; among equals, the one whose oldest image is oldest.
            let largest = counts.values.max() ?? 0
            if let oldest = examples.firstIndex(where: { counts[$0.site] == largest }) { examples.remove(at: oldest) }
        }
        return true
    }
}

/// Scores each new trained version on a rolling window of held-out labelled images from
/// xray.tensors (patients the trainers skip), writes the figures to xray.models.heads as the
/// version's evaluation, and gates triage: a version at least as good as the serving one
/// (`GatePolicy`, on the same images) is republished whole as a promotion, which scorers
/// then serve; every decision is written to xray.models.heads and logged.
public final class Evaluator: Service, @unchecked Sendable {
    public let settings: EvaluatorSettings
    private let kafka: KafkaConfiguration
    private let logger: Logger
    private let window: Mutex<HeldOutWindow>
    private let candidate = Mutex<(announcement: ModelAnnouncement, file: [UInt8])?>(nil)
    private let serving = Mutex<(announcement: ModelAnnouncement, file: [UInt8])?>(nil)
    /// Used only by the evaluation loop.
    private var servingCache: (version: String, ids: Set<String>, evaluation: WindowEvaluation)?
    /// The newest published version: the base the runs start from. Its per-site figures bound
    /// every promotion too, so a run of promotions, each within the margin of the last, cannot
    /// drift a site further than its margin below where the base stood.
    private let reference = Mutex<(announcement: ModelAnnouncement, file: [UInt8])?>(nil)
    private var referenceCache: (version: String, ids: Set<String>, evaluation: WindowEvaluation)?
    /// Versions evaluated or decided already (read back from xray.models.heads at start-up), the
    /// latest 4096.
    private let done = Mutex(RecentSet(capacity: 4096))
    /// Sites beyond the window's limit, warned about once.
    private let refusedSites = Mutex(Set<String>())

    public init(settings: EvaluatorSettings, kafka: KafkaConfiguration, logger: Logger) {
        self.settings = settings
        self.kafka = kafka
        self.logger = logger
        window = Mutex(HeldOutWindow(capacity: settings.window))
    }

    public func run() async throws {
        let follower = ModelFollower(topic: settings.topics.models, consumer: consumer("-models"), logger: logger,
                                     stage: "evaluator", assembling: [.published, .trained, .promoted],
                                     use: { [self] a, file, _ in
                                         switch a.kind {
                                         case .trained: candidate.withLock { $0 = (a, file) }
                                         case .published:
                                             serving.withLock { $0 = (a, file) }
                                             reference.withLock { $0 = (a, file) }
                                         case .promoted: serving.withLock { $0 = (a, file) }
                                         }
                                     },
                                     observe: { [self] event in
                                         if case .evaluation(let e) = event { done.withLock { $0.insert(e.version) } }
                                     })
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: kafka), logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await follower.run() }
            group.addTask { try await self.collectHeldOut() }
            // A graceful shutdown cancels the loop wherever it waits: that is a normal stop.
            do {
                try await cancelWhenGracefulShutdown { try await self.evaluateNewVersions(follower, producer) }
            } catch is CancellationError {}
            group.cancelAll()
        }
        await producer.close()
    }

    /// Evaluates the newest trained version, at most once per interval, while not cancelled.
    private func evaluateNewVersions(_ follower: ModelFollower, _ producer: KafkaProducer) async throws {
        while !follower.hasCaughtUp { try await Task.sleep(for: .milliseconds(100)) }
        var last = ContinuousClock.now - settings.interval
        while !Task.isCancelled {
            try await Task.sleep(for: .milliseconds(250))
            guard ContinuousClock.now - last >= settings.interval,
                  let next = candidate.withLock({ $0 }), !done.withLock({ $0.contains(next.announcement.version) })
            else { continue }
            let examples = window.withLock { $0.examples }
            guard examples.count >= settings.minimumImages else { continue }
            last = .now
            try await evaluate(next, on: examples, producer)
        }
    }

    private func consumer(_ suffix: String) -> ConsumerConfiguration {
        var consumer = ConsumerConfiguration(kafka: kafka, groupID: settings.groupID + suffix)
        consumer.stallAfterMilliseconds = Int(settings.stallAfter / .milliseconds(1))
        return consumer
    }

    /// Keeps the window filled from xray.tensors (read from the beginning, outside any group).
    private func collectHeldOut() async throws {
        let consumer = try KafkaConsumer(configuration: consumer("-tensors"),
                                         subscription: .wholeTopic(settings.topics.tensors, fromBeginning: true), logger: logger)
        while !Task.isCancelled {
            guard let record = await consumer.next(timeout: .seconds(1)) else { continue }
            guard let labels = record.headers.text(HeaderName.labels), let id = try? record.imageID(),
                  settings.split.isValidation(patient: record.headers.text(HeaderName.patientID) ?? id),
                  let tensor = try? Tensor(decoding: record.value) else { continue }
            let site = record.headers.text(HeaderName.site).flatMap(ImageMetadata.validSite)
            let kept = window.withLock { $0.add(.init(id: id, site: site, input: tensor.values, positives: ImageMetadata.parseLabels(labels))) }
            if !kept, let site, refusedSites.withLock({ $0.insert(site).inserted }) {
                logger.warning("held-out images of site \(site) are not kept: the window holds \(HeldOutWindow.maxSites) sites already")
            }
        }
        await consumer.close()
    }

    /// Scores the candidate and the serving version on the same images, writes the
    /// candidate's evaluation (when it could be scored) and a decision. The candidate is held,
    /// with the reason, when it or the serving version cannot be scored on these images or an
    /// AUC is not finite; it is promoted only when `GatePolicy` says so on both sets of figures.
    private func evaluate(_ next: (announcement: ModelAnnouncement, file: [UInt8]), on examples: [HeldOutWindow.Example],
                          _ producer: KafkaProducer) async throws {
        let version = next.announcement.version
        let start = ContinuousClock.now
        let topic = settings.topics.models
        let current = serving.withLock { $0 }
        let candidate = score(next.file, version: version, examples)
        var promote = false, reason: String, figures: WindowEvaluation?
        switch candidate {
        case .failure(let problem):
            reason = "the candidate cannot be scored on the held-out window: \(problem)"
        case .success(let evaluation):
            figures = evaluation
            let metrics = evaluation.metrics.filter(\.value.isFinite)
            let record = VersionEvaluation(version: version, images: evaluation.images, metrics: metrics, evaluatedAt: isoNow())
            try await producer.sendInOrder([try ModelVersionCodec.record(record, headsTopic: settings.topics.modelHeads)], logger: logger)
            for (name, value) in metrics where name.hasPrefix("auc.") {
                Gauge(label: "xray_evaluation_auc", dimensions: [("label", String(name.dropFirst(4)))]).record(value)
            }
            for (site, auc) in SiteMetrics.meanAUC(metrics) {
                Gauge(label: "xray_evaluation_site_auc", dimensions: [("site", site)]).record(auc)
            }
            if let current {
                switch cachedEvaluation(current, examples, cache: &servingCache) {
                case .failure(let problem):
                    reason = "the serving version \(current.announcement.version) cannot be scored on the same window: \(problem)"
                case .success(let baseline) where baseline.images != evaluation.images:
                    reason = "the serving version scored \(baseline.images) of the window's images, the candidate \(evaluation.images): not the same images"
                case .success(let baseline):
                    (promote, reason) = settings.gate.decide(candidate: evaluation.metrics, serving: baseline.metrics,
                                                             labels: next.announcement.manifest.labels)
                    if promote, let base = reference.withLock({ $0 }), base.announcement.version != current.announcement.version,
                       case .success(let figures) = cachedEvaluation(base, examples, cache: &referenceCache),
                       let dropped = settings.gate.siteDrop(candidate: evaluation.metrics, from: figures.metrics,
                                                            of: "the published base \(base.announcement.version)") {
                        (promote, reason) = (false, dropped)
                    }
                    let perSite = evaluation.sites.keys.sorted().map { site in
                        "\(site) \(Self.format(evaluation.sites[site]?.meanAUC)) (serving \(Self.format(baseline.sites[site]?.meanAUC)))"
                    }
                    logger.info("\(version): mean AUC \(Self.format(evaluation.meanAUC)) on \(evaluation.images) held-out images (serving \(current.announcement.version): \(Self.format(baseline.meanAUC)))\(perSite.isEmpty ? "" : "; per site " + perSite.joined(separator: ", ")), \(String(format: "%.1f s", (ContinuousClock.now - start) / .seconds(1)))")
                }
            } else {
                reason = "no version serves yet to compare with"
            }
        }
        done.withLock { $0.insert(version) }
        if figures == nil || !promote { logger.info("\(version) held: \(reason)") }
        var decision = GateDecision(version: version, promoted: promote, forced: false, serving: current?.announcement.version,
                                    reason: reason, decidedBy: "evaluator", decidedAt: isoNow())
        if promote, let figures {
            let manifest = next.announcement.manifest
            var (points, thresholds, metrics) = operatingPoints(manifest, figures.overall, current: { manifest.triagePolicy.threshold(for: $0) })
            decision.operatingPoints = points
            if !points.isEmpty { decision.reason += "; thresholds " + Self.describe(points) }
            var sitePoints: [String: [String: OperatingPoint]] = [:], siteThresholds: [String: [String: Float]] = [:]
            for (site, evaluation) in figures.sites {
                let (p, t, m) = operatingPoints(manifest, evaluation, current: { manifest.triagePolicy.threshold(for: $0, site: site) })
                sitePoints[site] = p
                if !t.isEmpty { siteThresholds[site] = t }
                for (name, value) in m { metrics[SiteMetrics.key(site: site, name)] = value }
            }
            if !sitePoints.isEmpty {
                decision.siteOperatingPoints = sitePoints
                decision.reason += "; per site " + sitePoints.keys.sorted().map { "\($0): \(Self.describe(sitePoints[$0] ?? [:]))" }.joined(separator: "; ")
            }
            try await producer.sendVersion(try ModelVersionCodec.promotionRecords(next, metrics: figures.metrics.merging(metrics) { $1 },
                                                                                  thresholds: thresholds, siteThresholds: siteThresholds, topic: topic),
                                           headsTopic: settings.topics.modelHeads, logger: logger)
        }
        try await producer.sendInOrder([try ModelVersionCodec.record(decision, headsTopic: settings.topics.modelHeads)], logger: logger)
        Counter(label: "xray_gate_decisions_total", dimensions: [("outcome", promote ? "promoted" : "held")]).increment()
        // The decision is logged as it comes back from xray.models.heads (as every follower logs it).
    }

    private static func format(_ auc: Double?) -> String { auc.map { String(format: "%.4f", $0) } ?? "-" }

    private static func describe(_ points: [String: OperatingPoint]) -> String {
        points.sorted { $0.key < $1.key }.map { label, p in
            p.chosen ? "\(label) \(String(format: "%.3f", p.threshold)) (sensitivity \(format(p.sensitivity)), specificity \(format(p.specificity)))"
                : "\(label) kept: \(p.reason ?? "")"
        }.joined(separator: ", ")
    }

    /// A serving or reference version's figures on these images: scored once per version and
    /// window content (a replayed dataset leaves the window's images unchanged), not per
    /// candidate.
    private func cachedEvaluation(_ version: (announcement: ModelAnnouncement, file: [UInt8]), _ examples: [HeldOutWindow.Example],
                                  cache: inout (version: String, ids: Set<String>, evaluation: WindowEvaluation)?)
        -> Result<WindowEvaluation, ScoringFailure> {
        let ids = Set(examples.map(\.id)), name = version.announcement.version
        if let cached = cache, cached.version == name, cached.ids == ids { return .success(cached.evaluation) }
        let evaluation = score(version.file, version: name, examples)
        cache = (try? evaluation.get()).map { (name, ids, $0) }
        return evaluation
    }

    /// The operating points of a promoted version's urgent labels on the evaluation's images:
    /// the thresholds chosen (for the manifest's triage policy) and the figures they gave
    /// (`threshold.<label>`, `sensitivity.<label>`, `specificity.<label>`, for its metrics).
    private func operatingPoints(_ manifest: ModelManifest, _ figures: Evaluation, current: (String) -> Float)
        -> ([String: OperatingPoint], [String: Float], [String: Double]) {
        let policy = manifest.triagePolicy
        var points: [String: OperatingPoint] = [:], thresholds: [String: Float] = [:], metrics: [String: Double] = [:]
        for (index, label) in manifest.labels.enumerated() where policy.urgent.contains(label) {
            let (positives, negatives) = figures.scores(of: label, at: index)
            let point = settings.operatingPoints.choose(positives: positives, negatives: negatives, current: current(label))
            points[label] = point
            if point.chosen { thresholds[label] = point.threshold }
            metrics["threshold.\(label)"] = Double(point.threshold)
            if let s = point.sensitivity { metrics["sensitivity.\(label)"] = s }
            if let s = point.specificity { metrics["specificity.\(label)"] = s }
        }
        return (points, thresholds, metrics)
    }

    /// Why a version could not be scored.
    struct ScoringFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// The version's figures on the examples of its input shape; fails if the file does not
    /// load, no example fits, or a score is not finite.
    private func score(_ file: [UInt8], version: String, _ examples: [HeldOutWindow.Example]) -> Result<WindowEvaluation, ScoringFailure> {
        let model: ModelFile
        do { model = try ModelFile.decode(file, name: "model version \(version)") } catch {
            return .failure(ScoringFailure(description: "\(error)"))
        }
        let s = model.manifest.input
        let usable = examples.filter { $0.input.count == s.reduce(1, *) }
        guard !usable.isEmpty else { return .failure(ScoringFailure(description: "no held-out image has its input shape \(s)")) }
        var scores: [[Float]] = []
        for start in stride(from: 0, to: usable.count, by: settings.batchSize) {
            let batch = usable[start..<min(usable.count, start + settings.batchSize)]
            scores += model.network.probabilities(batch: batch.flatMap(\.input), shape: Shape(n: batch.count, c: s[0], h: s[1], w: s[2]))
        }
        let nonFinite = scores.reduce(0) { $0 + $1.filter { !$0.isFinite }.count }
        guard nonFinite == 0 else {
            return .failure(ScoringFailure(description: "\(nonFinite) of its scores are NaN or infinite"))
        }
        var manifest = model.manifest
        manifest.version = version
        let overall = Evaluation(manifest: manifest, scores: scores, truth: usable.map(\.positives))
        return .success(WindowEvaluation(overall: overall, sites: usable.map(\.site), manifest: manifest,
                                         minimumSiteImages: settings.minimumSiteImages))
    }
}
