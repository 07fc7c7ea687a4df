import Foundation
import ModelVersions
@testable import Stages
import Testing
import Wire

/// Figures, gating and thresholds per site (hospital), without Kafka.
@Suite("Per-site evaluation, gate and thresholds")
struct SiteGateTests {
    static let labels = ["A", "B"]
    static let serving: [String: Double] = ["auc.mean": 0.80, "auc.A": 0.80, "auc.B": 0.80,
                                            "site.north.auc.mean": 0.90, "site.south.auc.mean": 0.70]

    @Test("a version that gains at one site and loses more than the margin at another is held, the reason naming the site")
    func heldForOneSite() {
        let gate = GatePolicy(meanMargin: 0, labelMargin: 0.02, siteMargin: 0.02)
        let candidate: [String: Double] = ["auc.mean": 0.85, "auc.A": 0.85, "auc.B": 0.85,
                                           "site.north.auc.mean": 0.85, "site.south.auc.mean": 0.95]
        let decision = gate.decide(candidate: candidate, serving: Self.serving, labels: Self.labels)
        #expect(!decision.promote)
        #expect(decision.reason.contains("site north") && decision.reason.contains("0.8500") && decision.reason.contains("0.9000"), "\(decision.reason)")
        // Within the margin at north (0.89 ≥ 0.90 − 0.02): promoted, the reason giving each site.
        var within = candidate
        within["site.north.auc.mean"] = 0.89
        let promoted = gate.decide(candidate: within, serving: Self.serving, labels: Self.labels)
        #expect(promoted.promote && promoted.reason.contains("north 0.8900 (serving 0.9000)") && promoted.reason.contains("south 0.9500"))
    }

    @Test("promotions cannot ratchet a site down: each is also bounded by the published base's figures")
    func boundedByTheBase() {
        let gate = GatePolicy(meanMargin: 1, labelMargin: 1, siteMargin: 0.02)
        let base: [String: Double] = ["auc.mean": 0.8, "site.north.auc.mean": 0.95]
        let serving: [String: Double] = ["auc.mean": 0.8, "site.north.auc.mean": 0.935]  // promoted earlier, 0.015 down
        let candidate: [String: Double] = ["auc.mean": 0.8, "site.north.auc.mean": 0.92]  // 0.015 below the serving one
        #expect(gate.decide(candidate: candidate, serving: serving, labels: []).promote, "within the margin of the serving version")
        let dropped = gate.siteDrop(candidate: candidate, from: base, of: "the published base v0")
        #expect(dropped?.contains("site north mean AUC 0.9200 dropped more than 0.020 from 0.9500 (the published base v0)") == true, "\(dropped ?? "nil")")
        #expect(gate.siteDrop(candidate: serving, from: base, of: "v0") == nil)
    }

    @Test("a site's own margin replaces the default one for that site only")
    func ownMargin() {
        let candidate: [String: Double] = ["auc.mean": 0.85, "auc.A": 0.85, "auc.B": 0.85,
                                           "site.north.auc.mean": 0.85, "site.south.auc.mean": 0.66]
        let lenientNorth = GatePolicy(siteMargin: 0.02, siteMargins: ["north": 0.1])
        let held = lenientNorth.decide(candidate: candidate, serving: Self.serving, labels: Self.labels)
        #expect(!held.promote && held.reason.contains("site south"), "south keeps the default margin: \(held.reason)")
        let lenientBoth = GatePolicy(siteMargin: 0.02, siteMargins: ["north": 0.1, "south": 0.05])
        #expect(lenientBoth.decide(candidate: candidate, serving: Self.serving, labels: Self.labels).promote)
    }

