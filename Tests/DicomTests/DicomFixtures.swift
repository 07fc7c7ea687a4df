import Foundation

/// The DICOM objects `Fixtures/make_dicom.py` makes from real X-rays (`Ops/test` runs it and
/// sets XRAY_DICOM_FIXTURES), with their expected grey levels, and the real samples in
/// ../shared/datasets/dicom_samples.
enum DicomFixtures {
    static let directory: URL? = ProcessInfo.processInfo.environment["XRAY_DICOM_FIXTURES"].map { URL(fileURLWithPath: $0) }
    static var available: Bool { directory != nil }

    struct Image: Decodable, Sendable, CustomStringConvertible {
        var name: String
        var file: String
        var expected: String
        var width: Int
        var height: Int
        var lossy: Bool
        var note: String
        var description: String { name }
    }
    struct Refused: Decodable, Sendable { var file: String; var reason: String; var says: String }
    struct Skipped: Decodable, Sendable { var file: String; var says: String }
    struct Manifest: Decodable, Sendable {
        var images: [Image]
        var refused: [Refused]
        var skipped: [Skipped]
        var identifiers: [String]
    }

    static let manifest: Manifest? = directory.flatMap { dir in
        (try? Data(contentsOf: dir.appendingPathComponent("manifest.json"))).flatMap { try? JSONDecoder().decode(Manifest.self, from: $0) }
    }

    static func bytes(_ file: String) throws -> [UInt8] {
        guard let directory, let data = FileManager.default.contents(atPath: directory.appendingPathComponent(file).path) else {
            throw FixtureMissing(file)
        }
        return [UInt8](data)
    }

    static let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets/dicom_samples")

    static func sample(_ name: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: samples.appendingPathComponent(name).path) else { throw FixtureMissing(name) }
        return [UInt8](data)
    }
}

struct FixtureMissing: Error, CustomStringConvertible {
    var description: String
    init(_ file: String) { description = "missing DICOM fixture \(file): run Ops/test (it makes them)" }
}
