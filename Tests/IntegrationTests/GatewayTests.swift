import Dicom
import Foundation
import FoundationNetworking
import KafkaIO
import ModelVersions
import Stages
import Testing
import TestSupport
import Wire

/// The DICOM objects Ops/test makes (Tests/DicomTests/Fixtures/make_dicom.py).
enum DicomFixtureFolder {
    static let url = ProcessInfo.processInfo.environment["XRAY_DICOM_FIXTURES"].map { URL(fileURLWithPath: $0) }
}

/// The DICOM edge on a real broker: DCMTK's `storescu` sends to `xray gateway`, the in-process
/// decoder, preprocessor and scorer triage what it publishes.
@Suite("DICOM gateway on a real broker", .serialized,
       .enabled(if: TestBroker.available && DicomFixtureFolder.url != nil, "needs XRAY_TEST_BROKERS and XRAY_DICOM_FIXTURES (Ops/test sets them)"))
struct GatewayTests {
    static var fixtures: URL? { DicomFixtureFolder.url }
    static let key = "site-secret-for-the-gateway-test-0123456789"
    static let caller = "CR_ROOM_3"

    /// The fixtures manifest: objects to publish, to skip, and the identifiers that must not leak.
    struct Manifest: Decodable {
        struct Image: Decodable { var file: String }
        struct Skipped: Decodable { var file: String; var says: String }
        var images: [Image]
        var skipped: [Skipped]
        var identifiers: [String]
    }

