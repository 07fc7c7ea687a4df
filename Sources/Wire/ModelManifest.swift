/// What a model file (and, from the triage issue on, a model version on xray.models) says
/// about its network: the architecture, the labels of its outputs in order, the input it
/// takes and how an X-ray becomes that input. Stored as JSON in the safetensors metadata
/// under `xray.manifest`.
public struct ModelManifest: Codable, Sendable, Equatable {
    public static let schemaVersion = 1
    public static let metadataKey = "xray.manifest"

    public var schema: Int
    /// An engine architecture name: `small-cnn`, `resnet18`, `resnet50`, `densenet121`.
    public var architecture: String
    /// Output labels, in the order of the network's outputs.
    public var labels: [String]
    /// Input shape (C, H, W).
    public var input: [Int]
    /// How a decoded X-ray becomes the input (its output shape must equal `input`).
    public var preprocess: PreprocessSpec
    /// Where the weights came from: `init seed 7`, `import chexnet.onnx`, ...
    public var origin: String
    /// ISO 8601 creation time.
    public var createdAt: String
    /// The version id, given when the model is published to xray.models.
    public var version: String?
    /// Operating thresholds and urgent labels; nil means `TriagePolicy.standard(labels:)`.
    public var triage: TriagePolicy?
    /// Evaluation figures (per-label AUC, mean AUC, ...), by name.
    public var metrics: [String: Double]?

    /// The triage policy in force.
    public var triagePolicy: TriagePolicy { triage ?? .standard(labels: labels) }

    public init(architecture: String, labels: [String], preprocess: PreprocessSpec, origin: String, createdAt: String) {
        schema = Self.schemaVersion
        self.architecture = architecture
        self.labels = labels
        input = preprocess.outputShape
        self.preprocess = preprocess
        self.origin = origin
        self.createdAt = createdAt
    }

    /// The most output labels a model may have.
    public static let maxLabels = 1000
    /// The longest label name, in bytes.
    public static let maxLabelBytes = 128

    /// Nil when consistent; otherwise what is wrong.
    public var problem: String? {
        if schema != Self.schemaVersion { return "manifest schema \(schema) is not \(Self.schemaVersion)" }
        if labels.isEmpty { return "no labels" }
        if labels.count > Self.maxLabels { return "\(labels.count) labels; at most \(Self.maxLabels)" }
        if Set(labels).count != labels.count { return "duplicate labels" }
        // Labels travel comma-separated in the xray.labels header.
        if let bad = labels.first(where: { $0.isEmpty || $0.utf8.count > Self.maxLabelBytes || $0.contains(",") }) {
            return "label \"\(bad.prefix(40))\" must be 1-\(Self.maxLabelBytes) bytes without commas"
        }
        if input.count != 3 || input.contains(where: { $0 < 1 }) { return "input must be (C, H, W), got \(input)" }
        if let p = preprocess.problem { return "preprocessing: \(p)" }
        if preprocess.outputShape != input { return "preprocessing makes \(preprocess.outputShape), the input is \(input)" }
        if let p = triage?.problem(labels: labels) { return p }
        if let bad = metrics?.first(where: { !$0.value.isFinite }) { return "metric \(bad.key) is not a finite number" }
        return nil
    }
}
