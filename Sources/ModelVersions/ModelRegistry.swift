public import Wire

/// The operator's view of the model versions (`xray model list`): every published and
/// promoted version, the newest trained ones, each with its evaluation and gate decision, and
/// which one serves. Built from xray.models.heads alone; no version is read.
public struct ModelRegistry: Sendable, Codable {
    public struct Entry: Sendable, Codable, Equatable {
        public var version: String
        public var kind: ModelAnnouncement.Kind
        public var run: String?
        public var step: Int?
        public var base: String?
        /// When the head was written, and the bytes of the version's records.
        public var writtenAt: String
        public var bytes: Int
        /// The held-out evaluation: mean AUC and AUC per label, on `images` images.
        public var meanAUC: Double?
        public var auc: [String: Double]?
        public var images: Int?
        /// The mean AUC on each site's held-out images, and how many there were.
        public var siteAUC: [String: Double]?
        public var siteImages: [String: Int]?
        /// The newest gate decision on the version (the evaluator's or an operator's).
        public var decision: GateDecision?
        /// Set when an operator put the version back into service: why and who.
        public var rollbackReason: String?
        public var serving: Bool
    }

    /// Published, promoted and rolled-back versions in the order they were first written,
    /// then the newest trained versions, oldest first.
    public var entries: [Entry]
    /// The version scorers serve now.
    public var serving: String?

    public init(_ history: ModelHistory, trained: Int = 10) {
        let decisions = Dictionary(history.decisions.map { ($0.version, $0) }) { _, newer in newer }
        func entry(_ head: ModelHead, bytes: Int? = nil) -> Entry {
            let e = history.evaluations[head.version]
            let auc = e?.metrics.filter { $0.key.hasPrefix("auc.") && $0.key != "auc.mean" }
            return Entry(version: head.version, kind: head.kind, run: head.run, step: head.step, base: head.base, writtenAt: head.writtenAt,
                         bytes: bytes ?? head.bytes, meanAUC: e?.meanAUC,
                         auc: auc.map { Dictionary(uniqueKeysWithValues: $0.map { (String($0.key.dropFirst(4)), $0.value) }) },
                         images: e?.images, siteAUC: e.map(\.siteMeanAUC).flatMap { $0.isEmpty ? nil : $0 },
                         siteImages: e.map { ev in ev.siteMeanAUC.keys.reduce(into: [String: Int]()) { images, site in
                             images[site] = SiteMetrics.figures(ev.metrics, site: site)["images"].map { Int($0) }
                         } }.flatMap { $0.isEmpty ? nil : $0 },
                         decision: decisions[head.version],
                         rollbackReason: head.rollback == true ? "\(head.decidedBy ?? "operator"): \(head.reason ?? "")" : nil,
                         serving: false)
        }
        var rows: [Entry] = []
        var position: [String: Int] = [:]
        for head in history.servingHeads {
            if let at = position[head.version] {
                // A rollback to a version listed already: the version's row says so.
                if head.rollback == true { rows[at].rollbackReason = entry(head).rollbackReason }
                continue
            }
            position[head.version] = rows.count
            rows.append(entry(head))
        }
        for version in history.recentTrained.prefix(trained).reversed() {
            guard let first = version.first else { continue }
            rows.append(entry(first, bytes: version.reduce(0) { $0 + $1.bytes }))
        }
        serving = history.servingHead?.version
        for i in rows.indices where rows[i].version == serving && rows[i].kind != .trained { rows[i].serving = true }
        entries = rows
    }
}
