import Foundation
import KafkaIO
import Testing
import Wire
@testable import Console

struct FlowTrackerTests {
    let raw0 = TopicPartition("xray.raw", 0), raw1 = TopicPartition("xray.raw", 1)

    @Test func ratesAndLagComeFromSuccessiveLooks() {
        var flow = FlowTracker(window: 10)
        let member = ConsumerGroupListing.Member(memberID: "m1", clientID: "xray-decoder", host: "/127.0.0.1")
        let group = ConsumerGroupListing(name: "decoder", state: "Stable", members: [member, member])
        flow.add(.init(at: 100, ends: [raw0: 10, raw1: 20], groups: [group], committed: ["decoder": [raw0: 5, raw1: 20]]))
        flow.add(.init(at: 104, ends: [raw0: 30, raw1: 40], groups: [group], committed: ["decoder": [raw0: 25, raw1: 28]]))
        #expect(flow.topics == [.init(topic: "xray.raw", partitions: 2, records: 70, inPerSecond: 10)])
        let g = flow.groups.first
        #expect(g?.group == "decoder" && g?.instances.count == 2 && g?.state == "Stable")
        #expect(g?.outPerSecond == 7 && g?.lag == 17)  // (20 + 8) / 4 s; (30 - 25) + (40 - 28)
        #expect(flow.lagHistory["decoder"]?.map(\.lag) == [5, 17])
        // Samples older than the window no longer count.
        flow.add(.init(at: 120, ends: [raw0: 30, raw1: 40], groups: [group], committed: ["decoder": [raw0: 30, raw1: 40]]))
        #expect(flow.topics.first?.inPerSecond == 0 && flow.groups.first?.lag == 0)
    }

    @Test func aCommitAheadOfAnUnderReportedEndCountsNoNegativeLag() {
        var flow = FlowTracker()
        flow.add(.init(at: 1, ends: [raw0: 4], groups: [], committed: ["scorer": [raw0: 6]]))
        #expect(flow.groups.first?.lag == 0)
    }
}

struct LatencyWindowTests {
    @Test func percentilesPerHopPreferTheGatewaysReceiptToTheAcquisition() {
        var window = LatencyWindow(seconds: 60)
        for i in 1...100 {
            let scored = Int64(1_000_000 + i * 10)
            window.add(StageTimes(acquired: 1, received: scored - Int64(i), decoded: scored - Int64(i) / 2, preprocessed: scored - 1, scored: scored))
        }
        let total = window.figures.first { $0.hop == LatencyWindow.Hop.arrivalToScored.rawValue }
        #expect(total?.count == 100 && total?.p50 == 50 && total?.p95 == 95 && total?.p99 == 99)
        #expect(window.figures.first { $0.hop == LatencyWindow.Hop.preprocessedToScored.rawValue }?.p99 == 1)
        // A prediction a minute and more later pushes the old ones out.
        window.add(StageTimes(acquired: 2_000_000, decoded: nil, preprocessed: nil, scored: 2_000_005))
        #expect(window.figures.first { $0.hop == LatencyWindow.Hop.arrivalToScored.rawValue }?.count == 1)
    }
}

struct ConsoleModelTests {
    let topics = TopicCatalog(prefix: "")

    func prediction(_ id: String, scored: Int64, labels: [String]?) -> Prediction {
        var p = Prediction(imageId: id, modelVersion: "v1", probabilities: [.init(label: "Pneumonia", probability: 0.9)],
                           triage: .urgent, findings: ["Pneumonia"], times: StageTimes(acquired: scored &- 100, decoded: nil, preprocessed: nil, scored: scored))
        p.labels = labels
        p.site = "kermany"
        return p
    }

    func record(_ topic: String, _ value: some Encodable, key: String = "k", headers: [KafkaHeader] = []) throws -> KafkaRecord {
        KafkaRecord(topic: topic, partition: 0, offset: 0, key: Array(key.utf8), value: Array(try JSONEncoder().encode(value)), headers: headers)
    }

    @Test func theWorklistIsNewestFirstWithGroundTruthAndTheThresholds() throws {
        var model = ConsoleModel(topics: topics)
        let policy = TriagePolicy(thresholds: ["Pneumonia": 0.4], defaultThreshold: 0.5, urgent: ["Pneumonia"])
        for (id, scored, labels) in [("a", Int64(1_000), ["Pneumonia"]), ("b", 3_000, []), ("c", 2_000, nil)] as [(String, Int64, [String]?)] {
            let p = prediction(id, scored: scored, labels: labels)
            model.ingest(try record(topics.predictions, p))
            model.ingest(try record(topics.alerts, Alert(prediction: p, policy: policy)))
        }
        #expect(model.worklist.map(\.alert.imageId) == ["b", "c", "a"])
        #expect(model.worklist.map(\.truth) == [[], nil, ["Pneumonia"]])
        #expect(model.worklist.first?.alert.urgentFindings.first?.threshold == 0.4)
        #expect(model.predictions == 3 && model.triageCounts[.urgent] == 3)
        let html = ConsolePage.panel(model)
        #expect(html.contains("Pneumonia 90% / 40%") && html.contains("class=\"bad\">no finding"))
    }

