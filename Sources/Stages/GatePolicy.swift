import Wire

/// The gate before triage: a candidate version may replace the serving one only if, on the
/// same held-out images, its mean AUC is no lower than the serving version's (less
/// `meanMargin`), no label's AUC drops by more than `labelMargin`, and no site's mean AUC drops
/// by more than that site's margin (`siteMargins`, else `siteMargin`): a model must not be
/// bought at one hospital's expense. Pure.
public struct GatePolicy: Sendable, Equatable {
    public var meanMargin: Double
    public var labelMargin: Double
    /// How far a site's mean AUC may drop, unless `siteMargins` names the site.
    public var siteMargin: Double
    public var siteMargins: [String: Double]

    public init(meanMargin: Double = 0, labelMargin: Double = 0.02, siteMargin: Double = 0.02, siteMargins: [String: Double] = [:]) {
        self.meanMargin = meanMargin
        self.labelMargin = labelMargin
        self.siteMargin = siteMargin
        self.siteMargins = siteMargins
    }

    /// Why the candidate cannot replace a version whose figures on the same images are
    /// `other` (named `name`): a site whose mean AUC dropped more than its margin, or that
    /// `other` has a figure for and the candidate none; nil when no site did.
    public func siteDrop(candidate: [String: Double], from other: [String: Double], of name: String) -> String? {
        let sites = SiteMetrics.meanAUC(candidate), otherSites = SiteMetrics.meanAUC(other)
        for site in otherSites.keys.sorted() {
            guard let old = otherSites[site] else { continue }
            guard let new = sites[site] else { return "site \(site) has a mean AUC for \(name) and none for the candidate" }
            if new < old - margin(site: site) {
                return String(format: "site %@ mean AUC %.4f dropped more than %.3f from %.4f (%@)", site, new, margin(site: site), old, name)
            }
        }
        return nil
    }

    /// The margin of `site`.
    public func margin(site: String) -> Double { siteMargins[site] ?? siteMargin }

    /// Whether to promote, and why, from both versions' figures (`auc.mean`, `auc.<label>`,
    /// `site.<site>.auc.mean`) on the same images. Held when either mean AUC is missing or not
    /// a number in [0, 1]. A site is compared when both versions have its mean AUC.
    public func decide(candidate: [String: Double], serving: [String: Double], labels: [String]) -> (promote: Bool, reason: String) {
        guard let mean = candidate["auc.mean"], (0...1).contains(mean) else {
            return (false, "the candidate has no finite mean AUC on the held-out window (no label with both classes, or its scores are not finite)")
        }
        guard let servingMean = serving["auc.mean"], (0...1).contains(servingMean) else {
            return (false, "the serving version has no finite mean AUC on the same window; nothing to compare with")
        }
        if mean < servingMean - meanMargin {
            return (false, String(format: "mean AUC %.4f is below the serving version's %.4f", mean, servingMean))
        }
        for label in labels {
            guard let new = candidate["auc.\(label)"], let old = serving["auc.\(label)"] else { continue }
            guard new.isFinite, old.isFinite else { return (false, "\(label) AUC is not a finite number") }
            if new < old - labelMargin {
                return (false, String(format: "%@ AUC %.4f dropped more than %.3f from %.4f", label, new, labelMargin, old))
            }
        }
        if let dropped = siteDrop(candidate: candidate, from: serving, of: "the serving version") { return (false, dropped) }
        let sites = SiteMetrics.meanAUC(candidate), servingSites = SiteMetrics.meanAUC(serving)
        let perSite = sites.isEmpty ? "" : "; per site " + sites.keys.sorted().map { site in
            String(format: "%@ %.4f (serving %@)", site, sites[site] ?? 0, servingSites[site].map { String(format: "%.4f", $0) } ?? "-")
        }.joined(separator: ", ")
        return (true, String(format: "mean AUC %.4f vs the serving version's %.4f, no label dropped more than %.3f", mean, servingMean, labelMargin)
                + (sites.isEmpty ? "" : ", no site more than its margin") + perSite)
    }
}
