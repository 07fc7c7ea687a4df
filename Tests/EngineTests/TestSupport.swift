import Foundation
import Testing
@testable import Engine

/// Where `Reference/make_reference.py` wrote PyTorch's and ONNX Runtime's outputs
/// (`Ops/test` sets XRAY_ENGINE_REFERENCE); tests that compare against them need it.
enum Reference {
    static let directory: URL? = ProcessInfo.processInfo.environment["XRAY_ENGINE_REFERENCE"].map { URL(fileURLWithPath: $0) }
    static var available: Bool { directory.map { FileManager.default.fileExists(atPath: $0.path) } ?? false }

    static func url(_ name: String) -> URL { directory!.appendingPathComponent(name) }

    /// A reference case: its tensors by name and its configuration.
    static func load(_ name: String) throws -> (tensors: [String: NamedTensor], config: [String: Any]) {
        let file = try SafeTensors.read(url(name + ".safetensors"))
        let config = file.metadata["config"].flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
        return (file.byName, config)
    }
}

/// An owned input batch for a layer.
final class Batch {
    let buffer: UnsafeMutablePointer<Float>
    let shape: Shape
    init(_ values: [Float], _ shape: Shape) {
        precondition(values.count == shape.count)
        self.shape = shape
        buffer = .allocate(capacity: max(1, values.count))
        buffer.initialize(from: values, count: values.count)
    }
    convenience init(_ tensor: NamedTensor) {
        let s = tensor.shape
        let shape = s.count == 4 ? Shape(n: s[0], c: s[1], h: s[2], w: s[3]) : Shape(n: s[0], c: s.dropFirst().reduce(1, *))
        self.init(tensor.floats, shape)
    }
    deinit { buffer.deallocate() }
    /// A view of the batch. Keep the batch alive while the view is used (`with`).
    var activation: Activation { Activation(data: buffer, shape: shape) }
    /// Runs `body` on a view while the batch is certainly alive.
    func with<T>(_ body: (Activation) throws -> T) rethrows -> T {
        try withExtendedLifetime(self) { try body(activation) }
    }
}

extension Activation {
    var values: [Float] { Array(UnsafeBufferPointer(start: data, count: shape.count)) }
}

/// The largest absolute and relative differences between two arrays; relative to
/// max(|expected|, floor) so values near zero do not blow it up.
struct Difference: CustomStringConvertible {
    var maxAbsolute: Float = 0
    var maxRelative: Float = 0
    init(_ actual: [Float], _ expected: [Float], floor: Float = 1e-3) {
        precondition(actual.count == expected.count, "\(actual.count) values against \(expected.count)")
        for (a, e) in zip(actual, expected) {
            let d = abs(a - e)
            maxAbsolute = max(maxAbsolute, d.isNaN ? .infinity : d)
            maxRelative = max(maxRelative, d / max(abs(e), floor))
        }
    }
    var description: String { String(format: "max abs %.3g, max rel %.3g", maxAbsolute, maxRelative) }
}

/// Expects `actual` ≈ `expected` within `tolerance` (absolute or relative), recording the errors.
func expectClose(_ actual: [Float], _ expected: [Float], absolute: Float, relative: Float = 0,
                 _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let d = Difference(actual, expected)
    print("  \(what): \(d)")
    #expect(d.maxAbsolute <= absolute || d.maxRelative <= relative, "\(what): \(d)", sourceLocation: sourceLocation)
}

/// Deterministic pseudo-random values in [-1, 1).
func randomValues(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in (rng.uniform() * 2 - 1) * scale }
}

/// Copies values into a parameter.
func set(_ p: Parameter, _ values: [Float]) {
    precondition(values.count == p.count)
    values.withUnsafeBufferPointer { p.value.update(from: $0.baseAddress!, count: p.count) }
}

func gradient(_ p: Parameter) -> [Float] { Array(UnsafeBufferPointer(start: p.gradient, count: p.count)) }
