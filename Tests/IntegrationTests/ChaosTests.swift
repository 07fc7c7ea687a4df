import Engine
import Foundation
import Imaging
import KafkaIO
import ModelVersions
import Stages
import Synchronization
import Testing
import TestSupport
import Wire

/// Every stage kind killed and restarted while labelled images stream in with hostile records
/// among them: every image is scored, every hostile record is dead-lettered with its reason,
/// training ends on a consistent version, and no stage exits on its own.
@Suite("Chaos on a real broker", .enabled(if: TestBroker.available, "needs XRAY_TEST_BROKERS (Ops/test sets it)"))
struct ChaosTests {
    typealias S = StreamingTrainingTests

    /// A header that marks a hostile record, so its dead letter can be found whatever its key.
    static let marker = "xray.test-hostile"

    /// One stage process and how to start it again.
    final class StageProcess {
        let kind: String
        let arguments: [String]
        let prefix: String
        var process: Process
        var incarnations = 1

        init(_ kind: String, _ arguments: [String], prefix: String) throws {
            self.kind = kind
            self.arguments = arguments
            self.prefix = prefix
            process = try TestBroker.spawnXray(arguments, prefix: prefix, log: TestBroker.logFile(prefix: prefix, "\(kind)-1"))
        }

        func killAndRestart() async throws {
            kill(process.processIdentifier, SIGKILL)
            await process.exited()
            incarnations += 1
            process = try TestBroker.spawnXray(arguments, prefix: prefix, log: TestBroker.logFile(prefix: prefix, "\(kind)-\(incarnations)"))
        }
    }

