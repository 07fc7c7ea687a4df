import ArgumentParser
import Foundation
import KafkaIO
import Stages
import Wire

extension ModelCommand {
    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a version from xray.models to a model file (with its evaluation in the manifest).",
            discussion: "VERSION is a version id, `latest` (the newest published or trained version) or `serving` (what scorers serve).")

        @OptionGroup var kafka: KafkaOptions
        @Argument(help: "A version id, latest or serving.") var version: String = "latest"
        @Option(help: "Where to write the model file.") var out: String

        func run() async throws {
            let logger = kafka.logger("xray.model-fetch")
            let history = try await ModelHistory.read(topic: kafka.topics.models, consumer: ConsumerConfiguration(
                kafka: try kafka.kafka(clientID: "xray-model-fetch"), groupID: "xray-model-fetch"), logger: logger, named: version)
            let found = version == "latest" ? history.latest : version == "serving" ? history.serving : history.named
            guard let (announcement, file) = found else { throw ValidationError("no intact version \(version) on \(kafka.topics.models)") }
            logger.info("read \(history.read.records) records (\(history.read.bytes) bytes) of \(kafka.topics.models); passed over \(history.read.passedOver) of other versions")
            var model = try ModelFile.decode(file, name: "model version \(announcement.version)")
            model.manifest.version = announcement.version
            if let e = history.evaluations[announcement.version] {
                model.manifest.metrics = (model.manifest.metrics ?? [:]).merging(e.metrics) { $1 }
            }
            try model.write(to: URL(fileURLWithPath: out))
            let auc = model.manifest.metrics?["auc.mean"].map { String(format: ", held-out mean AUC %.4f", $0) } ?? ""
            print("wrote \(out): version \(announcement.version) (\(announcement.kind.rawValue)), \(model.manifest.architecture)\(auc)")
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Force a version into triage, whatever the gate decided: republish it whole and record the decision.")

        @OptionGroup var kafka: KafkaOptions
        @Argument(help: "The version id.") var version: String
        @Option(help: "Why (recorded with the decision).") var reason: String = "promoted by an operator"

        func run() async throws {
            let logger = kafka.logger("xray.model-promote")
            let clientKafka = try kafka.kafka(clientID: "xray-model-promote")
            let topic = kafka.topics.models
            let history = try await ModelHistory.read(topic: topic, consumer: ConsumerConfiguration(kafka: clientKafka, groupID: "xray-model-promote"),
                                                      logger: logger, named: version)
            guard let named = history.named else { throw ValidationError("no intact version \(version) on \(topic)") }
            let decision = GateDecision(version: version, promoted: true, forced: true, serving: history.servingHead?.version,
                                        reason: reason, decidedBy: "operator", decidedAt: ISO8601DateFormatter().string(from: Date()))
            let records = try ModelVersionCodec.promotionRecords(named, metrics: history.evaluations[version]?.metrics ?? [:], topic: topic)
            let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: clientKafka), logger: logger)
            do {
                try await producer.sendVersion(records, headsTopic: kafka.topics.modelHeads, logger: logger)
                try await producer.sendInOrder([try ModelVersionCodec.record(decision, headsTopic: kafka.topics.modelHeads)], logger: logger)
            } catch {
                await producer.close()
                throw error
            }
            await producer.close()
            print("promoted \(version) (was serving \(history.servingHead?.version ?? "nothing")); scorers switch to it now")
        }
    }
}
