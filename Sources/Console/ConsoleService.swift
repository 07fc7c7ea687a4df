import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
public import KafkaIO
public import Logging
import MetricsServer
import ModelVersions
public import ServiceLifecycle
import Synchronization
public import Wire

/// `xray console`: reads the cluster and serves the operator's page. Four loops feed one
/// `ConsoleModel`: a reader of xray.predictions, xray.alerts and xray.deadletter (outside any
/// group, nothing committed, starting `backlog` records before each partition's end); a look at
/// every topic's end offsets and the consumer groups' members and commits each `interval`
/// (`GroupWatch` says which groups are asked for their commits); the model registry from
/// xray.models.heads every `registryInterval`; and the training figures from the `/metrics` URLs
/// given. The page is rendered from the model on each request.
public final class ConsoleService: Service {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        public var port = 8080
        public var interval: Duration = .seconds(2)
        public var registryInterval: Duration = .seconds(5)
        public var backlog: Int64 = 300
        public var metricsURLs: [String] = []
        public init() {}
    }

    private let kafka: KafkaConfiguration
    private let topics: TopicCatalog
    private let settings: Settings
    private let logger: Logger
    private let state: SharedModel
    private let http: HTTPService
    /// Which groups to ask for their commits at each look.
    private let groupWatch = Mutex(GroupWatch())

    public init(kafka: KafkaConfiguration, topics: TopicCatalog, settings: Settings, logger: Logger) {
        self.kafka = kafka
        self.topics = topics
        self.settings = settings
        self.logger = logger
        let state = SharedModel(ConsoleModel(topics: topics))
        self.state = state
        let brokers = kafka.brokers
        http = HTTPService(host: settings.host, port: settings.port, name: "console", logger: logger) { path, _ in
            switch path {
            case "/", "/index.html":
                let page = state.withLock { ConsolePage.page($0, brokers: brokers) }
                return HTTPAnswer(contentType: "text/html; charset=utf-8", body: Array(page.utf8))
            case "/panel":
                let panel = state.withLock { ConsolePage.panel($0) }
                return HTTPAnswer(contentType: "text/html; charset=utf-8", body: Array(panel.utf8))
            case "/healthz":
                return .text("ok\n")
            default:
                return nil
            }
        }
    }

    public func run() async throws {
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        await withDiscardingTaskGroup { group in
            group.addTask { try? await self.http.run() }
            group.addTask { await self.readRecords(admin) }
            group.addTask { await self.every(self.settings.interval) { try await self.lookAtFlow(admin) } }
            group.addTask { await self.every(self.settings.registryInterval) { try await self.readRegistry() } }
            if !settings.metricsURLs.isEmpty {
                group.addTask { await self.every(self.settings.interval) { await self.scrapeTraining() } }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// Runs `body` now and then every `interval` until cancelled; an error is shown on the page.
    private func every(_ interval: Duration, _ body: @Sendable () async throws -> Void) async {
        while !Task.isCancelled {
            do { try await body() } catch is CancellationError { return } catch {
                logger.warning("console: \(error)")
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func lookAtFlow(_ admin: KafkaAdmin) async throws {
        do {
            let names = TopicCatalog.all.map { topics.name($0) }
            let ends = try await admin.endOffsets(topics: names)
            let groups = try await admin.consumerGroups()
            let now = Date().timeIntervalSince1970
            let asked = groupWatch.withLock { $0.groupsToAsk(listed: groups, now: now) }
            var committed: [String: [TopicPartition: Int64]] = [:]
            for (group, answer) in try await admin.committedOffsets(groups: asked) {
                // A group deleted since the listing has no answer; it is asked again next time.
                guard case .success(let all) = answer else { continue }
                let offsets = all.filter { names.contains($0.key.topic) }
                groupWatch.withLock { $0.learned(group, readsWatched: !offsets.isEmpty, at: now) }
                if !offsets.isEmpty { committed[group] = offsets }
            }
            let sample = FlowTracker.Sample(at: Date().timeIntervalSince1970, ends: ends,
                                            groups: groups.filter { committed[$0.name] != nil }, committed: committed)
            state.withLock { $0.flow.add(sample); $0.problems["cluster"] = nil }
        } catch {
            state.withLock { $0.problems["cluster"] = "cannot read offsets and groups: \(error) (is the broker up?)" }
            throw error
        }
    }

    private func readRegistry() async throws {
        let consumer = ConsumerConfiguration(kafka: kafka, groupID: "xray-console")
        do {
            let history = try await ModelHistory.read(topic: topics.models, consumer: consumer, logger: logger, loading: [])
            state.withLock { $0.update(history: history); $0.problems["registry"] = nil }
        } catch {
            state.withLock { $0.problems["registry"] = "cannot read \(topics.modelHeads): \(error)" }
            throw error
        }
    }

    private func scrapeTraining() async {
        var loss: Double?, rate: Double?
        for url in settings.metricsURLs {
            guard let u = URL(string: url), let (data, _) = try? await URLSession.shared.data(from: u) else {
                state.withLock { $0.problems["metrics \(url)"] = "no answer" }
                continue
            }
            let text = String(decoding: data, as: UTF8.self)
            loss = loss ?? PrometheusText.sum(of: "xray_training_loss", in: text)
            rate = rate ?? PrometheusText.sum(of: "xray_learning_rate", in: text)
            state.withLock { $0.problems["metrics \(url)"] = nil }
        }
        let now = Date().timeIntervalSince1970
        state.withLock { $0.addTraining(at: now, loss: loss, learningRate: rate) }
    }

    /// Follows the three topics from `backlog` records before their ends; topics that do not
    /// exist yet are looked for again until they do.
    private func readRecords(_ admin: KafkaAdmin) async {
        let wanted = [topics.predictions, topics.alerts, topics.deadletter]
        var started: Set<String> = []
        var consumers: [KafkaConsumer] = []
        while !Task.isCancelled {
            if started.count < wanted.count, let ends = try? await admin.watermarks(topics: wanted.filter { !started.contains($0) }),
               !ends.isEmpty {
                let start = ends.mapValues { max($0.low, $0.high - settings.backlog) }
                let configuration = ConsumerConfiguration(kafka: kafka, groupID: "xray-console")
                if let consumer = try? KafkaConsumer(configuration: configuration, subscription: .partitions(start), logger: logger) {
                    consumers.append(consumer)
                    started.formUnion(ends.keys.map(\.topic))
                }
            }
            if consumers.isEmpty {
                try? await Task.sleep(for: settings.interval)
                continue
            }
            // Drain each consumer briefly in turn; the topics are small and the page is slow.
            for consumer in consumers {
                var taken = 0
                while taken < 500, !Task.isCancelled, let record = await consumer.next(timeout: .milliseconds(200)) {
                    state.withLock { $0.ingest(record) }
                    taken += 1
                }
            }
        }
        for consumer in consumers { await consumer.close() }
    }
}

/// The console's model, shared by its loops and the page's requests.
final class SharedModel: Sendable {
    private let model: Mutex<ConsoleModel>
    init(_ model: ConsoleModel) { self.model = Mutex(model) }
    func withLock<T>(_ body: (inout ConsoleModel) -> T) -> T { model.withLock { body(&$0) } }
}
