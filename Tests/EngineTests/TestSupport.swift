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
    /// The elements in NCHW order, whatever the layout (a training convolution's output is
    /// channel-blocked).
    var values: [Float] {
        let buffer = FloatBuffer()
        let plain = plain(using: buffer)
        return withExtendedLifetime(buffer) { Array(UnsafeBufferPointer(start: plain.data, count: shape.count)) }
    }
}

/// How two arrays differ: the largest absolute and relative differences (relative to
/// max(|expected|, floor), so values near zero do not blow it up), and how many elements are
/// NaN or infinite where the other is not. Reported beside every reference check.
struct Difference: CustomStringConvertible {
    var maxAbsolute: Float = 0
    var maxRelative: Float = 0
    /// Elements where one side is not finite and the two are not the same value.
    var nonFinite = 0
    init(_ actual: [Float], _ expected: [Float], floor: Float = 1e-3) {
        precondition(actual.count == expected.count, "\(actual.count) values against \(expected.count)")
        for (a, e) in zip(actual, expected) {
            guard a.isFinite && e.isFinite else {
                if !(a == e) { nonFinite += 1 }  // NaN never equals anything, itself included
                continue
            }
            let d = abs(a - e)
            maxAbsolute = max(maxAbsolute, d)
            maxRelative = max(maxRelative, d / max(abs(e), floor))
        }
    }
    var description: String {
        String(format: "max abs %.3g, max rel %.3g", maxAbsolute, maxRelative) + (nonFinite > 0 ? ", \(nonFinite) non-finite" : "")
    }
}

/// Expects every element of `actual` within `absolute + relative·|expected|` of `expected`,
/// recording the errors. A NaN or infinity where the reference has a finite value (or a
/// different one) fails, whatever the tolerances.
func expectClose(_ actual: [Float], _ expected: [Float], absolute: Float, relative: Float = 0,
                 _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let d = Difference(actual, expected)
    var outside = 0, worst: (index: Int, actual: Float, expected: Float)?
    for (i, (a, e)) in zip(actual, expected).enumerated() where !(a == e) {
        // NaN fails this comparison, so a NaN is always outside.
        if !(abs(a - e) <= absolute + relative * abs(e)) {
            outside += 1
            if worst == nil { worst = (i, a, e) }
        }
    }
    print("  \(what): \(d)" + (outside > 0 ? ", \(outside) outside tolerance" : ""))
    #expect(outside == 0, "\(what): \(outside) of \(actual.count) values outside \(absolute) + \(relative)·|ref| (\(d)); first at \(worst.map { "\($0.index): \($0.actual) vs \($0.expected)" } ?? "-")",
            sourceLocation: sourceLocation)
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

@Suite("The numeric test helpers")
struct NumericHelperTests {
    @Test("expectClose fails on a NaN or an infinity, and on one element out of tolerance")
    func failsOnNonFinite() {
        withKnownIssue { expectClose([1, .nan], [1, 2], absolute: 1e9, relative: 1e9, "NaN against a number") }
        withKnownIssue { expectClose([.nan], [.nan], absolute: 1e9, "NaN against NaN") }
        withKnownIssue { expectClose([.infinity], [3], absolute: 1e9, "infinity against a number") }
        withKnownIssue { expectClose([1, 1, 2], [1, 1, 1], absolute: 0.5, relative: 0.4, "one element outside atol + rtol·|ref|") }
        expectClose([1, 2.0001, -3], [1, 2, -3], absolute: 0, relative: 1e-4, "within rtol")
        expectClose([.infinity], [.infinity], absolute: 0, "the same infinity")
    }
}
