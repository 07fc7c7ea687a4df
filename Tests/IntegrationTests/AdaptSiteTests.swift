import Foundation
import Testing
import TestSupport

/// `Ops/adapt-site`, short, on the test broker: a model trained on a little of the Kermany
/// pediatric set arrives at the NIH adult site and gets better there from the stream alone.
@Suite("Adapting a model to a new site", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct AdaptSiteTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs `command` with `arguments` and `environment` added, in the repository; its output.
    static func run(_ command: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command)
        process.arguments = arguments
        process.currentDirectoryURL = repository
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("adapt-site-\(UUID().uuidString.prefix(6)).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        await process.exited()
        try handle.close()
        return (process.terminationStatus, try String(contentsOf: log, encoding: .utf8))
    }

    /// The two AUCs on the table row that starts with `row`.
    static func aucs(_ output: String, row: String) -> (old: Double, new: Double)? {
        guard let line = output.split(separator: "\n").first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(row) }) else { return nil }
        let numbers = line.split(separator: " ").compactMap { Double($0) }
        return numbers.count >= 2 ? (numbers[numbers.count - 2], numbers[numbers.count - 1]) : nil
    }

    @Test("a Kermany-trained model fine-tuned on the NIH site's stream scores that site's held-out patients better than before")
    func adaptsToTheNewSite() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("adapt-site-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let start = work.appendingPathComponent("kermany.safetensors").path
        // A starting model in seconds: 400 Kermany images at 32 px, 2 epochs.
        let trained = try await Self.run(TestBroker.xrayBinary, ["train", "--arch", "small-cnn", "--labels", "Pneumonia", "--resize", "36", "--crop", "32",
                                                           "--limit", "400", "--epochs", "2", "--lr", "0.002", "--warmup", "10", "--out", start,
                                                           Dataset.root.appendingPathComponent("kermany_pneumonia_224/train").path])
        #expect(trained.status == 0, "xray train: \(trained.output.suffix(2000))")
        let adapted = try await Self.run("/bin/bash", ["Ops/adapt-site", start], environment: [
            "XRAY_BIN": TestBroker.xrayBinary, "XRAY_BROKERS": TestBroker.brokers ?? "", "XRAY_TOPIC_PREFIX": "adapt-\(UInt32.random(in: 0...UInt32.max)).",
            "EPOCHS": "2", "OLD_WINDOW": "60", "LR": "0.002", "OUT": work.path,
            // Faster learning than the script's defaults (which guard the old site harder), so
            // two short epochs move the new site's AUC.
            "SHARE": "0.5", "ANCHOR": "", "SCHEDULE": "warmup-plateau",
        ])
        print(adapted.output.split(separator: "\n").filter { !$0.contains("trainer has taken") }.suffix(24).joined(separator: "\n"))
        #expect(adapted.status == 0)
        let before = try #require(Self.aucs(adapted.output, row: "starting model"), "no 'starting model' row")
        let latest = try #require(Self.aucs(adapted.output, row: "latest trained version"), "no 'latest trained version' row")
        #expect(latest.new > before.new, "the new site's held-out AUC: \(before.new) before, \(latest.new) after")
        let last = adapted.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("model: ") && FileManager.default.fileExists(atPath: String(last.dropFirst(7))))
    }
}
