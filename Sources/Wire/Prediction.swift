/// One scored image on xray.predictions (JSON; see Topics/xray.predictions.md).
public struct Prediction: Codable, Sendable, Equatable {
    public static let schemaVersion = 1

    public var imageId: String
    public var modelVersion: String
    /// The figures the version was promoted on (its held-out evaluation: `auc.mean`,
    /// `auc.<label>`, ...), from its manifest; nil for a version never evaluated.
    public var modelEvaluation: [String: Double]?
    /// Per-label probabilities, in the model's label order.
    public var probabilities: [LabelProbability]
    public var triage: TriageLevel
    /// Labels at or above their thresholds.
    public var findings: [String]
    public var times: StageTimes
    public var source: String?
    /// The site the image came from (`HeaderName.site`); its thresholds decided the triage.
    public var site: String?
    public var patientId: String?
    /// Ground-truth labels when the image came labelled (for evaluation downstream).
    public var labels: [String]?

    public init(imageId: String, modelVersion: String, probabilities: [LabelProbability], triage: TriageLevel,
                findings: [String], times: StageTimes, source: String? = nil, patientId: String? = nil, labels: [String]? = nil) {
        self.imageId = imageId; self.modelVersion = modelVersion; self.probabilities = probabilities
        self.triage = triage; self.findings = findings; self.times = times
        self.source = source; self.patientId = patientId; self.labels = labels
    }

    public func probability(of label: String) -> Float? {
        probabilities.first { $0.label == label }?.probability
    }
}

/// A label and its probability.
public struct LabelProbability: Codable, Sendable, Equatable {
    public var label: String
    public var probability: Float
    public init(label: String, probability: Float) { self.label = label; self.probability = probability }
}

/// When an image passed each stage, milliseconds since the Unix epoch; absent when unknown.
public struct StageTimes: Codable, Sendable, Equatable {
    public var acquired: Int64?
    /// When the DICOM gateway received the image (absent for images published directly): the
    /// pipeline's start when the acquisition was long before (a study sent again from a PACS).
    public var received: Int64?
    public var decoded: Int64?
    public var preprocessed: Int64?
    public var scored: Int64

    public init(acquired: Int64?, received: Int64? = nil, decoded: Int64?, preprocessed: Int64?, scored: Int64) {
        self.acquired = acquired; self.received = received; self.decoded = decoded; self.preprocessed = preprocessed; self.scored = scored
    }
}

/// An urgent case on xray.alerts (JSON; see Topics/xray.alerts.md): the prediction of an
/// image at `TriageLevel.urgent`, with each urgent finding and its threshold.
public struct Alert: Codable, Sendable, Equatable {
    public static let schemaVersion = 1

    public var imageId: String
    public var modelVersion: String
    /// As in `Prediction`: the figures the version was promoted on.
    public var modelEvaluation: [String: Double]?
    public var triage: TriageLevel
    public var urgentFindings: [Finding]
    public var findings: [String]
    public var times: StageTimes
    public var source: String?
    /// The site the image came from (`HeaderName.site`); its thresholds decided the triage.
    public var site: String?
    public var patientId: String?

    public struct Finding: Codable, Sendable, Equatable {
        public var label: String
        public var probability: Float
        public var threshold: Float
        public init(label: String, probability: Float, threshold: Float) {
            self.label = label; self.probability = probability; self.threshold = threshold
        }
    }

    public init(prediction p: Prediction, policy: TriagePolicy) {
        imageId = p.imageId; modelVersion = p.modelVersion; modelEvaluation = p.modelEvaluation; triage = p.triage; findings = p.findings
        times = p.times; source = p.source; site = p.site; patientId = p.patientId
        urgentFindings = p.probabilities.filter { p.findings.contains($0.label) && policy.urgent.contains($0.label) }
            .map { Finding(label: $0.label, probability: $0.probability, threshold: policy.threshold(for: $0.label, site: p.site)) }
    }
}
