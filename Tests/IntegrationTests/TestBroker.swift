import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KafkaIO
import Logging
import Stages
import Synchronization
import Testing
import Wire

/// The broker `Ops/test` started, and helpers to give each test topics of its own.
enum TestBroker {
    /// Set by Ops/test; the integration suites are disabled (and reported as skipped) without it.
    static let brokers = ProcessInfo.processInfo.environment["XRAY_TEST_BROKERS"]
    static var available: Bool { brokers != nil }

    static let logger: Logger = {
        var logger = Logger(label: "integration")
        logger.logLevel = ProcessInfo.processInfo.environment["XRAY_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }()

    static var kafka: KafkaConfiguration { KafkaConfiguration(brokers: brokers ?? "", clientID: "xray-test") }

    /// A catalog under a fresh prefix, with its topics created.
    static func freshTopics(_ name: String) async throws -> TopicCatalog {
        let catalog = TopicCatalog(prefix: "\(name)-\(UInt32.random(in: 0...UInt32.max)).")
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        _ = try await admin.apply(catalog.settings)
        return catalog
    }

    /// Reads a whole topic from the beginning until `done` says so or `timeout` passes.
    /// `configuration` defaults to this broker's.
    static func collect(_ topic: String, timeout: Duration, configuration: ConsumerConfiguration? = nil,
                        until done: ([KafkaRecord]) -> Bool) async throws -> [KafkaRecord] {
        let consumer = try KafkaConsumer(configuration: configuration ?? ConsumerConfiguration(kafka: kafka, groupID: "collector"),
                                         subscription: .wholeTopic(topic, fromBeginning: true), logger: logger)
        let deadline = ContinuousClock.now + timeout
        var records: [KafkaRecord] = []
        while !done(records), ContinuousClock.now < deadline {
            if let record = await consumer.next(timeout: .milliseconds(500)) { records.append(record) }
        }
        await consumer.close()
        return records
    }

    /// The `xray` executable built beside the test binary (or XRAY_BIN).
    static var xrayBinary: String {
        if let path = ProcessInfo.processInfo.environment["XRAY_BIN"] { return path }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent().appendingPathComponent("xray").path
    }

    /// Starts `xray ARGS` against the test broker, logging to a temporary file.
    static func spawnXray(_ arguments: [String], prefix: String, log: URL? = nil) throws -> Process {
        try spawnXray(arguments, brokers: brokers ?? "", prefix: prefix, log: log)
    }

    /// Starts `xray ARGS` against `brokers`, logging to `log` or a temporary file.
    static func spawnXray(_ arguments: [String], brokers: String, prefix: String, log: URL?) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: xrayBinary)
        process.arguments = arguments + ["--brokers", brokers, "--topic-prefix", prefix]
        let log = log ?? logFile(prefix: prefix, arguments[0])
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        spawnedLogs.withLock { $0[process.processIdentifier] = log }
        return process
    }

    /// The log file of each process `spawnXray` started, by pid.
    private static let spawnedLogs = Mutex<[Int32: URL]>([:])

    /// How a process `spawnXray` started ended, with the end of its log: the comment of an
    /// expectation on its exit status, so that a failure in CI says why.
    static func exitReport(_ process: Process, characters: Int = 4000) -> Comment {
        let reason = process.terminationReason == .uncaughtSignal ? "killed by signal" : "exit status"
        return "\(process.arguments?.first ?? "xray") ended with \(reason) \(process.terminationStatus); the end of its log:\n\(logText(process).suffix(characters))"
    }

    /// The lines of the log of a process `spawnXray` started that contain any of `needles`,
    /// after its command line: for a test's failure message.
    static func logLines(_ process: Process, containing needles: [String]) -> String {
        let lines = logText(process).split(separator: "\n").filter { line in needles.contains { line.contains($0) } }
        return "\(process.arguments?.joined(separator: " ") ?? "xray"):\n" + lines.joined(separator: "\n")
    }

    private static func logText(_ process: Process) -> String {
        let log = spawnedLogs.withLock { $0[process.processIdentifier] }
        return log.flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? "(no log)"
    }

    /// A port nothing listens on now (the kernel's choice for a socket bound to port 0).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A fresh log file name in the temporary directory.
    static func logFile(prefix: String, _ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)\(name)-\(UUID().uuidString.prefix(6)).log")
    }
}

/// A process's Prometheus metrics.
enum Scrape {
    static func metrics(_ port: Int) async throws -> String {
        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        let status = (response as? HTTPURLResponse)?.statusCode
        guard status == 200 else { throw BadInput("GET /metrics on port \(port) answered \(status.map(String.init) ?? "nothing")") }
        return String(decoding: data, as: UTF8.self)
    }

    /// The value of the sample line starting with `series` (name and labels), if any.
    static func value(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }
}

/// Real images from ../shared/datasets.
enum Dataset {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets")

    static func nih(_ count: Int) throws -> [ImageFile] {
        let table = try NIHLabelTable(csv: String(contentsOf: root.appendingPathComponent("nih_cxr14_fullres_starter_subset/labels.csv"), encoding: .utf8))
        return Array(try DatasetScanner.scan([root.appendingPathComponent("nih_cxr14_fullres_starter_subset/images").path],
                                             nihLabels: table).prefix(count))
    }

    static func kermany(_ count: Int) throws -> [ImageFile] {
        let normal = try DatasetScanner.scan([root.appendingPathComponent("kermany_pneumonia_224/train/NORMAL").path]).prefix(count / 2)
        let sick = try DatasetScanner.scan([root.appendingPathComponent("kermany_pneumonia_224/train/PNEUMONIA").path]).prefix(count - count / 2)
        return Array(normal + sick)
    }
}
