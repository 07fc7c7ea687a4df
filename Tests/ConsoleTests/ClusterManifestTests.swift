import Foundation
import Testing
import TestSupport

enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let validatorInstalled = FileManager.default.fileExists(atPath: root.appendingPathComponent(".deps/k8s/kubernetes_validate").path)
}

/// Ops/k8s: the manifests against the Kubernetes and KEDA schemas, and the dashboard and alert
/// rules against the metric names the code exports (`Ops/k8s/validate`).
@Suite(.enabled(if: Repository.validatorInstalled, "needs .deps/k8s (Ops/setup --references installs it)"))
struct ClusterManifestTests {
    static let root = Repository.root

    /// Runs the validator on `root` (a repository or an altered copy): exit status and output.
    func validate(_ root: URL = ClusterManifestTests.root) async throws -> (status: Int32, output: String) {
        try await runProgram("/usr/bin/env", ["python3", Self.root.appendingPathComponent("Ops/k8s/validate").path, root.path])
    }

    /// A copy of Sources/ and Ops/k8s with `change` applied to one file.
    func alteredCopy(_ path: String, _ change: (String) -> String) throws -> URL {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("manifests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: copy.appendingPathComponent("Ops"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent("Sources"), to: copy.appendingPathComponent("Sources"))
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent("Ops/k8s"), to: copy.appendingPathComponent("Ops/k8s"))
        let file = copy.appendingPathComponent(path)
        let text = try String(contentsOf: file, encoding: .utf8)
        let changed = change(text)
        #expect(changed != text, "the alteration of \(path) changed nothing")
        try changed.write(to: file, atomically: true, encoding: .utf8)
        return copy
    }

    @Test func theManifestsAreValidAndUseOnlyExportedMetrics() async throws {
        let (status, output) = try await validate()
        #expect(status == 0, "\(output)")
        #expect(output.contains("5 ScaledObject") && output.contains("8 Deployment") && output.contains("7 PodDisruptionBudget"))
    }

    @Test func aMetricRenamedInTheCodeFailsTheDashboardAndTheRules() async throws {
        let copy = try alteredCopy("Sources/Stages/StageMetrics.swift") {
            $0.replacingOccurrences(of: "\"xray_records_dead_lettered_total\"", with: "\"xray_records_deadlettered_total\"")
        }
        defer { try? FileManager.default.removeItem(at: copy) }
        let (status, output) = try await validate(copy)
        #expect(status == 1)
        #expect(output.contains("grafana-dashboard.json") && output.contains("prometheus-rules.yaml XRayDeadLetterRate"))
        #expect(output.contains("metric xray_records_dead_lettered_total is not exported"), "\(output)")
    }

    @Test func moreReplicasThanPartitionsAndUnknownFieldsFail() async throws {
        let tooMany = try alteredCopy("Ops/k8s/scorer.yaml") { $0.replacingOccurrences(of: "maxReplicaCount: 6", with: "maxReplicaCount: 12") }
        defer { try? FileManager.default.removeItem(at: tooMany) }
        let (status, output) = try await validate(tooMany)
        #expect(status == 1 && output.contains("maxReplicaCount 12 > 6 partitions of xray.tensors"), "\(output)")

        let typo = try alteredCopy("Ops/k8s/decoder.yaml") { $0.replacingOccurrences(of: "terminationGracePeriodSeconds", with: "terminationGraceSeconds") }
        defer { try? FileManager.default.removeItem(at: typo) }
        let second = try await validate(typo)
        #expect(second.status == 1 && second.output.contains("'terminationGraceSeconds' was unexpected"), "\(second.output)")
    }
}
