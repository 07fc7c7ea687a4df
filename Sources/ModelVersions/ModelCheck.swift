import CheckedArithmetic
import Engine
import Foundation
import Wire

/// Checks a model version's content before any stage uses it, beyond the CRC-32s that
/// guard its transport: a file that was written, chunked and checksummed correctly can still
/// hold weights no stage should serve or train from.
///
/// A version passes when
/// - it decodes as a model file with a consistent manifest whose input size the architecture
///   takes (`ModelFile.decode`: every tensor present with its exact shape, nothing extra);
/// - every floating-point tensor is float32 and every integer one int64, as this project
///   writes them;
/// - every weight and batch-norm statistic is a finite number, and every running variance
///   is not negative;
/// - one forward pass on a fixed probe input gives finite probabilities.
///
/// Otherwise `CorruptState` says which check failed, and the caller keeps the version it had.
public enum ModelCheck {
    /// The model in `bytes`, checked. `name` says which version, for the error.
    public static func verified(_ bytes: [UInt8], name: String) throws -> ModelFile {
        let file: SafeTensors.File
        let model: ModelFile
        do {
            file = try SafeTensors.decode(Data(bytes))
            model = try ModelFile.decode(file, name: name)
        } catch {
            throw CorruptState(name, "\(error)")
        }
        if let problem = problem(model, dtypes: file.dtypes) { throw CorruptState(name, problem) }
        return model
    }

    /// Nil when `model` passes every check after decoding; otherwise the first failure.
    static func problem(_ model: ModelFile, dtypes: [String: String]) -> String? {
        if let (name, dtype) = dtypes.sorted(by: { $0.key < $1.key }).first(where: { !["F32", "I64"].contains($0.value) }) {
            return "tensor \(name) is \(dtype); model versions carry float32 weights and int64 counters"
        }
        let network = model.network
        if let bad = network.parameters.first(where: { CheckedSize.firstNonFinite(UnsafeBufferPointer(start: $0.value, count: $0.count)) != nil }) {
            return "weight \(bad.name) holds a NaN or infinity"
        }
        for buffer in network.buffers {
            let values = buffer.floats
            if CheckedSize.firstNonFinite(values) != nil { return "statistic \(buffer.name) holds a NaN or infinity" }
            if buffer.name.hasSuffix("running_var"), values.contains(where: { $0 < 0 }) {
                return "statistic \(buffer.name) holds a negative variance"
            }
        }
        let s = model.manifest.input
        var generator = SeededGenerator(seed: 0x70_72_6f_62_65)  // "probe"
        let probe = (0..<(s[0] * s[1] * s[2])).map { _ in generator.uniform() * 4 - 2 }
        let output = network.probabilities(batch: probe, shape: Shape(n: 1, c: s[0], h: s[1], w: s[2]))
        if let row = output.first, let bad = CheckedSize.firstNonFinite(row) {
            return "a forward pass on the probe input gives a non-finite probability for \(model.manifest.labels[bad])"
        }
        return nil
    }
}
