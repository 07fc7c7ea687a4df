import ArgumentParser
import Foundation
import KafkaIO
import Stages
import Wire

struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print the records of a topic: key, headers, and a readable summary of the value.",
        discussion: "TOPIC may be a full name or a short one (raw, decoded, tensors, deadletter...). Nothing is committed.")

    @OptionGroup var kafka: KafkaOptions
    @Argument(help: "The topic to read.") var topic: String
    @Option(help: "Stop after this many records.") var max: Int?
    @Flag(help: "Start at the oldest record instead of the newest.") var fromBeginning = false
    @Option(help: "Stop after this many seconds without a record.") var idleTimeout: Double?
    @Flag(help: "One line per record: key, labels, value summary, time since acquisition.") var oneline = false

    func validate() throws {
        if let idleTimeout, !(idleTimeout > 0 && idleTimeout <= 86_400) {
            throw ValidationError("--idle-timeout must be in (0, 86400] seconds")
        }
    }

    func run() async throws {
        let logger = kafka.logger("xray.tail")
        let name = TopicCatalog.all.first { $0.name == "xray.\(topic)" }.map { kafka.topics.name($0) } ?? topic
        let configuration = ConsumerConfiguration(kafka: try kafka.kafka(clientID: "xray-tail"), groupID: "xray-tail")
        let consumer = try KafkaConsumer(configuration: configuration,
                                         subscription: .wholeTopic(name, fromBeginning: fromBeginning), logger: logger)
        var count = 0
        while max.map({ count < $0 }) ?? true {
            guard let record = await consumer.next(timeout: idleTimeout.map { .milliseconds(Int($0 * 1000)) }) else { break }
            // Written unbuffered: a line per record as it arrives, even into a pipe or a file.
            let text = (oneline ? RecordDescriber.oneLine(record) : RecordDescriber.describe(record)) + "\n"
            FileHandle.standardOutput.write(Data(text.utf8))
            count += 1
        }
        await consumer.close()
    }
}
