import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KafkaIO
import Stages
import Testing
import TestSupport
import Wire

@Suite("Prometheus metrics", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct MetricsTests {
    @Test("a stage serves its counters, batch sizes, processing times and lag at /metrics")
    func decoderMetrics() async throws {
        let topics = try await TestBroker.freshTopics("metrics")
        let port = TestBroker.freePort()
        let decoder = try TestBroker.spawnXray(["decoder", "--metrics-port", String(port), "--metrics-host", "127.0.0.1"], prefix: topics.prefix)
        defer { if decoder.isRunning { kill(decoder.processIdentifier, SIGKILL) } }
        try await Task.sleep(for: .seconds(4))

        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        _ = try await ModalityPublisher(topic: topics.raw, source: "metrics-test").publish(try Dataset.nih(6), with: producer)
        _ = try await producer.send(OutgoingRecord(topic: topics.raw, key: "bad", value: Array("not an image".utf8)))
        await producer.close()
        _ = try await TestBroker.collect(topics.decoded, timeout: .seconds(60)) { $0.count >= 6 }
        try await Task.sleep(for: .seconds(3))  // the lag gauge is refreshed every 2 s

        let text = try await Scrape.metrics(port)
        #expect(Scrape.value(text, #"xray_records_consumed_total{stage="decoder"}"#) == 7)
        #expect(Scrape.value(text, #"xray_records_produced_total{stage="decoder"}"#) == 6)
        let deadLettered = text.split(separator: "\n").filter { $0.hasPrefix("xray_records_dead_lettered_total{") }
        #expect(deadLettered.count == 1 && deadLettered.first.map { $0.contains(#"stage="decoder""#) && $0.contains(#"reason="unknown-format""#) && $0.hasSuffix(" 1") } == true,
                "\(deadLettered)")
        #expect(Scrape.value(text, #"xray_batch_size_count{stage="decoder"}"#) == 7)
        #expect((Scrape.value(text, #"xray_processing_seconds_sum{stage="decoder"}"#) ?? 0) > 0)
        #expect(text.contains(#"xray_consumer_lag{stage="decoder",topic="\#(topics.raw)""#))
        let missing = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/other")!).1
        #expect((missing as? HTTPURLResponse)?.statusCode == 404)
        decoder.terminate()
        await decoder.exited()
        #expect(decoder.terminationStatus == 0, TestBroker.exitReport(decoder))
    }
}
