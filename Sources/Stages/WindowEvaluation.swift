public import Wire

/// A version's figures on the evaluator's held-out window: over all its images, and per site
/// for each site with enough images (`minimumSiteImages`). Pure.
public struct WindowEvaluation: Sendable {
    /// Over every image of the window the version could score.
    public var overall: Evaluation
    /// Per site, over that site's images.
    public var sites: [String: Evaluation]

    /// Splits scored images by site: `sites[i]` is the site of image `i` (nil: none), in the
    /// order of `overall`'s scores.
    public init(overall: Evaluation, sites imageSites: [String?], manifest: ModelManifest, minimumSiteImages: Int) {
        self.overall = overall
        var indices: [String: [Int]] = [:]
        for (i, site) in imageSites.enumerated() where i < overall.scores.count {
            if let site { indices[site, default: []].append(i) }
        }
        sites = [:]
        for (site, members) in indices where members.count >= max(1, minimumSiteImages) {
            sites[site] = Evaluation(manifest: manifest, scores: members.map { overall.scores[$0] }, truth: members.map { overall.truth[$0] })
        }
    }

    public var images: Int { overall.images }
    public var meanAUC: Double? { overall.meanAUC }

    /// The overall figures (`Evaluation.metrics`) and each site's under `site.<site>.`.
    public var metrics: [String: Double] {
        var metrics = overall.metrics
        for (site, evaluation) in sites {
            for (name, value) in evaluation.metrics where name.hasPrefix("auc.") {
                metrics[SiteMetrics.key(site: site, name)] = value
            }
            metrics[SiteMetrics.key(site: site, "images")] = Double(evaluation.images)
        }
        return metrics
    }
}
