import ArgumentParser
import KafkaIO
import Logging
import Metrics
import MetricsServer
import Prometheus
import ServiceLifecycle
import Stages

/// Options of every stage process.
struct StageOptions: ParsableArguments {
    @Option(help: "Consumer group (default: the topic prefix and the stage's name). Instances in one group share the work.")
    var group: String?

    @Option(help: "Partition assignment: cooperative-sticky or range (eager).")
    var assignment: String = AssignmentStrategy.cooperativeSticky.rawValue

    @Option(help: "Records whose outputs may await acknowledgement at once.")
    var maxInFlight: Int = 32

    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port, logged).")
    var metricsPort: Int?

    @Option(help: "Address the metrics server binds.")
    var metricsHost: String = "0.0.0.0"

    @Option(help: "Seconds a consumer with records waiting on the broker may receive none before it reports a stall (log, xray_consumer_stalled_seconds) and reconnects with a longer fetch wait.")
    var stallAfterS: Double = 30

    func validate() throws {
        guard AssignmentStrategy(rawValue: assignment) != nil else {
            throw ValidationError("--assignment must be one of \(AssignmentStrategy.allCases.map(\.rawValue))")
        }
        guard maxInFlight > 0 else { throw ValidationError("--max-in-flight must be positive") }
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be in 0...65535") }
        guard (1...86_400).contains(stallAfterS) else { throw ValidationError("--stall-after-s must be in [1, 86400]") }
    }

    /// Runs `stage` until SIGTERM or SIGINT, then shuts down gracefully. `companions` run beside
    /// it (the scorer's model follower); `beforeConsuming` is awaited before the first record.
    func run(_ stage: any Stage, kafka options: KafkaOptions, companions: [any Service] = [],
             beforeConsuming: (@Sendable () async throws -> Void)? = nil) async throws {
        let logger = options.logger("xray.\(stage.name)")
        let kafka = try options.kafka(clientID: "xray-\(stage.name)")
        var configuration = StageRunnerConfiguration(consumer: consumer(kafka, stage: stage, prefix: options.topicPrefix), producer: ProducerConfiguration(kafka: kafka),
                                                     deadLetterTopic: options.topics.deadletter)
        configuration.maxInFlight = maxInFlight
        configuration.beforeConsuming = beforeConsuming
        // Bootstrap metrics before the runner creates its counters.
        let server = metricsPort.map { metricsServer(port: $0, logger: logger) }
        let runner = StageRunner(stage: stage, configuration: configuration, logger: logger)
        try await serve(companions + [runner] + (server.map { [$0] } ?? []), logger: logger)
    }

    /// Runs services that are not stage runners (the aggregator, the evaluator), with the
    /// metrics server when asked, until SIGTERM or SIGINT.
    func run(_ makeServices: () throws -> [any Service], logger: Logger) async throws {
        let server = metricsPort.map { metricsServer(port: $0, logger: logger) }
        try await serve(try makeServices() + (server.map { [$0] } ?? []), logger: logger)
    }

    private func serve(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        try await group.run()
    }

    /// Bootstraps swift-metrics with a Prometheus registry and returns the server for it.
    func metricsServer(port: Int, logger: Logger) -> PrometheusHTTPServer {
        Self.prometheusServer(host: metricsHost, port: port, logger: logger)
    }

    /// Bootstraps swift-metrics with a Prometheus registry and returns the server for it on HOST:PORT.
    static func prometheusServer(host: String, port: Int, logger: Logger) -> PrometheusHTTPServer {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["xray_batch_size"] = [1, 2, 4, 8, 16, 32, 64]
        factory.durationHistogramBuckets["xray_processing_seconds"] =
            [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000].map { Duration.milliseconds($0) }
        MetricsSystem.bootstrap(factory)
        return PrometheusHTTPServer(registry: registry, host: host, port: port, logger: logger)
    }

    /// The group a stage named `name` joins: `--group`, or the deployment's topic prefix and
    /// the name, so deployments sharing a cluster do not share groups.
    func groupID(_ name: String, prefix: String) -> String { group ?? prefix + name }

    /// The consumer configuration of `stage`'s group.
    func consumer(_ kafka: KafkaConfiguration, stage: any Stage, prefix: String) -> ConsumerConfiguration {
        consumer(kafka, groupID: groupID(stage.name, prefix: prefix))
    }

    /// A consumer configuration for `groupID` with these options (assignment, stall threshold).
    func consumer(_ kafka: KafkaConfiguration, groupID: String) -> ConsumerConfiguration {
        var consumer = ConsumerConfiguration(kafka: kafka, groupID: groupID)
        consumer.assignmentStrategy = AssignmentStrategy(rawValue: assignment) ?? .cooperativeSticky
        consumer.stallAfterMilliseconds = Int(stallAfterS * 1000)
        return consumer
    }
}