    /// Hostile records for every topic a stage consumes, each with the fault code its dead
    /// letter must carry.
    static func hostileRecords(_ topics: TopicCatalog) throws -> [(record: OutgoingRecord, code: String)] {
        func marked(_ name: String, topic: String, key: String?, value: [UInt8], headers: [KafkaHeader] = [], partition: Int32? = nil) -> OutgoingRecord {
            OutgoingRecord(topic: topic, key: key.map { Array($0.utf8) }, value: value, headers: headers + [KafkaHeader(marker, name)],
                           partition: partition)
        }
        let png = [UInt8](try Data(contentsOf: Dataset.root.appendingPathComponent("nih_cxr14_64px_kcr2019/NIH1000/train/0_normal/00000002_000.png")))
        let strip = try PNGEncoder.encodeRGB(width: 1, height: 600, pixels: [UInt8](repeating: 40, count: 1800))
        var nanTensor = Tensor(shape: [3, 32, 32], values: [Float](repeating: 0.1, count: 3 * 32 * 32)).encoded()
        nanTensor.replaceSubrange(40..<44, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init))
        var lyingImage = DecodedImage(width: 8, height: 8, pixels: [UInt8](repeating: 1, count: 64)).encoded()
        lyingImage.removeLast(10)
        let labelled = [KafkaHeader(HeaderName.labels, "Pneumonia"), KafkaHeader(HeaderName.patientID, "hostile-patient")]
        typealias G = GradientRecord.Header
        let nanGradient = FloatBytes.encode([Float](repeating: .nan, count: 4))
        let gradientHeaders = GradientChunkInfo(contribution: "hostile0000000000", trainer: "evil", baseVersion: "v0", baseStep: 0, shard: 0,
                                                shards: 4, part: .values, index: 0, count: 1, start: 0, samples: 8, loss: 0.5,
                                                crc32: crc32Hex(nanGradient)).headerFields.map { KafkaHeader($0.name, $0.value) }
        return [
            (marked("garbage", topic: topics.raw, key: "hostile-garbage", value: Array("this is not an X-ray".utf8)), "unknown-format"),
            (marked("truncated-png", topic: topics.raw, key: "hostile-truncated", value: Array(png.prefix(png.count / 2))), "corrupt-image"),
            (marked("empty", topic: topics.raw, key: "hostile-empty", value: []), "empty"),
            (marked("strip", topic: topics.raw, key: "hostile-strip", value: strip), "bad-aspect-ratio"),
            (marked("no-id", topic: topics.raw, key: nil, value: png), "no-image-id"),
            (marked("lying-decoded", topic: topics.decoded, key: "hostile-decoded", value: lyingImage), "malformed"),
            (marked("nan-tensor", topic: topics.tensors, key: "hostile-nan", value: nanTensor,
                    headers: [KafkaHeader(HeaderName.imageID, "hostile-nan")] + labelled), "non-finite"),
            (marked("wrong-shape", topic: topics.tensors, key: "hostile-shape",
                    value: Tensor(shape: [3, 8, 8], values: [Float](repeating: 0, count: 192)).encoded(),
                    headers: [KafkaHeader(HeaderName.imageID, "hostile-shape")] + labelled), "wrong-shape"),
            (marked("gradient-headers", topic: topics.gradients, key: "shard-0", value: [1, 2, 3, 4],
                    headers: [KafkaHeader(G.shard, "0"), KafkaHeader(G.shards, "-3")], partition: 0), "malformed"),
            (marked("nan-gradient", topic: topics.gradients, key: "shard-0", value: nanGradient, headers: gradientHeaders, partition: 0),
             "non-finite"),
        ]
    }

    @Test("SIGKILLs of every stage kind during a labelled replay with hostile records: all scored, all hostile records dead-lettered, training consistent")
    func killEveryKindWhileHostileRecordsArrive() async throws {
        let (topics, _, producer) = try await S.setUp("chaos")
        let prefix = topics.prefix
        // Hostile model versions too: a damaged chunk and NaN weights. Every follower refuses them.
        var corrupt = try ModelVersionCodec.records(for: try S.model().encoded(), manifest: try S.model().manifest, version: "v-corrupt",
                                                    topic: topics.models, chunkBytes: 1 << 18)
        corrupt[1].value[7] ^= 0x55
        try await producer.sendVersion(corrupt, headsTopic: topics.modelHeads, logger: TestBroker.logger)
        let poisoned = try S.model()
        poisoned.network.parameters[2].value[1] = .infinity
        try await S.publish(poisoned, version: "v-nan", topics: topics, producer)

        let stages = try [
            StageProcess("decoder", ["decoder"], prefix: prefix),
            StageProcess("preprocessor", ["preprocessor"], prefix: prefix),
            StageProcess("scorer", ["scorer", "--batch", "8"], prefix: prefix),
            StageProcess("trainer", ["trainer", "--batch", "8", "--batch-wait-ms", "2000", "--validation", "0.15", "--id", "t1"], prefix: prefix),
            StageProcess("aggregator", ["aggregator", "--lr", "0.002", "--warmup", "2", "--barrier-timeout-s", "15"], prefix: prefix),
            StageProcess("evaluator", ["evaluator", "--validation", "0.15", "--interval-s", "0", "--min-images", "5"], prefix: prefix),
        ]
        defer { for s in stages where s.process.isRunning { kill(s.process.processIdentifier, SIGKILL) } }
        try await Task.sleep(for: .seconds(8))  // the groups form

        // 120 labelled Kermany images at 4 a second (30 s), the hostile records among them.
        var random = SeededGenerator(seed: 2026)
        let images = try Dataset.kermany(120).shuffled(using: &random)
        let hostile = try Self.hostileRecords(topics)
        let published = Atomic(false)
        let publishing = Task {
            defer { published.store(true, ordering: .releasing) }
            let publisher = ModalityPublisher(topic: topics.raw, source: "chaos-test", rate: 4)
            for (index, chunk) in stride(from: 0, to: images.count, by: 12).enumerated() {
                _ = try await publisher.publish(Array(images[chunk..<min(images.count, chunk + 12)]), with: producer)
                if index < hostile.count { _ = try await producer.send(hostile[index].record) }
            }
            for h in hostile.dropFirst(images.count / 12) { _ = try await producer.send(h.record) }
        }
        // A kill every 3 s while the stream runs and until each kind was killed twice, the kinds
        // in turn (in a shuffled order).
        var kinds = stages.shuffled(using: &random)
        var kills: [String] = []
        while !published.load(ordering: .acquiring) || kills.count < 2 * stages.count {
            try await Task.sleep(for: .seconds(3))
            let victim = kinds.removeFirst()
            kinds.append(victim)
            try await victim.killAndRestart()
            kills.append(victim.kind)
        }
        try await publishing.value
        await producer.close()
        print("chaos: \(kills.count) SIGKILLs in order \(kills)")

        // Every image scored (duplicates allowed), every hostile record dead-lettered with its reason.
        let wanted = Set(images.map(\.metadata.imageID))
        let predictions = try await TestBroker.collect(topics.predictions, timeout: .seconds(300)) { wanted.isSubset(of: Set($0.compactMap(\.keyText))) }
        let scored = Set(predictions.compactMap(\.keyText))
        #expect(wanted.isSubset(of: scored), "not scored: \(wanted.subtracting(scored).sorted())")
        let hostileNames = Set(hostile.compactMap { $0.record.headers.text(Self.marker) })
        let letters = try await TestBroker.collect(topics.deadletter, timeout: .seconds(120)) { records in
            hostileNames.isSubset(of: Set(records.compactMap { $0.headers.text(Self.marker) }))
        }
        for (record, code) in hostile {
            let name = record.headers.text(Self.marker) ?? ""
            let found = letters.filter { $0.headers.text(Self.marker) == name }
            #expect(!found.isEmpty, "\(name) was not dead-lettered")
            #expect(found.allSatisfy { $0.headers.text(HeaderName.DeadLetter.reason) == code },
                    "\(name): reasons \(found.map { $0.headers.text(HeaderName.DeadLetter.reason) ?? "-" }), expected \(code)")
        }
        print("chaos: \(scored.intersection(wanted).count) of \(wanted.count) images scored (\(predictions.count) predictions), \(letters.count) dead letters")

        // Training settles on a consistent version: complete, loadable, finite, and no
        // contribution applied in two steps.
        var latest = 0, stable = 0, shards: [ShardAnnouncement] = []
        while stable < 3 {
            try await Task.sleep(for: .seconds(5))
            shards = try await Self.shardAnnouncements(topics)
            let newest = shards.map(\.step).max() ?? 0
            stable = newest == latest ? stable + 1 : 0
            latest = newest
        }
        var appliedIn: [String: Set<Int>] = [:]
        for s in shards { for id in s.contributions ?? [] { appliedIn[id, default: []].insert(s.step) } }
        let twice = appliedIn.filter { $0.value.count > 1 }
        #expect(latest >= 3, "training made \(latest) steps")
        #expect(twice.isEmpty, "contributions applied in more than one step: \(twice)")
        #expect(!appliedIn.keys.contains("hostile0000000000"))
        let newest = ShardAggregator.versionName(run: "v0-ft", step: latest)
        #expect(Set(shards.filter { $0.version == newest }.map(\.shard)) == Set(0..<TopicCatalog.gradients.partitions))
        let history = try await S.history(topics, named: newest)
        let version = try #require(history.named, "\(newest) does not assemble")
        _ = try ModelCheck.verified(version.file, name: newest)
        print("chaos: training ended on \(newest) (\(appliedIn.count) contributions, none twice); gate decisions \(history.decisions.count), serving \(history.serving?.announcement.version ?? "-")")
        #expect(history.serving.map { !["v-corrupt", "v-nan"].contains($0.announcement.version) } == true)

        // No stage exited on its own, and each stops cleanly.
        for s in stages { #expect(s.process.isRunning, "\(s.kind) exited with \(s.process.terminationStatus)") }
        for s in stages { s.process.terminate() }
        for s in stages {
            await s.process.exited()
            #expect(s.process.terminationStatus == 0, TestBroker.exitReport(s.process))
        }
    }

    /// Every shard announcement on xray.models now.
    static func shardAnnouncements(_ topics: TopicCatalog) async throws -> [ShardAnnouncement] {
        var shards: [ShardAnnouncement] = []
        try await KafkaConsumer.readWholeTopic(topics.models, configuration: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "chaos-reader"),
                                               logger: TestBroker.logger) { record in
            guard record.headers.text(ModelVersionRecord.Header.part) == ModelVersionRecord.Part.shard,
                  let a = try? JSONDecoder().decode(ShardAnnouncement.self, from: Data(record.value)) else { return }
            shards.append(a)
        }
        return shards
    }
}
