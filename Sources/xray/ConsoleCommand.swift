import ArgumentParser
import Console
import KafkaIO
import ServiceLifecycle

struct ConsoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Serve the operator's console: a live web page of the flow, latency, worklist, model and dead letters.",
        discussion: """
            Reads only the cluster (and the /metrics URLs given with --metrics): records in and \
            out per second and lag per topic and consumer group, with each group's instances; \
            arrival → predicted latency per hop (p50/p95/p99 over the last 5 minutes, from the \
            predictions' stage times); the urgent cases newest first with their findings, \
            thresholds, model version and ground truth when the images carry labels; the version \
            serving, the gate's decisions with their held-out AUC, the registry, and the training \
            loss and learning rate read from the aggregators' /metrics; dead letters by stage and \
            reason. Plots are SVG drawn by the server; the page reloads its panel every 2 s. \
            Nothing is committed and no group is joined.
            """)

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Port of the page (0: any free port, logged).") var port: Int = 8080
    @Option(help: "Address the page binds (0.0.0.0 to reach it from other machines).") var host: String = "127.0.0.1"
    @Option(name: .customLong("metrics"), help: "An aggregator's /metrics URL, for the training loss and learning rate (repeatable).")
    var metrics: [String] = []
    @Option(help: "Records read back from the end of each partition at start.") var backlog: Int = 300

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard (0...100_000).contains(backlog) else { throw ValidationError("--backlog must be in 0...100000") }
        for url in metrics where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ValidationError("--metrics \(url): give an http:// URL, for example http://127.0.0.1:9101/metrics")
        }
    }

    func run() async throws {
        let logger = kafka.logger("xray.console")
        var settings = ConsoleService.Settings()
        settings.host = host
        settings.port = port
        settings.metricsURLs = metrics
        settings.backlog = Int64(backlog)
        let console = ConsoleService(kafka: try kafka.kafka(clientID: "xray-console"), topics: kafka.topics, settings: settings, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [console], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
