import Foundation
import KafkaIO
import Stages
import Testing
import TestSupport
import Wire

/// Headless Chromium (Debian's `chromium`; `Ops/setup --references` installs it).
enum Chromium {
    static let path = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The page's DOM after its script has run for `budget` milliseconds of virtual time.
    static func dom(_ url: String, budget: Int = 5000) async throws -> String {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        return try await runProgram(path ?? "/usr/bin/chromium",
                              ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile.path)",
                               "--virtual-time-budget=\(budget)", "--dump-dom", url], errors: false).output
    }
}

@Suite("The operator's console in a real browser",
       .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"),
       .enabled(if: Chromium.path != nil, "needs Debian's chromium (Ops/setup --references installs it)"))
struct ConsoleBrowserTests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Models/kermany-pneumonia-64.safetensors")

    /// `attribute="N"` in the DOM, as a number.
    func number(_ dom: String, _ attribute: String) -> Int? {
        guard let range = dom.range(of: #"\#(attribute)="(\d+)""#, options: .regularExpression) else { return nil }
        return Int(dom[range].split(separator: "\"")[1])
    }

    func count(_ dom: String, _ needle: String) -> Int { dom.components(separatedBy: needle).count - 1 }

    @Test("the page shows flow, latency, worklist, model and dead letters, and they change as images flow")
    func consoleInChromium() async throws {
        let topics = try await TestBroker.freshTopics("console")
        let publish = try TestBroker.spawnXray(["model", "publish", Self.model.path, "--version", "kermany-pneumonia-64"], prefix: topics.prefix)
        await publish.exited()
        #expect(publish.terminationStatus == 0, TestBroker.exitReport(publish))
        let port = TestBroker.freePort()
        let processes = try [["decoder"], ["preprocessor"], ["scorer"], ["console", "--port", String(port)]].map {
            try TestBroker.spawnXray($0, prefix: topics.prefix)
        }
        defer { for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await Task.sleep(for: .seconds(5))

        // Kermany images of held-out patients (pneumonia first, so the worklist fills) and a corrupt record.
        let root = Dataset.root.appendingPathComponent("kermany_pneumonia_224/train")
        let heldOut = PatientSplit(validationFraction: 0.15).split(try DatasetScanner.scan([root.path])).validation
        let sick = heldOut.filter { $0.metadata.labels == ["Pneumonia"] }
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        let publisher = ModalityPublisher(topic: topics.raw, source: "console-test")
        _ = try await publisher.publish(Array(sick.prefix(4)), with: producer)
        _ = try await producer.send(OutgoingRecord(topic: topics.raw, key: "not-an-image", value: Array("hello".utf8)))
        _ = try await TestBroker.collect(topics.predictions, timeout: .seconds(90)) { $0.count >= 4 }
        // The console reads the predictions and looks at the offsets and groups every few
        // seconds; on a loaded machine its look at the cluster can lag the predictions, so the
        // page is read again (up to 60 s) until the flow shows every stage's group.
        let url = "http://127.0.0.1:\(port)/"
        let groups = ["decoder", "preprocessor", "scorer"].map { "data-group=\"\(topics.prefix)\($0)\"" }
        var first = ""
        let settle = ContinuousClock.now + .seconds(60)
        repeat {
            try await Task.sleep(for: .seconds(5))
            first = try await Chromium.dom(url)
        } while !groups.allSatisfy(first.contains) && ContinuousClock.now < settle
        #expect(first.contains("XRayStream console"))
        #expect(number(first, "data-predictions") == 4, "\(first.prefix(2000))")
        #expect((number(first, "data-refreshes") ?? 0) >= 1, "the page's script reloads the panel")
        // Flow: the topics with their records, and the stages' groups with their instances.
        #expect(first.contains(topics.raw) && first.contains(topics.predictions))
        for group in groups { #expect(first.contains(group)) }
        // Latency per hop, worklist with ground truth, the serving model, the dead letter, the plots.
        #expect(first.contains("arrival → predicted") && first.contains("preprocessed → scored"))
        let firstCases = count(first, "<tr class=\"case\">")
        #expect(firstCases >= 3, "the model flags the held-out pneumonia images")
        #expect(first.contains("class=\"ok\">Pneumonia"))
        #expect(first.contains("id=\"serving\">kermany-pneumonia-64<"))
        #expect(first.contains("unknown-format"))
        #expect(count(first, "<svg") == 5 && count(first, "<circle") >= 4)

        _ = try await publisher.publish(Array(sick.dropFirst(4).prefix(4)), with: producer)
        await producer.close()
        _ = try await TestBroker.collect(topics.predictions, timeout: .seconds(90)) { $0.count >= 8 }
        try await Task.sleep(for: .seconds(5))
        let second = try await Chromium.dom(url)
        #expect(number(second, "data-predictions") == 8)
        #expect(count(second, "<tr class=\"case\">") > firstCases)
        #expect(count(second, "<circle") > count(first, "<circle"))

        for p in processes { p.terminate() }
        for p in processes {
            await p.exited()
            #expect(p.terminationStatus == 0, TestBroker.exitReport(p))
        }
    }
}
