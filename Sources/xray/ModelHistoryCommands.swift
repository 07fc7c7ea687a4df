import ArgumentParser
import Foundation
import KafkaIO
import ModelVersions
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
                kafka: try kafka.kafka(clientID: "xray-model-fetch"), groupID: "xray-model-fetch"), logger: logger, named: version,
                loading: version == "latest" ? [.latest] : version == "serving" ? [.serving] : [.named])
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
                                                      logger: logger, named: version, loading: [.named])
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

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put an earlier published or promoted version back into service, recorded as an operator's decision.",
            discussion: "Scorers and preprocessors switch to it within seconds. Nothing is republished: a new head on xray.models.heads points at the version's records, which are checked first.")

        @OptionGroup var kafka: KafkaOptions
        @Argument(help: "The published or promoted version to serve again.") var version: String
        @Option(help: "Why (recorded with the decision; required).") var reason: String
        @Flag(help: "Print the decision as JSON.") var json = false

        func run() async throws {
            let logger = kafka.logger("xray.model-rollback")
            let clientKafka = try kafka.kafka(clientID: "xray-model-rollback")
            let history = try await ModelHistory.read(topic: kafka.topics.models, consumer: ConsumerConfiguration(kafka: clientKafka, groupID: "xray-model-rollback"),
                                                      logger: logger, named: version, loading: [.named])
            guard var head = history.servingHeads.last(where: { $0.version == version }) else {
                throw ValidationError("\(version) is not a published or promoted version on \(kafka.topics.models); see xray model list")
            }
            guard history.named != nil else { throw ValidationError("\(version) is not intact on \(kafka.topics.models) any more (see the warnings above); it cannot serve") }
            let previous = history.servingHead?.version
            head.rollback = true
            head.reason = reason
            head.decidedBy = "operator"
            head.writtenAt = ISO8601DateFormatter().string(from: Date())
            let decision = GateDecision(version: version, promoted: true, forced: true, serving: previous,
                                        reason: "rollback: \(reason)", decidedBy: "operator", decidedAt: head.writtenAt)
            let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: clientKafka), logger: logger)
            do {
                try await producer.sendHead(head, headsTopic: kafka.topics.modelHeads, logger: logger)
                try await producer.sendInOrder([try ModelVersionCodec.record(decision, headsTopic: kafka.topics.modelHeads)], logger: logger)
            } catch {
                await producer.close()
                throw error
            }
            await producer.close()
            if json {
                print(String(decoding: try JSONEncoder.sorted.encode(decision), as: UTF8.self))
            } else {
                print("rolled back to \(version) (was serving \(previous ?? "nothing")); scorers switch to it now")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the published and promoted versions and the newest trained ones, with evaluations and gate decisions.",
            discussion: "Reads xray.models.heads only. The serving version is marked with *.")

        @OptionGroup var kafka: KafkaOptions
        @Option(help: "How many of the newest trained versions to list.") var trained = 10
        @Flag(help: "Print JSON (the registry: entries and the serving version).") var json = false

        func run() async throws {
            let logger = kafka.logger("xray.model-list")
            let history = try await ModelHistory.read(topic: kafka.topics.models, consumer: ConsumerConfiguration(
                kafka: try kafka.kafka(clientID: "xray-model-list"), groupID: "xray-model-list"), logger: logger, loading: [])
            let registry = ModelRegistry(history, trained: max(0, trained))
            if json {
                print(String(decoding: try JSONEncoder.sorted.encode(registry), as: UTF8.self))
                return
            }
            print("  version                          kind       run/step            written               MB    mean AUC  decision")
            for e in registry.entries {
                let runStep = e.run.map { "\($0)/\(e.step ?? 0)" } ?? "-"
                let auc = e.meanAUC.map { String(format: "%.4f", $0) } ?? "-"
                let decision = e.rollbackReason.map { "rolled back to (\($0))" }
                    ?? e.decision.map { "\($0.promoted ? "promoted" : "held")\($0.forced ? " by \($0.decidedBy)" : ""): \($0.reason)" } ?? "-"
                print("\(e.serving ? "*" : " ") \(pad(e.version, 32)) \(pad(e.kind.rawValue, 10)) \(pad(runStep, 19)) \(pad(e.writtenAt, 21)) "
                      + "\(pad(String(format: "%.1f", Double(e.bytes) / 1_048_576), 5)) \(pad(auc, 9)) \(decision)")
                if let auc = e.auc, !auc.isEmpty {
                    print("    AUC per label: " + auc.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.3f", $0.value))" }.joined(separator: ", "))
                }
                if let sites = e.siteAUC, !sites.isEmpty {
                    print("    mean AUC per site: " + sites.sorted { $0.key < $1.key }.map { site, auc in
                        "\(site) \(String(format: "%.3f", auc))" + (e.siteImages?[site].map { " on \($0) images" } ?? "")
                    }.joined(separator: ", "))
                }
                if let points = e.decision?.operatingPoints, !points.isEmpty {
                    print("    thresholds: " + describe(points))
                }
                for (site, points) in (e.decision?.siteOperatingPoints ?? [:]).sorted(by: { $0.key < $1.key }) where !points.isEmpty {
                    print("    thresholds at \(site): " + describe(points))
                }
            }
            print("serving: \(registry.serving ?? "nothing")")
        }

        private func describe(_ points: [String: OperatingPoint]) -> String {
            points.sorted { $0.key < $1.key }.map { label, p in
                let figures = "sensitivity \(p.sensitivity.map { String(format: "%.3f", $0) } ?? "-"), specificity \(p.specificity.map { String(format: "%.3f", $0) } ?? "-") on \(p.positives)+/\(p.negatives)-"
                return "\(label) \(String(format: "%.3f", p.threshold)) (\(p.chosen ? "chosen" : "kept"); \(figures))"
            }.joined(separator: ", ")
        }

        private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
    }
}

extension JSONEncoder {
    /// Keys sorted, for output scripts diff and parse.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
