import Foundation
import KafkaIO
import Stages
import Testing
import TestSupport
import Wire

@Suite("Faults", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct KillTests {
    @Test("two decoder processes share the work; SIGKILL on one mid-stream loses no image")
    func sigkillLosesNothing() async throws {
        let topics = try await TestBroker.freshTopics("kill")
        let images = try Dataset.nih(60)
        let a = try TestBroker.spawnXray(["decoder"], prefix: topics.prefix)
        let b = try TestBroker.spawnXray(["decoder"], prefix: topics.prefix)
        defer {
            for p in [a, b] where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        try await Task.sleep(for: .seconds(5))  // both join the group
        #expect(a.isRunning && b.isRunning)

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        let publisher = ModalityPublisher(topic: topics.raw, source: "kill-test", rate: 20)  // ~3 s of stream
        let publishing = Task { try await publisher.publish(images, with: producer) }

        // Kill one instance once output is flowing.
        _ = try await TestBroker.collect(topics.decoded, timeout: .seconds(60)) { $0.count >= 10 }
        kill(a.processIdentifier, SIGKILL)
        await a.exited()
        #expect(a.terminationReason == .uncaughtSignal)
        _ = try await publishing.value
        await producer.close()

        let wanted = Set(images.map(\.metadata.imageID))
        let decoded = try await TestBroker.collect(topics.decoded, timeout: .seconds(120)) { records in
            wanted.isSubset(of: Set(records.compactMap(\.keyText)))
        }
        let seen = Set(decoded.compactMap(\.keyText))
        #expect(wanted.subtracting(seen).isEmpty, "lost: \(wanted.subtracting(seen).sorted())")
        #expect(b.isRunning)
        b.terminate()  // SIGTERM: graceful
        await b.exited()
        #expect(b.terminationStatus == 0, TestBroker.exitReport(b))
    }
}
