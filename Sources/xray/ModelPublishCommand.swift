import ArgumentParser
import Foundation
import KafkaIO
import ModelVersions
import Stages
import Wire

extension ModelCommand {
    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a model file to xray.models as a new version (chunks with CRC-32s, then its announcement).",
            discussion: """
                Scorers switch to the new version between batches. --urgent and --threshold set the \
                triage policy recorded in the version's manifest (default: threshold 0.5; urgent: \
                \(TriagePolicy.defaultUrgent.joined(separator: ", ")), those the model predicts).
                """)

        @OptionGroup var kafka: KafkaOptions
        @Argument(help: "A model file (from `xray model init` or `xray model import`).") var file: String
        @Option(help: "Version id (default: the file's name and the UTC time).") var version: String?
        @Option(help: "Comma-separated labels that make an image urgent.") var urgent: String?
        @Option(help: "A label's operating threshold, LABEL=P (repeatable).") var threshold: [String] = []
        @Option(help: "Threshold for labels without their own.") var defaultThreshold: Float?

        func run() async throws {
            var model = try ModelFile.read(URL(fileURLWithPath: file))
            var policy = model.manifest.triagePolicy
            if let urgent { policy.urgent = try parseLabels(urgent) }
            if let defaultThreshold { policy.defaultThreshold = defaultThreshold }
            for entry in threshold {
                let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, let p = Float(parts[1]) else { throw ValidationError("--threshold takes LABEL=P, got \(entry)") }
                policy.thresholds[parts[0]] = p
            }
            model.manifest.triage = policy
            let stamp = ISO8601DateFormatter().string(from: Date()).filter { $0.isNumber }
            let version = self.version ?? "\(URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent)-\(stamp)"
            model.manifest.version = version
            if let problem = model.manifest.problem { throw ValidationError(problem) }

            let records = try ModelVersionCodec.records(for: try model.encoded(), manifest: model.manifest, version: version,
                                                    topic: kafka.topics.models)
            let logger = kafka.logger("xray.model-publish")
            let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: try kafka.kafka(clientID: "xray-model-publish")),
                                             logger: logger)
            let head: ModelHead
            do {
                // Chunks, then the announcement once all are acknowledged, then the head that
                // lets readers find the version without reading the topic's history.
                head = try await producer.sendVersion(records, headsTopic: kafka.topics.modelHeads, logger: logger)
            } catch {
                await producer.close()
                throw error
            }
            await producer.close()
            let bytes = records.dropLast().reduce(0) { $0 + $1.value.count }
            print("published \(version) to \(kafka.topics.models) (offsets \(head.first)...\(head.last)): \(model.manifest.architecture), "
                + "\(model.manifest.labels.count) labels, \(records.count - 1) chunks, \(bytes) bytes; urgent: \(policy.urgent.joined(separator: ", "))")
        }
    }
}
