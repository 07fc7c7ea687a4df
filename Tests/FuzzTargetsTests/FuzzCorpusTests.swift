@testable import FuzzTargets
import Foundation
import Testing

/// Every input committed under Tests/Fuzz — the seeds and every crash reproducer a fuzzing run
/// found — replayed through its target on each test run, without sanitizers: a regression
/// that traps again fails here, not only under `Ops/fuzz`.
@Suite("Fuzz corpus replayed")
struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ target: String) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: root.appendingPathComponent(target), includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
    }

    @Test("the dicom target's pseudonym key is long enough, so the target de-identifies")
    func dicomTargetHasItsKey() {
        #expect(FuzzCorpus.deidentifier != nil)
    }

    @Test("every target has a corpus folder, and every folder a target")
    func foldersMatchTargets() throws {
        let folders = Set(try FileManager.default.contentsOfDirectory(atPath: Self.root.path))
        #expect(folders == Set(FuzzTarget.all.map(\.name)))
    }

    @Test("every committed input runs through its target without trapping", arguments: FuzzTarget.all.map(\.name))
    func replay(target name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        let inputs = try Self.inputs(name)
        #expect(!inputs.isEmpty, "no seeds for \(name)")
        for url in inputs { target.run([UInt8](try Data(contentsOf: url))) }
        print("  \(name): \(inputs.count) inputs replayed")
    }

    @Test("the records codec reads back what it writes")
    func recordsRoundTrip() {
        let names = ["a", "b"]
        let bytes: [UInt8] = [1, 2, 0, 1, 0, 0x41, 1, 2, 0, 0x42, 0x43, 3, 0, 0, 0, 7, 8, 9, 0, 0, 0, 0, 0, 0]
        let records = FuzzRecords.decode(bytes, topic: "t", headerNames: names)
        #expect(records.count == 2)
        #expect(records[0].partition == 1 && records[0].headers.map(\.name) == ["a", "b"] && records[0].value == [7, 8, 9])
        #expect(records[1].headers.isEmpty && records[1].value.isEmpty)
        #expect(FuzzRecords.decode([5, 200, 9], topic: "t", headerNames: names).isEmpty)  // cut short: nothing
    }
}
