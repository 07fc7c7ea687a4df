import Stages
import Testing
import Wire

/// Thresholds chosen on held-out scores for a target sensitivity, checked against counts done
/// by hand.
@Suite("Operating points for a target sensitivity")
struct OperatingPointTests {
    @Test("the highest threshold that keeps the target share of positives at or above it")
    func chosen() {
        // 20 positives scoring 0.05, 0.10 ... 1.00; 95% of 20 is 19: the 19th highest is 0.10.
        let positives = (1...20).map { Float($0) * 0.05 }
        let negatives: [Float] = [0.02, 0.04, 0.08, 0.12, 0.5]
        let point = OperatingPointChooser(sensitivity: 0.95, minimumPositives: 10).choose(positives: positives, negatives: negatives, current: 0.5)
        #expect(point.chosen && point.threshold == positives[1])
        #expect(point.sensitivity == 19.0 / 20.0)
        #expect(point.specificity == 3.0 / 5.0)  // 0.02, 0.04, 0.08 are below 0.10
        #expect(point.positives == 20 && point.negatives == 5)
    }

    @Test("a sensitivity of 1 takes the lowest positive score; 0.5 the median's upper half")
    func extremes() {
        let positives: [Float] = [0.9, 0.3, 0.6, 0.7]
        let all = OperatingPointChooser(sensitivity: 1, minimumPositives: 1).choose(positives: positives, negatives: [], current: 0.5)
        #expect(all.threshold == 0.3 && all.sensitivity == 1 && all.specificity == nil)
        let half = OperatingPointChooser(sensitivity: 0.5, minimumPositives: 1).choose(positives: positives, negatives: [0.65], current: 0.5)
        #expect(half.threshold == 0.7 && half.sensitivity == 0.5 && half.specificity == 1)
    }

    @Test("too few positives: the current threshold stays, with its figures and the reason")
    func tooFew() {
        let point = OperatingPointChooser(sensitivity: 0.95, minimumPositives: 10).choose(positives: [0.9, 0.4, 0.7], negatives: [0.1, 0.6],
                                                                                           current: 0.5)
        #expect(!point.chosen && point.threshold == 0.5)
        #expect(point.sensitivity == 2.0 / 3.0 && point.specificity == 0.5)
        #expect(point.reason?.contains("3 positive images") == true)
    }
}
