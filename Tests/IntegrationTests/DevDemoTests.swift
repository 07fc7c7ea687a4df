import Foundation
import Testing
import TestSupport

/// `Ops/dev`, the README's first command, end to end on the test broker (with the test build of
/// xray instead of a release build): every stage, the console, the trained model, the feed of
/// held-out patients, and the summary that counts true and false alerts.
@Suite("Ops/dev", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct DevDemoTests {
    @Test("the demo triages held-out Kermany patients with the shipped model and its summary adds up")
    func devDemo() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("dev-\(UUID().uuidString)")
        var environment = ProcessInfo.processInfo.environment
        environment["XRAY_BROKERS"] = TestBroker.brokers
        environment["XRAY_TOPIC_PREFIX"] = "dev-\(UInt32.random(in: 0...UInt32.max))."
        environment["DEV_XRAY"] = TestBroker.xrayBinary
        environment["DEV_LOGS"] = logs.path
        environment["DEV_IMAGES"] = "12"
        environment["DEV_NIH_IMAGES"] = "4"
        environment["DEV_RATE"] = "20"
        let (status, output) = try await runProgram("/bin/bash", [root.appendingPathComponent("Ops/dev").path], environment: environment)
        #expect(status == 0, "\(output.suffix(4000))")

        // 12 Kermany + 4 NIH + 1 DICOM predicted; 3 corrupt records dead-lettered.
        let summary = output.split(separator: "\n").first { $0.contains("== summary:") }.map(String.init) ?? ""
        #expect(summary.contains("(12 Kermany, 4 NIH, 1 DICOM through the gateway, 3 corrupt) → 17 predictions"), "\(output.suffix(4000))")
        #expect(summary.contains("3 dead letters (expected 17,"))
        let alerts = summary.firstMatch(of: /(\d+) alerts/).map { Int($0.1) ?? -1 }
        let urgent = summary.firstMatch(of: /predictions \((\d+) urgent\)/).map { Int($0.1) ?? -2 }
        #expect(alerts != nil && alerts == urgent, "every urgent prediction is an alert: \(summary)")

        // The per-site triage counts add up to the Kermany images, and the held-out figures are quoted.
        let kermany = output.split(separator: "\n").first { $0.contains("triage, kermany") }.map(String.init) ?? ""
        let numbers = kermany.firstMatch(of: /(\d+) pneumonia alerts, (\d+) of them true \(of (\d+) with pneumonia\); (\d+) of (\d+) without pneumonia flagged/)
        #expect(numbers != nil, "\(output.suffix(3000))")
        if let n = numbers {
            let (flagged, trueAlerts, sick, falseAlerts, well) = (Int(n.1)!, Int(n.2)!, Int(n.3)!, Int(n.4)!, Int(n.5)!)
            #expect(sick + well == 12 && trueAlerts + falseAlerts == flagged && trueAlerts <= sick)
            #expect(Double(trueAlerts) >= 0.75 * Double(sick), "the model finds most held-out pneumonia: \(kermany)")
        }
        #expect(output.contains("AUC 0.994, sensitivity 0.975, specificity 0.951 on 794 images"))
        #expect(output.contains("== console: http://127.0.0.1:"))
        #expect(output.contains("fine-tuning:") && output.contains("gate:"))
        try? FileManager.default.removeItem(at: logs)
    }
}
