import Foundation
import KafkaIO
import Stages
import Testing
import TestSupport
import Wire

/// Resident memory of a process, from /proc (Linux).
enum ResidentMemory {
    static func megabytes(_ pid: Int32) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return nil }
        return kb / 1024
    }
}

@Suite("Bounded memory on a real broker", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct MemoryBoundTests {
    /// The most a decoder or preprocessor process (debug build) may hold while hundreds of
    /// full-resolution X-rays pass through it: its 32-record buffer, 32 records in flight and
    /// librdkafka's own queues, whatever waits downstream.
    static let boundMB = 256.0

    @Test("with the scorer stopped while 300 full-resolution X-rays arrive, the decoder and preprocessor stay under the bound; after SIGCONT all are scored")
    func stoppedScorer() async throws {
        let topics = try await TestBroker.freshTopics("memory")
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        try await StreamingTrainingTests.publish(try TriageTests.model(seed: 1), version: "v1", topics: topics, producer)
        let logs = ["decoder", "preprocessor", "scorer"].map { TestBroker.logFile(prefix: topics.prefix, $0) }
        let processes = try zip(["decoder", "preprocessor", "scorer"], logs).map { try TestBroker.spawnXray([$0], prefix: topics.prefix, log: $1) }
        let (decoder, preprocessor, scorer) = (processes[0], processes[1], processes[2])
        defer {
            kill(scorer.processIdentifier, SIGCONT)
            for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        try await StreamingTrainingTests.waitUntilAssigned(logs)
        kill(scorer.processIdentifier, SIGSTOP)

        let images = try Dataset.nih(300)
        let publishing = Task { try await ModalityPublisher(topic: topics.raw, source: "memory-test").publish(images, with: producer) }
        let wanted = Set(images.map(\.metadata.imageID))
        let arriving = Task {
            try await TestBroker.collect(topics.tensors, timeout: .seconds(300)) { wanted.isSubset(of: Set($0.compactMap(\.keyText))) }
        }
        var peak = (decoder: 0.0, preprocessor: 0.0)
        let sampling = Task {
            var peak = (decoder: 0.0, preprocessor: 0.0)
            while !Task.isCancelled {
                peak.decoder = max(peak.decoder, ResidentMemory.megabytes(decoder.processIdentifier) ?? 0)
                peak.preprocessor = max(peak.preprocessor, ResidentMemory.megabytes(preprocessor.processIdentifier) ?? 0)
                try? await Task.sleep(for: .milliseconds(100))
            }
            return peak
        }
        let tensors = Set(try await arriving.value.compactMap(\.keyText)).intersection(wanted).count
        sampling.cancel()
        peak = await sampling.value
        _ = try await publishing.value
        await producer.close()
        let encoded = images.compactMap { (try? FileManager.default.attributesOfItem(atPath: $0.path))?[.size] as? Int }.reduce(0, +)
        print(String(format: "300 X-rays (%.0f MB encoded) through a decoder and a preprocessor with the scorer stopped: peak resident memory decoder %.0f MB, preprocessor %.0f MB (bound %.0f MB); %d tensors waiting",
                     Double(encoded) / 1e6, peak.decoder, peak.preprocessor, Self.boundMB, tensors))
        #expect(tensors == wanted.count)
        #expect(peak.decoder > 0 && peak.decoder < Self.boundMB && peak.preprocessor > 0 && peak.preprocessor < Self.boundMB)

        kill(scorer.processIdentifier, SIGCONT)
        let predictions = try await TestBroker.collect(topics.predictions, timeout: .seconds(300)) { wanted.isSubset(of: Set($0.compactMap(\.keyText))) }
        #expect(wanted.isSubset(of: Set(predictions.compactMap(\.keyText))), "every image scored after SIGCONT")
        #expect(processes.allSatisfy { $0.isRunning })
        for p in processes { p.terminate() }
        for p in processes { await p.exited() }
        for p in processes { #expect(p.terminationStatus == 0, TestBroker.exitReport(p)) }
    }
}