    @Test("a site measured for the serving version and not for the candidate holds it; sites of neither are not compared")
    func missingSite() {
        let gate = GatePolicy()
        var candidate: [String: Double] = ["auc.mean": 0.9, "auc.A": 0.9, "auc.B": 0.9, "site.north.auc.mean": 0.95]
        let held = gate.decide(candidate: candidate, serving: Self.serving, labels: Self.labels)
        #expect(!held.promote && held.reason.contains("site south"))
        candidate["site.south.auc.mean"] = .nan  // not a figure: as if missing
        #expect(!gate.decide(candidate: candidate, serving: Self.serving, labels: Self.labels).promote)
        // No per-site figures on either side: the overall rules alone.
        #expect(gate.decide(candidate: ["auc.mean": 0.9, "auc.A": 0.9, "auc.B": 0.9],
                            serving: ["auc.mean": 0.8, "auc.A": 0.8, "auc.B": 0.8], labels: Self.labels).promote)
    }

    @Test("per-site metrics are named site.<site>.<figure> and read back whatever the site name")
    func metricNames() {
        let metrics = ["site.a-b_1.auc.mean": 0.7, "site.x.auc.mean": 1.5, "site.y.auc.A": 0.6, "auc.mean": 0.8, "site.a-b_1.images": 40]
        #expect(SiteMetrics.meanAUC(metrics) == ["a-b_1": 0.7], "out of [0, 1] is not a figure; a label's AUC is not the mean")
        #expect(SiteMetrics.figures(metrics, site: "a-b_1") == ["auc.mean": 0.7, "images": 40])
        #expect(SiteMetrics.key(site: "north", "auc.mean") == "site.north.auc.mean")
    }

    @Test("site names: letters, digits, _ and -, 1 to 64; anything else is no site")
    func siteNames() {
        #expect(ImageMetadata.validSite("kermany_2018-peds") == "kermany_2018-peds")
        for bad in ["", "a.b", "a b", "é", String(repeating: "x", count: 65), "a/b", "a\u{0}"] {
            #expect(ImageMetadata.validSite(bad) == nil, "\(bad.debugDescription)")
        }
        let headers = ImageMetadata(imageID: "i", site: "north").headerFields
        #expect(headers.contains { $0.name == HeaderName.site && $0.value == "north" })
        let lookup = { (name: String) in name == HeaderName.site ? "no.t valid" : nil }
        #expect(ImageMetadata(lookup: lookup, key: "k")?.site == nil)
    }

    @Test("the held-out window keeps its size, a full window trims the largest site, and it holds at most 16 sites")
    func window() {
        var window = HeldOutWindow(capacity: 8)
        for i in 0..<8 { window.add(.init(id: "n\(i)", site: "north", input: [], positives: [])) }
        for i in 0..<2 { window.add(.init(id: "s\(i)", site: "south", input: [], positives: [])) }
        for i in 0..<3 { window.add(.init(id: "u\(i)", site: nil, input: [], positives: [])) }
        // north gave up its five oldest; south and the images without a site kept all theirs.
        #expect(window.examples.map(\.id).sorted() == ["n5", "n6", "n7", "s0", "s1", "u0", "u1", "u2"])
        window.add(.init(id: "u3", site: nil, input: [], positives: []))  // north 3, south 2, none 4: none gives up u0
        #expect(window.examples.count == 8 && !window.examples.contains { $0.id == "u0" })
        window.add(.init(id: "n8", site: "north", input: [], positives: []))  // north 4, none 3: north gives up n5
        #expect(window.examples.count == 8 && !window.examples.contains { $0.id == "n5" })
        window.add(.init(id: "n3", site: "north", input: [1], positives: []))  // the same image again replaces it
        #expect(window.examples.filter { $0.id == "n3" }.map(\.input) == [[1]])
        window = HeldOutWindow(capacity: 100)
        for s in 0..<16 {
            let added = window.add(.init(id: "x\(s)", site: "site\(s)", input: [], positives: []))
            #expect(added)
        }
        let refused = window.add(.init(id: "y", site: "one-too-many", input: [], positives: []))
        #expect(!refused)
        #expect(!window.examples.contains { $0.id == "y" })
        let known = window.add(.init(id: "n9", site: "site3", input: [], positives: []))
        let unnamed = window.add(.init(id: "u9", site: nil, input: [], positives: []))
        #expect(known && unnamed, "a known site and the images without one still come in")
    }

    @Test("a window's figures per site are those of an evaluation of that site's images alone")
    func windowEvaluation() {
        let manifest = ModelManifest(architecture: "small-cnn", labels: ["A"], preprocess: PreprocessSpec(resize: 1, crop: 1, channels: 1, mean: [0], std: [1]),
                                     origin: "test", createdAt: "now")
        // north: scores rank its positives first (AUC 1); south: last (AUC 0); 3 images of "east".
        let scores: [[Float]] = [[0.9], [0.8], [0.2], [0.1], [0.1], [0.2], [0.8], [0.9], [0.5], [0.5], [0.5]]
        let truth: [[String]] = [["A"], ["A"], [], [], ["A"], ["A"], [], [], ["A"], [], []]
        let sites: [String?] = ["north", "north", "north", "north", "south", "south", "south", "south", "east", "east", "east"]
        let evaluation = WindowEvaluation(overall: Evaluation(manifest: manifest, scores: scores, truth: truth), sites: sites,
                                          manifest: manifest, minimumSiteImages: 4)
        #expect(Set(evaluation.sites.keys) == ["north", "south"], "east has 3 images, 4 needed")
        let metrics = evaluation.metrics
        #expect(metrics["site.north.auc.mean"] == 1 && metrics["site.north.auc.A"] == 1 && metrics["site.north.images"] == 4)
        #expect(metrics["site.south.auc.mean"] == 0)
        #expect(metrics["auc.mean"] == evaluation.overall.meanAUC && metrics["validation.images"] == 11)
    }
}
