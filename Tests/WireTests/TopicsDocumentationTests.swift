import Foundation
import Testing
import Wire

/// Topics/ is the operator's documentation; TopicCatalog is what `xray topics apply` creates.
/// They must agree, setting by setting.
@Suite("Topics/ agrees with the code")
struct TopicsDocumentationTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Topics")

    /// The first word of each `| setting | value |` row of a topic file.
    static func settings(of topic: String) throws -> [String: String] {
        let text = try String(contentsOf: folder.appendingPathComponent("\(topic).md"), encoding: .utf8)
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, let first = cells[1].split(separator: " ").first else { continue }
            result[cells[0]] = result[cells[0]] ?? String(first)
        }
        return result
    }

    @Test("every topic has a file whose settings match TopicCatalog", arguments: TopicCatalog.all.map(\.name))
    func matches(name: String) throws {
        let spec = TopicCatalog.all.first { $0.name == name }!
        let doc = try Self.settings(of: name)
        #expect(doc["partitions"] == String(spec.partitions))
        #expect(doc["retention.ms"] == String(spec.retentionMilliseconds))
        #expect(doc["cleanup.policy"] == spec.cleanupPolicy)
        #expect(doc["max.message.bytes"] == String(spec.maxRecordBytes))
        #expect(doc["schema version"] == String(spec.schemaVersion))
    }

    @Test("Topics/ documents no topic the code does not know")
    func noStrayFiles() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path)
            .filter { $0.hasSuffix(".md") && $0 != "README.md" }.map { String($0.dropLast(3)) }
        #expect(Set(files) == Set(TopicCatalog.all.map(\.name)))
    }
}