    @Test func deadLettersCountByStageAndReasonAndUnreadableRecordsArePassedOver() throws {
        var model = ConsoleModel(topics: topics)
        let letter = DeadLetter(stage: "decoder", reason: "corrupt PNG", reasonCode: "corrupt-image", sourceTopic: "xray.raw",
                                sourcePartition: 1, sourceOffset: 7, at: 1_000)
        let headers = letter.headerFields.map { KafkaHeader($0.name, $0.value) }
        model.ingest(KafkaRecord(topic: topics.deadletter, partition: 0, offset: 0, key: Array("<img src=x>".utf8), value: [1, 2], headers: headers))
        model.ingest(KafkaRecord(topic: topics.deadletter, partition: 0, offset: 1, key: nil, value: [], headers: headers))
        model.ingest(KafkaRecord(topic: topics.predictions, partition: 0, offset: 0, key: nil, value: Array("{not json".utf8), headers: []))
        model.ingest(KafkaRecord(topic: topics.alerts, partition: 0, offset: 0, key: nil, value: [0xff], headers: []))
        #expect(model.deadLetters == ["decoder": ["corrupt-image": 2]])
        #expect(model.predictions == 0 && model.worklist.isEmpty)
        let html = ConsolePage.panel(model)
        #expect(!html.contains("<img src=x>") && html.contains("&lt;img src=x&gt;"))
    }

    /// Records are outside bytes: extreme times and probabilities must render, not trap.
    @Test func extremeTimesAndProbabilitiesRenderWithoutTrapping() throws {
        var model = ConsoleModel(topics: topics)
        var p = prediction("x", scored: Int64.max, labels: ["Pneumonia"])
        p.times = StageTimes(acquired: Int64.min, received: nil, decoded: Int64.min + 1, preprocessed: 0, scored: Int64.max)
        model.ingest(try record(topics.predictions, p))
        model.ingest(try record(topics.predictions, prediction("y", scored: Int64.min, labels: nil)))
        var alert = Alert(prediction: p, policy: TriagePolicy(urgent: ["Pneumonia"]))
        alert.urgentFindings = [.init(label: "Pneumonia", probability: .greatestFiniteMagnitude, threshold: -1)]
        model.ingest(try record(topics.alerts, alert))
        let html = ConsolePage.page(model, brokers: "b")
        #expect(model.predictions == 2 && html.contains("arrival → predicted") && html.contains("Pneumonia 3402823"))
        #expect(ConsolePage.percent(.nan) == "?" && ConsolePage.percent(0.5) == "50%")
    }

    @Test func trainingPointsAreKeptOnlyWhenTheFiguresMove() {
        var model = ConsoleModel(topics: topics)
        model.addTraining(at: 1, loss: 0.5, learningRate: 1e-3)
        model.addTraining(at: 2, loss: 0.5, learningRate: 1e-3)
        model.addTraining(at: 3, loss: 0.4, learningRate: 1e-3)
        model.addTraining(at: 4, loss: nil, learningRate: nil)
        #expect(model.training.map(\.at) == [1, 3])
    }
}

struct ConsolePageTests {
    @Test func thePageCarriesEverySectionAndItsPlotsAsSVG() {
        var model = ConsoleModel(topics: TopicCatalog(prefix: "site1."))
        model.latency.add(StageTimes(acquired: 0, decoded: 5, preprocessed: 8, scored: 20))
        model.latency.add(StageTimes(acquired: 10, decoded: 15, preprocessed: 18, scored: 50))
        let page = ConsolePage.page(model, brokers: "kafka:9092")
        for id in ["flow", "latency", "worklist", "model", "deadletters"] { #expect(page.contains("id=\"\(id)\"")) }
        #expect(page.components(separatedBy: "<svg").count - 1 == 5)
        #expect(page.contains("<polyline") == false && page.contains("<circle"))  // latency: dots
        #expect(page.contains("site1.xray.*") && page.contains("fetch('/panel'"))
    }

    @Test func aPlotScalesToItsDataAndSaysWhenItHasNone() {
        let one = SVGPlot(title: "lr", xLabel: "s", series: [.init(name: "lr", color: "#000", points: [(0, 0.001)])]).svg
        #expect(one.contains(">0.0011<") && one.contains(">0.0009<") && !one.contains("-0.5"))
        let empty = SVGPlot(title: "loss", xLabel: "s", series: [.init(name: "loss", color: "#000", points: [])]).svg
        #expect(empty.contains("no data yet") && !empty.contains("<circle"))
        let two = SVGPlot(title: "lag", xLabel: "s", series: [.init(name: "a", color: "#111", points: [(0, 1), (10, 5)]),
                                                             .init(name: "b", color: "#222", points: [(0, 2)])], yRange: 0...5).svg
        #expect(two.contains("● a") && two.contains("● b") && two.contains("<polyline") && two.contains(">5.00<"))
    }

    @Test func prometheusTextSumsEveryLabelSetOfTheNameOnly() {
        let text = """
            # TYPE xray_training_loss gauge
            xray_training_loss 0.25
            xray_training_loss_total 9
            xray_learning_rate{shard="0"} 1e-3
            xray_learning_rate{shard="1"} 2e-3
            """
        #expect(PrometheusText.sum(of: "xray_training_loss", in: text) == 0.25)
        #expect(abs((PrometheusText.sum(of: "xray_learning_rate", in: text) ?? 0) - 3e-3) < 1e-12)
        #expect(PrometheusText.sum(of: "xray_missing", in: text) == nil)
    }
}
