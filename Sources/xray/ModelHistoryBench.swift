import ArgumentParser
import Engine
import Foundation
import KafkaIO
import Logging
import ModelVersions
import Stages
import Synchronization
import Wire

extension BenchCommand {
    /// Start-up cost against the number of versions written: writes a history of trained
    /// versions (shard by shard, as aggregators do, a promotion every --promote-every) and, at
    /// each size in --versions, times a fresh scorer, a fresh trainer and `model fetch latest`.
    struct ModelHistoryBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "model-history",
            abstract: "Start-up time and bytes read against the number of model versions (run by Ops/bench-model-history).",
            discussion: "Writes to the topics under --topic-prefix (use a broker of its own: Ops/bench-model-history starts one).")

        @OptionGroup var kafka: KafkaOptions
        @Option(help: "small-cnn or resnet18.") var architecture: String = "small-cnn"
        @Option(parsing: .upToNextOption, help: "History sizes to measure at, ascending.") var versions: [Int] = [10, 100, 1000]
        @Option(help: "A promotion after every this many trained versions.") var promoteEvery: Int = 10
        @Option(help: "Shards per trained version (partitions of xray.gradients).") var shards: Int = 4

        func validate() throws {
            guard !versions.isEmpty, versions.allSatisfy({ $0 >= 1 }), versions == versions.sorted() else {
                throw ValidationError("--versions takes ascending positive counts")
            }
            guard promoteEvery >= 1, (1...64).contains(shards) else { throw ValidationError("--promote-every ≥ 1, --shards in 1...64") }
        }

        func run() async throws {
            guard let arch = Architecture(rawValue: architecture), [.smallCNN, .resnet18].contains(arch) else {
                throw ValidationError("--architecture is small-cnn or resnet18")
            }
            let logger = kafka.logger("xray.bench")
            let clientKafka = try kafka.kafka(clientID: "xray-bench")
            let topics = kafka.topics
            let admin = try KafkaAdmin(configuration: clientKafka, logger: logger)
            _ = try await admin.apply(topics.settings)
            let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: clientKafka), logger: logger)
            let size = arch == .smallCNN ? 64 : 224
            let spec = PreprocessSpec(resize: size, crop: size, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25])
            let v0 = try ModelFile.initialized(architecture: arch, labels: ["Pneumonia"], preprocess: spec, seed: 1)
            let base = try await producer.sendVersion(try ModelVersionCodec.records(for: try v0.encoded(), manifest: v0.manifest, version: "v0",
                                                                                    topic: topics.models),
                                                      headsTopic: topics.modelHeads, logger: logger)
            let flat = Array(v0.network.store.flatValues)
            let layout = ShardLayout(parameterCount: flat.count, shards: shards)
            print("\(arch.rawValue): \(flat.count) parameters, \(shards) shards, a promotion every \(promoteEvery) steps; model file \(base.bytes) bytes")
            print("versions | written MB | scorer s / MB read | trainer s (first gradient) / MB read | fetch latest s / MB read")
            var written = 0, bytesWritten = base.bytes
            for target in versions {
                while written < target {
                    written += 1
                    var values = flat
                    values[written % values.count] += 1e-3  // every version distinct
                    for shard in 0..<layout.shards {
                        let range = layout.range(shard)
                        let announcement = ShardAnnouncement(version: ShardAggregator.versionName(run: "v0-ft", step: written), run: "v0-ft",
                                                             step: written, base: "v0", shard: shard, shards: layout.shards,
                                                             start: range.lowerBound, count: range.count, chunks: 0, crc32: "",
                                                             manifest: v0.manifest, publishedAt: ISO8601DateFormatter().string(from: Date()))
                        let head = try await producer.sendVersion(
                            try ModelVersionCodec.shardRecords(values: Array(values[range]), state: shard == 0 ? v0.network.floatState : nil,
                                                               announcement: announcement, topic: topics.models),
                            headsTopic: topics.modelHeads, base: base, logger: logger)
                        bytesWritten += head.bytes
                    }
                    if written % promoteEvery == 0 {
                        let records = try ModelVersionCodec.records(for: try v0.encoded(), manifest: v0.manifest,
                                                                    version: ShardAggregator.versionName(run: "v0-ft", step: written),
                                                                    topic: topics.models, promotion: true, trained: ("v0-ft", written, "v0"))
                        bytesWritten += try await producer.sendVersion(records, headsTopic: topics.modelHeads, logger: logger).bytes
                    }
                }
                let scorer = try await measure("scorer-\(target)", kinds: [.published, .promoted], clientKafka, logger)
                let trainer = try await measure("trainer-\(target)", kinds: [.published, .trained], clientKafka, logger, gradient: true)
                let t0 = ContinuousClock.now
                let history = try await ModelHistory.read(topic: topics.models, consumer: ConsumerConfiguration(kafka: clientKafka, groupID: "bench-fetch-\(target)"),
                                                          logger: logger, named: "latest", loading: [.latest])
                let fetch = (ContinuousClock.now - t0) / .seconds(1)
                guard history.latest != nil else { throw ValidationError("model fetch latest found nothing") }
                func mb(_ bytes: Int) -> String { String(format: "%.1f", Double(bytes) / 1_048_576) }
                print(String(format: "%8d | %10@ | %6.2f / %@ (%@) | %6.2f / %@ (%@) | %6.2f / %@",
                             target, mb(bytesWritten), scorer.seconds, mb(scorer.bytes), scorer.version,
                             trainer.seconds, mb(trainer.bytes), trainer.version, fetch, mb(history.read.bytes)))
            }
            await producer.close()
        }

        /// Seconds until a fresh follower of `kinds` is ready (and, with `gradient`, has computed
        /// one gradient on 8 random inputs), the bytes it read and the version it took.
        private func measure(_ name: String, kinds: Set<ModelAnnouncement.Kind>, _ kafka: KafkaConfiguration, _ logger: Logger,
                             gradient: Bool = false) async throws -> (seconds: Double, bytes: Int, version: String) {
            let file = Mutex<[UInt8]?>(nil)
            let follower = ModelFollower(topic: self.kafka.topics.models, consumer: ConsumerConfiguration(kafka: kafka, groupID: "bench-\(name)"),
                                         logger: logger, stage: name, assembling: kinds) { _, bytes, _ in file.withLock { $0 = bytes } }
            let t0 = ContinuousClock.now
            let running = Task { try await follower.run() }
            defer { running.cancel() }
            try await follower.ready()
            if gradient, let bytes = file.withLock({ $0 }) {
                let m = try ModelFile.decode(bytes, name: "bench")
                let s = m.manifest.input, n = 8
                var generator = SeededGenerator(seed: 7)
                let inputs = (0..<(n * s.reduce(1, *))).map { _ in Float(generator.next() % 1000) / 1000 }
                let x = UnsafeMutablePointer<Float>.allocate(capacity: inputs.count)
                defer { x.deallocate() }
                x.initialize(from: inputs, count: inputs.count)
                let loss = SigmoidCrossEntropy(labels: m.manifest.labels.count, positiveWeights: m.manifest.labels.map { _ in 1 })
                m.network.store.zeroGradients()
                _ = loss.forward(m.network.forward(Activation(data: x, shape: Shape(n: n, c: s[0], h: s[1], w: s[2])), mode: .training),
                                 targets: [Float](repeating: 0, count: n * m.manifest.labels.count))
                m.network.backward(loss.backward())
            }
            return ((ContinuousClock.now - t0) / .seconds(1), follower.read.bytes, follower.version ?? "none")
        }
    }
}
