import Foundation
import KafkaIO
import Stages
import Wire

/// A Tansu broker of a test's own (`Ops/broker`), on the S3 storage engine by default so its
/// topics survive a SIGKILL of the broker: for tests that kill, restart or freeze the broker.
final class RestartableBroker: @unchecked Sendable {
    let brokers: String
    let storage: String
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    var kafka: KafkaConfiguration { KafkaConfiguration(brokers: brokers, clientID: "xray-test") }

    /// Starts a broker (and, for `s3`, its S3 server) on free loopback ports, with the topics
    /// created.
    init(topics: TopicCatalog, storage: String = "s3") async throws {
        brokers = "127.0.0.1:\(TestBroker.freePort())"
        self.storage = storage
        try await run("start", "--storage", storage)
        let admin = try KafkaAdmin(configuration: KafkaConfiguration(brokers: brokers, clientID: "xray-test"), logger: TestBroker.logger)
        _ = try await admin.apply(topics.settings)
    }

    /// SIGKILLs the broker (its S3 server keeps the topics).
    func kill() async throws { try await run("kill") }

    /// Starts the broker again (on the same S3 server).
    func restart() async throws { try await run("start", "--storage", storage) }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered. `thaw()`
    /// lets it go on.
    func freeze() throws { try signal(SIGSTOP) }
    func thaw() throws { try signal(SIGCONT) }

    private func signal(_ signal: Int32) throws {
        let pidFile = Self.repository.appendingPathComponent(".run/broker-\(brokers.split(separator: ":").last ?? "").pid")
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              Glibc.kill(pid, signal) == 0 else { throw BadInput("cannot signal the broker (\(pidFile.path))") }
    }

    /// Stops the broker and its S3 server (from a `defer`: blocks until done).
    func stop() {
        guard let pid = try? Self.spawn(["stop"], brokers: brokers) else { return }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// Runs `Ops/broker ARGUMENTS` for this broker and waits for it without blocking a thread
    /// of the concurrency pool. (posix_spawn, not Foundation's Process: the daemons the script
    /// starts outlive it, and a Process whose child left daemons behind kept the test runner
    /// from exiting.)
    private func run(_ arguments: String...) async throws {
        let pid = try Self.spawn(arguments, brokers: brokers)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(50)) }
        guard status == 0 else { throw BadInput("Ops/broker \(arguments.joined(separator: " ")) failed (status \(status))") }
    }

    private static func spawn(_ arguments: [String], brokers: String) throws -> pid_t {
        let argv = ["/bin/bash", repository.appendingPathComponent("Ops/broker").path] + arguments
        let environment = ProcessInfo.processInfo.environment.merging(["XRAY_BROKERS": brokers]) { $1 }.map { "\($0)=\($1)" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        var pid: pid_t = 0
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { for p in cArgv + cEnv { free(p) } }
        let result = posix_spawn(&pid, "/bin/bash", &actions, nil, cArgv, cEnv)
        guard result == 0 else { throw BadInput("cannot run Ops/broker: \(String(cString: strerror(result)))") }
        return pid
    }

    /// Starts `xray ARGS` against this broker.
    func spawnXray(_ arguments: [String], prefix: String, log: URL? = nil) throws -> Process {
        try TestBroker.spawnXray(arguments, brokers: brokers, prefix: prefix, log: log)
    }

    /// Reads a whole topic from the beginning until `done` says so or `timeout` passes (with a
    /// 500 ms fetch wait, which S3 storage serves at once).
    func collect(_ topic: String, timeout: Duration, until done: ([KafkaRecord]) -> Bool) async throws -> [KafkaRecord] {
        var configuration = ConsumerConfiguration(kafka: kafka, groupID: "collector")
        configuration.fetchWaitMaxMilliseconds = 500
        return try await TestBroker.collect(topic, timeout: timeout, configuration: configuration, until: done)
    }
}
