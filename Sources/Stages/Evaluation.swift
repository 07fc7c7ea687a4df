public import Engine
import Foundation
public import ModelVersions
public import Wire

/// Scores a labelled dataset with a model, offline, and measures it per label: AUC-ROC, and
/// accuracy, sensitivity and specificity at the manifest's thresholds.
public struct Evaluation: Sendable {
    public struct LabelResult: Sendable {
        public var label: String
        public var positives: Int, negatives: Int
        /// Nil when the data has only one class for this label.
        public var roc: ROC?
        public var threshold: Float
        public var accuracy: Double, sensitivity: Double?, specificity: Double?
    }

    public var model: String
    public var images: Int
    /// Inputs that could not be read, with the reason.
    public var failures: [(path: String, error: String)]
    public var labels: [LabelResult]
    /// The per-label probabilities scored (in the manifest's label order) and each image's
    /// positive labels: what thresholds are chosen on.
    public private(set) var scores: [[Float]] = []
    public private(set) var truth: [[String]] = []

    /// Mean AUC over the labels that have both classes.
    public var meanAUC: Double? {
        let aucs = labels.compactMap { $0.roc?.auc }
        return aucs.isEmpty ? nil : aucs.reduce(0, +) / Double(aucs.count)
    }

    /// Scores `files` (each labelled: `metadata.labels` not nil) in batches.
    public init(model: ModelFile, files: [ImageFile], batchSize: Int = 16) {
        let predictor = OfflinePredictor(model: model, batchSize: batchSize)
        var scores: [[Float]] = [], truth: [[String]] = [], failures: [(String, String)] = []
        var next = 0  // predictions come back in input order, failures included
        predictor.predict(files.map { URL(fileURLWithPath: $0.path) }) { prediction in
            defer { next += 1 }
            guard let p = prediction.probabilities else {
                failures.append((files[next].path, prediction.error ?? "unreadable"))
                return
            }
            scores.append(p)
            truth.append(files[next].metadata.labels ?? [])
        }
        self.init(manifest: model.manifest, scores: scores, truth: truth)
        self.failures = failures
    }

    /// Measures per-label probabilities (`scores`, in the manifest's label order) against the
    /// positive labels of each image (`truth`).
    public init(manifest: ModelManifest, scores: [[Float]], truth: [[String]]) {
        precondition(scores.count == truth.count)
        let policy = manifest.triagePolicy
        model = manifest.version ?? manifest.origin
        images = scores.count
        failures = []
        self.scores = scores
        self.truth = truth
        labels = manifest.labels.enumerated().map { index, label in
            let s = scores.map { $0[index] }, t = truth.map { $0.contains(label) }
            let threshold = policy.threshold(for: label)
            let predicted = s.map { $0 >= threshold }
            let tp = zip(predicted, t).filter { $0 && $1 }.count, tn = zip(predicted, t).filter { !$0 && !$1 }.count
            let positives = t.filter { $0 }.count, negatives = t.count - positives
            return LabelResult(label: label, positives: positives, negatives: negatives, roc: ROC(scores: s, truth: t),
                               threshold: threshold, accuracy: t.isEmpty ? 0 : Double(tp + tn) / Double(t.count),
                               sensitivity: positives > 0 ? Double(tp) / Double(positives) : nil,
                               specificity: negatives > 0 ? Double(tn) / Double(negatives) : nil)
        }
    }

    /// The scores of `label` (at `index` in the label order) on its positive and negative images.
    public func scores(of label: String, at index: Int) -> (positives: [Float], negatives: [Float]) {
        var positives: [Float] = [], negatives: [Float] = []
        for (s, t) in zip(scores, truth) where index < s.count {
            if t.contains(label) { positives.append(s[index]) } else { negatives.append(s[index]) }
        }
        return (positives, negatives)
    }

    /// The figures by name, as manifests and evaluation records carry them: `auc.<label>`,
    /// `accuracy.<label>`, `auc.mean`, `validation.images`.
    public var metrics: [String: Double] {
        var metrics: [String: Double] = ["validation.images": Double(images)]
        for r in labels {
            if let auc = r.roc?.auc { metrics["auc.\(r.label)"] = auc }
            metrics["accuracy.\(r.label)"] = r.accuracy
        }
        if let meanAUC { metrics["auc.mean"] = meanAUC }
        return metrics
    }

    /// A plain-text table, one row per label, and the mean AUC.
    public var table: String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "  -  " }
        var lines = ["label                 pos    neg    AUC    thr   acc    sens   spec"]
        for r in labels {
            lines.append(r.label.padding(toLength: 20, withPad: " ", startingAt: 0)
                + String(format: " %5d  %5d  ", r.positives, r.negatives) + f(r.roc?.auc)
                + String(format: "  %.2f  ", r.threshold) + f(r.accuracy) + "  " + f(r.sensitivity) + "  " + f(r.specificity))
        }
        lines.append("mean AUC over labels with both classes: \(f(meanAUC)); \(images) images scored, \(failures.count) unreadable")
        return lines.joined(separator: "\n")
    }
}
