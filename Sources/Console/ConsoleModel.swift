import Foundation
public import KafkaIO
public import ModelVersions
public import Wire

/// Everything the console shows, built from what it reads: records of xray.predictions,
/// xray.alerts and xray.deadletter (`ingest`), looks at the cluster's offsets and groups
/// (`flow`), the model registry from xray.models.heads (`registry`, `decisions`) and the
/// training figures scraped from the aggregators' `/metrics` (`training`). Pure: no I/O.
public struct ConsoleModel: Sendable {
    /// A case on the worklist: the alert, and the ground truth when the image carried labels.
    public struct WorkItem: Sendable {
        public var alert: Alert
        public var truth: [String]?
    }

    public struct DeadLetterRow: Sendable {
        public var at: Int64
        public var stage: String, reasonCode: String, reason: String, key: String
    }

    /// A gate decision with the held-out figure it was taken on.
    public struct TimelinePoint: Sendable, Equatable {
        public var version: String
        public var decidedAt: String
        public var meanAUC: Double?
        public var promoted: Bool
        public var reason: String
    }

    public struct TrainingPoint: Sendable, Equatable {
        public var at: Double
        public var loss: Double?
        public var learningRate: Double?
    }

    public let topics: TopicCatalog
    public var flow = FlowTracker()
    public var latency = LatencyWindow()
    public var worklistLimit = 50
    public private(set) var worklist: [WorkItem] = []
    public private(set) var predictions = 0
    public private(set) var triageCounts: [TriageLevel: Int] = [:]
    /// Dead letters by stage, then by reason code.
    public private(set) var deadLetters: [String: [String: Int]] = [:]
    public private(set) var recentDeadLetters: [DeadLetterRow] = []
    public var registry: ModelRegistry?
    public var timeline: [TimelinePoint] = []
    public private(set) var training: [TrainingPoint] = []
    /// Problems reading a source (for example the broker being away), by source, shown on the page.
    public var problems: [String: String] = [:]
    /// Ground truth of recent predictions by image id, for the worklist.
    private var truth: [String: [String]] = [:]
    private var truthOrder: [String] = []
    private let decoder = JSONDecoder()

    public init(topics: TopicCatalog) { self.topics = topics }

    /// Takes one record of xray.predictions, xray.alerts or xray.deadletter; others and
    /// unreadable ones are passed over (the console never stops on a record).
    public mutating func ingest(_ record: KafkaRecord) {
        switch record.topic {
        case topics.predictions:
            guard let p = try? decoder.decode(Prediction.self, from: Data(record.value)) else { return }
            predictions += 1
            triageCounts[p.triage, default: 0] += 1
            latency.add(p.times)
            if let labels = p.labels {
                truth[p.imageId] = labels
                truthOrder.append(p.imageId)
                if truthOrder.count > 5_000 { truth[truthOrder.removeFirst()] = nil }
            }
            for i in worklist.indices where worklist[i].alert.imageId == p.imageId && worklist[i].truth == nil {
                worklist[i].truth = p.labels
            }
        case topics.alerts:
            guard let a = try? decoder.decode(Alert.self, from: Data(record.value)) else { return }
            worklist.append(WorkItem(alert: a, truth: truth[a.imageId]))
            worklist.sort { $0.alert.times.scored > $1.alert.times.scored }
            if worklist.count > worklistLimit { worklist.removeLast(worklist.count - worklistLimit) }
        case topics.deadletter:
            let h = record.headers
            let stage = h.text(HeaderName.DeadLetter.stage) ?? "unknown"
            let code = h.text(HeaderName.DeadLetter.reason) ?? "unknown"
            deadLetters[stage, default: [:]][code, default: 0] += 1
            recentDeadLetters.insert(DeadLetterRow(at: h.text(HeaderName.DeadLetter.at).flatMap { Int64($0) } ?? record.timestampMilliseconds ?? 0,
                                                   stage: stage, reasonCode: code, reason: h.text(HeaderName.DeadLetter.error) ?? "",
                                                   key: record.keyText ?? ""), at: 0)
            if recentDeadLetters.count > 20 { recentDeadLetters.removeLast() }
        default:
            return
        }
    }

    /// Takes the registry and the gate's record from xray.models.heads.
    public mutating func update(history: ModelHistory) {
        registry = ModelRegistry(history)
        timeline = history.decisions.map { d in
            TimelinePoint(version: d.version, decidedAt: d.decidedAt, meanAUC: history.evaluations[d.version]?.meanAUC,
                          promoted: d.promoted, reason: d.reason)
        }
    }

    /// Takes the training loss and learning rate read from the aggregators at `at` seconds.
    public mutating func addTraining(at: Double, loss: Double?, learningRate: Double?, keepSeconds: Double = 3_600) {
        guard loss != nil || learningRate != nil else { return }
        if let last = training.last, last.loss == loss, last.learningRate == learningRate { return }  // no new step
        training.append(TrainingPoint(at: at, loss: loss, learningRate: learningRate))
        training.removeAll { at - $0.at > keepSeconds }
    }
}
