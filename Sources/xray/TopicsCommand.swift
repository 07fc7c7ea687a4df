import ArgumentParser
import KafkaIO
import Stages
import Wire

struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics", abstract: "Create, update and list the system's topics (see Topics/).",
        subcommands: [Apply.self, List.self])

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create missing topics, add partitions and set configs as Topics/ says.")
        @OptionGroup var kafka: KafkaOptions

        func run() async throws {
            let logger = kafka.logger("xray.topics")
            let admin = try KafkaAdmin(configuration: try kafka.kafka(clientID: "xray-topics"), logger: logger)
            let changes = try await admin.apply(kafka.topics.settings)
            for spec in TopicCatalog.all {
                let name = kafka.topics.name(spec)
                print("\(name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(changes[name]?.description ?? "?")")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show each topic's partitions on the cluster beside Topics/.")
        @OptionGroup var kafka: KafkaOptions

        func run() async throws {
            let logger = kafka.logger("xray.topics")
            let admin = try KafkaAdmin(configuration: try kafka.kafka(clientID: "xray-topics"), logger: logger)
            let counts = try await admin.partitionCounts()
            print("topic                        partitions (cluster / Topics/)   retention.ms   max bytes")
            for spec in TopicCatalog.all {
                let name = kafka.topics.name(spec)
                let actual = counts[name].map(String.init) ?? "missing"
                print("\(name.padding(toLength: 28, withPad: " ", startingAt: 0)) \(actual) / \(spec.partitions)".padding(toLength: 62, withPad: " ", startingAt: 0)
                      + "\(spec.retentionMilliseconds)".padding(toLength: 15, withPad: " ", startingAt: 0) + "\(spec.maxRecordBytes)")
            }
        }
    }
}
