import ArgumentParser
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

    func run() async throws {
        let logger = kafka.logger("xray.tail")
        let name = TopicCatalog.all.contains { $0.name == "xray.\(topic)" } ? kafka.topics.name(TopicCatalog.all.first { $0.name == "xray.\(topic)" }!) : topic
        let configuration = ConsumerConfiguration(kafka: try kafka.kafka(clientID: "xray-tail"), groupID: "xray-tail")
        let consumer = try KafkaConsumer(configuration: configuration,
                                         subscription: .wholeTopic(name, fromBeginning: fromBeginning), logger: logger)
        var count = 0
        while max.map({ count < $0 }) ?? true {
            guard let record = await consumer.next(timeout: idleTimeout.map { .milliseconds(Int($0 * 1000)) }) else { break }
            print(RecordDescriber.describe(record))
            count += 1
        }
        await consumer.close()
    }
}
