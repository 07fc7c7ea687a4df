import ArgumentParser
import Foundation
import KafkaIO
import Logging
import Wire

/// Options every command that talks to Kafka shares.
struct KafkaOptions: ParsableArguments {
    @Option(help: "Comma-separated bootstrap brokers (env XRAY_BROKERS).")
    var brokers: String = ProcessInfo.processInfo.environment["XRAY_BROKERS"] ?? KafkaConfiguration.defaultBrokers

    @Option(name: .customShort("X"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("A librdkafka property, as key=value; repeatable (as in kcat).", valueName: "key=value"))
    var properties: [String] = []

    @Option(help: "Prefix of every topic name, to share a cluster between deployments (env XRAY_TOPIC_PREFIX).")
    var topicPrefix: String = ProcessInfo.processInfo.environment["XRAY_TOPIC_PREFIX"] ?? ""

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    var topics: TopicCatalog { TopicCatalog(prefix: topicPrefix) }

    func validate() throws {
        for p in properties where !p.contains("=") {
            throw ValidationError("-X \(p): expected key=value")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
    }

    /// The shared Kafka configuration; fails with what to run if librdkafka is too old.
    func kafka(clientID: String) throws -> KafkaConfiguration {
        try Librdkafka.requireMinimumVersion()
        var raw: [String: String] = [:]
        for p in properties {
            let parts = p.split(separator: "=", maxSplits: 1)
            raw[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return KafkaConfiguration(brokers: brokers, clientID: clientID, properties: raw)
    }

    /// Sets up logging to standard error and returns a logger for `label`.
    func logger(_ label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingBootstrap.once(level: level)
        return Logger(label: label)
    }
}

/// swift-log may be bootstrapped once per process.
enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    static func once(level: Logger.Level) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
