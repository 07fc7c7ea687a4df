import ArgumentParser
import KafkaIO
import Logging
import ServiceLifecycle
import Stages

/// Options of every stage process.
struct StageOptions: ParsableArguments {
    @Option(help: "Consumer group (default: the stage's name). Instances in one group share the work.")
    var group: String?

    @Option(help: "Partition assignment: cooperative-sticky or range (eager).")
    var assignment: String = AssignmentStrategy.cooperativeSticky.rawValue

    @Option(help: "Records whose outputs may await acknowledgement at once.")
    var maxInFlight: Int = 32

    func validate() throws {
        guard AssignmentStrategy(rawValue: assignment) != nil else {
            throw ValidationError("--assignment must be one of \(AssignmentStrategy.allCases.map(\.rawValue))")
        }
        guard maxInFlight > 0 else { throw ValidationError("--max-in-flight must be positive") }
    }

    /// Runs `stage` until SIGTERM or SIGINT, then shuts down gracefully. `companions` run beside
    /// it (the scorer's model follower); `beforeConsuming` is awaited before the first record.
    func run(_ stage: any Stage, kafka options: KafkaOptions, companions: [any Service] = [],
             beforeConsuming: (@Sendable () async throws -> Void)? = nil) async throws {
        let logger = options.logger("xray.\(stage.name)")
        let kafka = try options.kafka(clientID: "xray-\(stage.name)")
        var configuration = StageRunnerConfiguration(consumer: consumer(kafka, stage: stage), producer: ProducerConfiguration(kafka: kafka),
                                                     deadLetterTopic: options.topics.deadletter)
        configuration.maxInFlight = maxInFlight
        configuration.beforeConsuming = beforeConsuming
        let runner = StageRunner(stage: stage, configuration: configuration, logger: logger)
        let services = ServiceGroup(configuration: .init(services: companions + [runner], gracefulShutdownSignals: [.sigterm, .sigint],
                                                         logger: logger))
        try await services.run()
    }

    /// The consumer configuration of `stage`'s group.
    func consumer(_ kafka: KafkaConfiguration, stage: any Stage) -> ConsumerConfiguration {
        var consumer = ConsumerConfiguration(kafka: kafka, groupID: group ?? stage.name)
        consumer.assignmentStrategy = AssignmentStrategy(rawValue: assignment)!
        return consumer
    }
}
