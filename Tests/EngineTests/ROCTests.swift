import Testing
@testable import Engine

@Suite("ROC and AUC")
struct ROCTests {
    /// The AUC by counting pairs, from the definition.
    func pairwise(_ scores: [Float], _ truth: [Bool]) -> Double {
        var wins = 0.0, pairs = 0.0
        for i in scores.indices where truth[i] {
            for j in scores.indices where !truth[j] {
                pairs += 1
                wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0
            }
        }
        return wins / pairs
    }

    @Test func handComputedCases() throws {
        // Perfect, inverted, and sklearn's documentation example (AUC 0.75).
        #expect(ROC(scores: [0.9, 0.8, 0.3, 0.1], truth: [true, true, false, false])?.auc == 1)
        #expect(ROC(scores: [0.1, 0.2, 0.8, 0.9], truth: [true, true, false, false])?.auc == 0)
        let sk = try #require(ROC(scores: [0.1, 0.4, 0.35, 0.8], truth: [false, false, true, true]))
        #expect(sk.auc == 0.75)
        #expect(sk.points.first! == (0, 0) && sk.points.last! == (1, 1))
        // All tied: one diagonal step, AUC one half.
        #expect(ROC(scores: [0.5, 0.5, 0.5], truth: [true, false, false])?.auc == 0.5)
        #expect(ROC(scores: [0.5, 0.6], truth: [true, true]) == nil)
    }

    @Test func areaEqualsThePairCountWithTies() {
        var rng = SeededGenerator(seed: 3)
        for _ in 0..<20 {
            let n = 50
            let scores = (0..<n).map { _ in Float(Int(rng.uniform() * 10)) / 10 }  // many ties
            let truth = (0..<n).map { i in rng.uniform() < 0.3 + 0.4 * scores[i] }
            guard let roc = ROC(scores: scores, truth: truth) else { continue }
            #expect(abs(roc.auc - pairwise(scores, truth)) < 1e-12)
        }
    }

    @Test func operatingPointForASensitivityTarget() throws {
        let scores: [Float] = [0.95, 0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]
        let truth = [true, false, true, true, false, true, false, false]
        let point = try #require(ROC.threshold(scores: scores, truth: truth, sensitivity: 0.75))
        #expect(point.threshold == 0.6)              // 3 of 4 positives at or above 0.6
        #expect(point.specificity == 0.75)           // 3 of 4 negatives below it
        #expect(try #require(ROC.threshold(scores: scores, truth: truth, sensitivity: 1)).threshold == 0.3)
    }
}
