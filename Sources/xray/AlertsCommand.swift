import ArgumentParser
import Foundation
import KafkaIO
import Stages
import Wire

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "Follow xray.alerts (and, with --predictions, every prediction) and show each case readably.",
        discussion: "One line per case: level, image id, findings with probabilities and thresholds, the image's age and per-stage latency, source, patient, model version. Nothing is committed.")

    @OptionGroup var kafka: KafkaOptions
    @Flag(help: "Show every prediction, not only the urgent cases.") var predictions = false
    @Flag(help: "Start at the oldest record instead of the newest.") var fromBeginning = false
    @Option(help: "Stop after this many cases.") var max: Int?
    @Option(help: "Stop after this many seconds without a case.") var idleTimeout: Double?
    @Flag(help: "Print the JSON values instead (for piping into a pager bridge).") var json = false

    func validate() throws {
        if let idleTimeout, !(idleTimeout > 0 && idleTimeout <= 86_400) {
            throw ValidationError("--idle-timeout must be in (0, 86400] seconds")
        }
    }

    func run() async throws {
        let topic = predictions ? kafka.topics.predictions : kafka.topics.alerts
        let configuration = ConsumerConfiguration(kafka: try kafka.kafka(clientID: "xray-alerts"), groupID: "xray-alerts")
        let consumer = try KafkaConsumer(configuration: configuration, subscription: .wholeTopic(topic, fromBeginning: fromBeginning),
                                         logger: kafka.logger("xray.alerts"))
        let decoder = JSONDecoder()
        var count = 0
        while max.map({ count < $0 }) ?? true {
            guard let record = await consumer.next(timeout: idleTimeout.map { .milliseconds(Int($0 * 1000)) }) else { break }
            count += 1
            let text: String
            if json {
                text = String(decoding: record.value, as: UTF8.self)
            } else if predictions, let p = try? decoder.decode(Prediction.self, from: Data(record.value)) {
                text = CaseView.line(p, now: epochMilliseconds())
            } else if let a = try? decoder.decode(Alert.self, from: Data(record.value)) {
                text = CaseView.line(a, now: epochMilliseconds())
            } else {
                text = "unreadable record \(record.topic)[\(record.partition)]@\(record.offset) (not schema \(Prediction.schemaVersion) JSON)"
            }
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
        }
        await consumer.close()
    }
}
