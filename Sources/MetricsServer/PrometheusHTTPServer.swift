public import Logging
public import Prometheus
public import ServiceLifecycle

/// Serves a Prometheus registry at `GET /metrics` (text exposition format 0.0.4) as a
/// `Service`: it binds when run and closes on graceful shutdown. Any other path answers 404.
public final class PrometheusHTTPServer: Service {
    public let registry: PrometheusCollectorRegistry
    public let host: String
    public let port: Int
    private let server: HTTPService

    public init(registry: PrometheusCollectorRegistry, host: String = "0.0.0.0", port: Int, logger: Logger) {
        self.registry = registry
        self.host = host
        self.port = port
        server = HTTPService(host: host, port: port, name: "metrics", mainPath: "/metrics", logger: logger) { path, _ in
            guard path == "/metrics" else { return .text("not found: metrics are at /metrics\n", status: 404) }
            var body: [UInt8] = []
            registry.emit(into: &body)
            return HTTPAnswer(contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
        }
    }

    public func run() async throws { try await server.run() }
}