    static func manifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: try #require(fixtures).appendingPathComponent("manifest.json")))
    }

    static func path(_ file: String) throws -> String { try #require(fixtures).appendingPathComponent(file).path }

    static func keyFile() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("xray-gateway-key-\(UUID().uuidString.prefix(6))")
        try Data(key.utf8).write(to: url)
        return url.path
    }

    /// storescu's option proposing each compressed transfer syntax (it cannot transcode them).
    static let proposals: [String: String] = [
        "1.2.840.10008.1.2.4.70": "-xs", "1.2.840.10008.1.2.4.50": "-xy", "1.2.840.10008.1.2.4.51": "-xx",
        "1.2.840.10008.1.2.4.80": "-xt", "1.2.840.10008.1.2.4.90": "-xv", "1.2.840.10008.1.2.5": "-xr",
        "1.2.840.10008.1.2.1.99": "-xd", "1.2.840.10008.1.2.1": "-xe", "1.2.840.10008.1.2": "-xe",
    ]

    /// Runs `storescu` (proposing `proposal`, else uncompressed syntaxes) and returns its exit
    /// status and the DIMSE statuses it received, in order.
    static func storescu(port: Int, callingAE: String, files: [String], proposal: String = "-xe") async throws -> (status: Int32, responses: [String], output: String) {
        let (status, output) = try await runProgram("/usr/bin/storescu",
                                              ["-v", proposal, "-aet", callingAE, "-aec", "XRAYSTREAM", "127.0.0.1", String(port)] + files)
        let responses = output.split(separator: "\n").filter { $0.contains("Received Store Response") }
            .map { line in String(line.split(separator: "(").last?.dropLast() ?? "") }
        return (status, responses, output)
    }

    /// Waits until the gateway listens (its log says so).
    static func waitForGateway(_ log: URL) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOf: log, encoding: .utf8), text.contains("C-STORE service") { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("the gateway did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        throw CancellationError()
    }

    @Test("a study sent with storescu: frontal CR/DX images are triaged, a CT, a lateral view and a burned-in image are acknowledged and not published, no identifier reaches any topic, an unknown sender is refused")
    func studyThroughTheGateway() async throws {
        let topics = try await TestBroker.freshTopics("gateway")
        let manifest = try Self.manifest()
        let producer = try KafkaProducer(configuration: ProducerConfiguration(kafka: TestBroker.kafka), logger: TestBroker.logger)
        let triage = TriageTests()
        try await triage.publish(try TriageTests.model(seed: 1), version: "v1", topics: topics, with: producer)
        await producer.close()

        let port = TestBroker.freePort()
        let mapFile = FileManager.default.temporaryDirectory.appendingPathComponent("xray-reid-\(UUID().uuidString.prefix(6)).jsonl")
        let log = TestBroker.logFile(prefix: topics.prefix, "gateway")
        let gateway = try TestBroker.spawnXray(["gateway", "--port", String(port), "--caller", Self.caller, "--key-file", try Self.keyFile(),
                                                "--reidentification-map", mapFile.path], prefix: topics.prefix, log: log)
        defer { if gateway.isRunning { gateway.terminate(); gateway.waitUntilExit() } }
        try await Self.waitForGateway(log)

        let slot = ModelSlot()
        let follower = ModelFollower.serving(into: slot, topic: topics.models,
                                             consumer: ConsumerConfiguration(kafka: TestBroker.kafka, groupID: "\(topics.prefix)models"),
                                             logger: TestBroker.logger)
        let scorer = triage.runner(ScorerStage(topics: topics, slot: slot, batching: Batching(maxRecords: 8, maxWait: .milliseconds(20))), topics,
                                   beforeConsuming: { try await follower.ready() })
        let stages = [triage.runner(DecoderStage(topics: topics), topics),
                      triage.runner(try PreprocessorStage(topics: topics, spec: TriageTests.spec), topics), scorer]
        let tasks = [Task { try await follower.run() }] + stages.map { stage in Task { try await stage.run() } }
        defer { tasks.forEach { $0.cancel() } }

        // Every object once, frontal and not: one association per transfer syntax, as storescu
        // proposes one compressed syntax at a time (JPEG process 14 without SV1 it cannot propose).
        var frontal: [String] = [], syntaxes: [String: [String]] = [:]
        for image in manifest.images {
            let path = try Self.path(image.file)
            let syntax = try DicomObject(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))).transferSyntax
            guard Self.proposals[syntax] != nil else { continue }
            frontal.append(path)
            syntaxes[syntax, default: []].append(path)
        }
        let others = try manifest.skipped.map { try Self.path($0.file) }
        syntaxes["1.2.840.10008.1.2.1", default: []] += others
        var responses: [String] = []
        for (syntax, files) in syntaxes.sorted(by: { $0.key < $1.key }) {
            let sent = try await Self.storescu(port: port, callingAE: Self.caller, files: files, proposal: Self.proposals[syntax] ?? "-xe")
            #expect(sent.status == 0 && sent.responses.count == files.count, "\(syntax): \(sent.output.suffix(2000))")
            responses += sent.responses
        }
        print("storescu: \(frontal.count) frontal and \(others.count) other objects in \(syntaxes.count) transfer syntaxes, \(responses.count) responses: \(Set(responses))")
        #expect(responses.count == frontal.count + others.count && responses.allSatisfy { $0 == "Success" })

        // The pseudonymised SOP instance UIDs the frontal images must arrive under.
        let pseudonyms = try Pseudonymiser(key: Array(Self.key.utf8))
        let originals = try frontal.map { try DicomObject(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: $0)))) }
        let expected = Set(originals.compactMap { $0[.sopInstanceUID] }.map(pseudonyms.uid))
        // Lossless re-encodings keep their SOP instance UID: several objects, one key.
        let raw = try await TestBroker.collect(topics.raw, timeout: .seconds(60)) { $0.count >= frontal.count && Set($0.compactMap(\.keyText)) == expected }
        let predictions = try await TestBroker.collect(topics.predictions, timeout: .seconds(120)) { expected.isSubset(of: Set($0.compactMap(\.keyText))) }
        #expect(Set(raw.compactMap(\.keyText)) == expected, "every frontal image published under its pseudonym, nothing else")
        #expect(expected.isSubset(of: Set(predictions.compactMap(\.keyText))), "every published image scored")
        #expect(raw.count == frontal.count, "one record per object sent")
        let deadLetters = try await TestBroker.collect(topics.deadletter, timeout: .seconds(3)) { _ in false }
        #expect(deadLetters.isEmpty, "dead letters: \(deadLetters.map { $0.headers.text(HeaderName.DeadLetter.error) ?? "" })")

        // Headers: source, pseudonymous patient (the same for one patient across objects), study, series, view.
        for record in raw {
            #expect(record.headers.text(HeaderName.source) == Self.caller)
            #expect(record.headers.text(HeaderName.contentType) == ContentType.dicom)
            #expect(record.headers.text(HeaderName.patientID)?.hasPrefix("ANON-") == true)
            #expect(record.headers.text(HeaderName.study)?.hasPrefix("2.25.") == true)
            #expect(["PA", "AP"].contains(record.headers.text(HeaderName.viewPosition) ?? ""))
            #expect(record.headers.text(HeaderName.acquiredAt) == String(Self.acquiredAt))
            #expect(record.headers.text(HeaderName.receivedAt).flatMap { Int64($0) }.map { $0 > Self.acquiredAt } == true)
        }
        let patientsByOriginal = Dictionary(grouping: zip(originals, frontal), by: { $0.0[.patientID] ?? "" })
        #expect(patientsByOriginal.count == 2)
        let patientHeaders = Set(raw.compactMap { $0.headers.text(HeaderName.patientID) })
        #expect(patientHeaders == Set(patientsByOriginal.keys.map(pseudonyms.patient)), "one stable pseudonym per patient")

        // No original identifier in any record of any topic: keys, headers, values.
        var leaks: [String] = []
        let identifiers = manifest.identifiers + originals.compactMap { $0[.sopInstanceUID] } + originals.compactMap { $0[.seriesInstanceUID] }
        // Each image topic is read until it holds every image (a slow group join must not make the scan empty).
        let images: [String: Int] = [topics.raw: frontal.count, topics.decoded: frontal.count, topics.tensors: frontal.count,
                                     topics.predictions: frontal.count]
        var scanned = 0
        for topic in topics.settings.map(\.name) {
            let minimum = images[topic]
            let records = try await TestBroker.collect(topic, timeout: .seconds(minimum == nil ? 3 : 60)) { $0.count >= (minimum ?? .max) }
            scanned += records.count
            for record in records {
                let text = String(decoding: record.value + (record.key ?? []) + record.headers.flatMap { Array($0.name.utf8) + ($0.value ?? []) }, as: UTF8.self)
                for identifier in identifiers where text.contains(identifier) { leaks.append("\(identifier) in \(topic)") }
            }
        }
        #expect(leaks.isEmpty, "identifiers on topics: \(Set(leaks).sorted())")
        #expect(scanned >= 4 * frontal.count, "the scan read every image topic (\(scanned) records)")

        // The site's map leads back, and stays on the host.
        let map = try String(contentsOf: mapFile, encoding: .utf8)
        #expect(originals.compactMap { $0[.patientID] }.allSatisfy { map.contains($0) })
        let attributes = try FileManager.default.attributesOfItem(atPath: mapFile.path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

        // Skipped objects are counted in the log with their reasons.
        let text = try String(contentsOf: log, encoding: .utf8)
        for skipped in manifest.skipped { #expect(text.contains(skipped.says), "log names why: \(skipped.says)") }

        // Verification (C-ECHO) answers a known sender.
        let echo = Process()
        echo.executableURL = URL(fileURLWithPath: "/usr/bin/echoscu")
        echo.arguments = ["-aet", Self.caller, "-aec", "XRAYSTREAM", "127.0.0.1", String(port)]
        try echo.run()
        await echo.exited()
        #expect(echo.terminationStatus == 0, "C-ECHO succeeds")

        // An unknown calling AE title is refused at association; nothing more is published.
        let stranger = try await Self.storescu(port: port, callingAE: "UNKNOWN_AE", files: [frontal[0]])
        #expect(stranger.status != 0 && stranger.responses.isEmpty, "\(stranger.output.suffix(800))")
        #expect(stranger.output.contains("Rejected") || stranger.output.contains("rejected"))
        let after = try await TestBroker.collect(topics.raw, timeout: .seconds(60)) { $0.count >= raw.count }
        #expect(after.count == raw.count)
    }

    @Test("STOW-RS: a multipart/related POST stores the frontal images, acknowledges a CT, fails a part that is not DICOM, and says so in DICOM JSON")
    func stowRS() async throws {
        let topics = try await TestBroker.freshTopics("stow")
        let manifest = try Self.manifest()
        let stowPort = TestBroker.freePort()
        let log = TestBroker.logFile(prefix: topics.prefix, "gateway")
        let gateway = try TestBroker.spawnXray(["gateway", "--port", String(TestBroker.freePort()), "--stow-port", String(stowPort), "--stow-host", "127.0.0.1",
                                                "--key-file", try Self.keyFile()], prefix: topics.prefix, log: log)
        defer { if gateway.isRunning { gateway.terminate(); gateway.waitUntilExit() } }
        try await Self.waitForGateway(log)
        while !((try? String(contentsOf: log, encoding: .utf8))?.contains("STOW-RS at") ?? false) { try await Task.sleep(for: .milliseconds(200)) }

        let frontal = try [manifest.images[0], manifest.images[2]].map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: try Self.path($0.file)))) }
        let ct = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try Self.path("skip-ct.dcm"))))
        let boundary = "xray-\(UUID().uuidString)"
        var body = Data()
        for (type, bytes) in [("application/dicom", frontal[0]), ("application/dicom", ct), ("application/octet-stream", [1, 2, 3]), ("application/dicom", frontal[1])] {
            body += Data("--\(boundary)\r\nContent-Type: \(type)\r\n\r\n".utf8) + Data(bytes) + Data("\r\n".utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(stowPort)/studies")!)
        request.httpMethod = "POST"
        request.setValue("multipart/related; type=\"application/dicom\"; boundary=\(boundary)", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await URLSession.shared.upload(for: request, from: body)
        let status = (response as? HTTPURLResponse)?.statusCode
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        let referenced = (json["00081199"]?["Value"] as? [Any])?.count ?? 0
        let failed = json["00081198"]?["Value"] as? [[String: [String: Any]]] ?? []
        print("STOW-RS: HTTP \(status ?? 0), \(referenced) referenced, \(failed.count) failed")
        #expect(status == 202 && referenced == 3 && failed.count == 1)
        #expect((failed.first?["00081197"]?["Value"] as? [Int]) == [0xC000])

        let raw = try await TestBroker.collect(topics.raw, timeout: .seconds(30)) { $0.count >= 2 }
        #expect(raw.count == 2 && raw.allSatisfy { $0.headers.text(HeaderName.source) == "stow-rs" })

        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (_, wrongType) = try await URLSession.shared.upload(for: request, from: body)
        #expect((wrongType as? HTTPURLResponse)?.statusCode == 415)
    }

    @Test("xray publish replays a DICOM folder through the same filter and de-identification, and refuses to without the key")
    func publishDicomFolder() async throws {
        let topics = try await TestBroker.freshTopics("dcmpub")
        let manifest = try Self.manifest()
        let folder = try #require(Self.fixtures).path
        func publish(_ extra: [String]) async throws -> (Int32, String) {
            let log = TestBroker.logFile(prefix: topics.prefix, "publish")
            let process = try TestBroker.spawnXray(["publish", folder] + extra, prefix: topics.prefix, log: log)
            await process.exited()
            return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
        }
        let (refusedStatus, refusedOutput) = try await publish([])
        #expect(refusedStatus != 0 && refusedOutput.contains("--key-file"), "\(refusedOutput.suffix(500))")
        #expect(try await TestBroker.collect(topics.raw, timeout: .seconds(3)) { _ in false }.isEmpty, "nothing published without the key")

        let (status, output) = try await publish(["--key-file", try Self.keyFile()])
        // The truncated object and the one whose length lies cannot be read, so cannot be de-identified: they fail.
        #expect(status == 1 && output.contains("failed: \(folder)/refuse-truncated.dcm") && output.contains("failed: \(folder)/refuse-length-lies.dcm"))
        for skipped in manifest.skipped { #expect(output.contains("not published: \(folder)/\(skipped.file): "), "\(skipped.file)") }
        // Every frontal image, and the multi-frame object (the decoder refuses it), is published de-identified.
        let expected = manifest.images.count + 1
        let raw = try await TestBroker.collect(topics.raw, timeout: .seconds(30)) { $0.count >= expected }
        #expect(raw.count == expected, "\(output.suffix(800))")
        for record in raw {
            let text = String(decoding: record.value, as: UTF8.self)
            #expect(!manifest.identifiers.contains { text.contains($0) })
            #expect(record.headers.text(HeaderName.source) == "xray-publish" && record.headers.text(HeaderName.contentType) == ContentType.dicom)
        }
    }

    /// 2026-11-30 10:16:42.250 UTC: the fixtures' acquisition date and time.
    static let acquiredAt: Int64 = 1_796_033_802_250

    @Test("with the broker down, C-STORE answers out of resources and nothing unpublished is acknowledged; once it is back the same object is stored")
    func brokerDownMeansRetry() async throws {
        let topics = TopicCatalog(prefix: "gwdown-\(UInt32.random(in: 0...UInt32.max)).")
        let broker = try await RestartableBroker(topics: topics)
        defer { broker.stop() }
        let port = TestBroker.freePort()
        let log = TestBroker.logFile(prefix: topics.prefix, "gateway")
        let gateway = try broker.spawnXray(["gateway", "--port", String(port), "--key-file", try Self.keyFile(), "--ack-timeout-s", "3"],
                                           prefix: topics.prefix, log: log)
        defer { if gateway.isRunning { gateway.terminate(); gateway.waitUntilExit() } }
        try await Self.waitForGateway(log)
        let files = try Self.manifest().images.prefix(2).map { try Self.path($0.file) }

        try await broker.kill()
        let refused = try await Self.storescu(port: port, callingAE: "ANY", files: [files[0]])
        print("broker down: \(refused.responses)")
        #expect(refused.responses == ["Refused: OutOfResources"] || refused.responses.allSatisfy { $0.contains("OutOfResources") }, "\(refused.output.suffix(1500))")

        try await broker.restart()
        let stored = try await Self.storescu(port: port, callingAE: "ANY", files: files)
        #expect(stored.responses == ["Success", "Success"], "\(stored.output.suffix(1500))")
        let raw = try await broker.collect(topics.raw, timeout: .seconds(30)) { $0.count >= 2 }
        #expect(raw.count == 2, "exactly the acknowledged objects are on xray.raw")
        #expect(gateway.isRunning, "the gateway survived the outage")
    }
}
