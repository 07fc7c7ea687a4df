import CheckedArithmetic
import Engine
public import Foundation
public import Imaging
public import ModelVersions
import Wire

/// Scores files with a model, without Kafka: PNG/JPEG X-rays are decoded and preprocessed as
/// the manifest says; `.npy` float32 arrays of the model's input shape are taken as they are.
public final class OfflinePredictor {
    public let model: ModelFile
    let decoder: ImageDecoder
    let preprocessor: Preprocessor
    public let batchSize: Int

    /// One input's outcome.
    public struct Prediction: Sendable {
        public var input: String
        /// Per-label probabilities in the manifest's label order, or nil when the input failed.
        public var probabilities: [Float]?
        public var error: String?
    }

    public init(model: ModelFile, batchSize: Int = 8, decodeLimits: DecodeLimits = DecodeLimits()) {
        self.model = model
        self.batchSize = max(1, batchSize)
        decoder = ImageDecoder(limits: decodeLimits)
        let p = model.manifest.preprocess
        preprocessor = Preprocessor(resize: p.resize, crop: p.crop, mean: p.mean, std: p.std)
    }

    /// The model input for one file, or a reason it cannot be one.
    public func input(for url: URL) throws -> [Float] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw BadInput("cannot read \(url.path): \(error.localizedDescription)") }
        let expected = model.manifest.input
        if url.pathExtension.lowercased() == "npy" {
            let array = try NpyArray(data)
            guard array.shape == expected || array.shape == [1] + expected else {
                throw BadInput("the array is \(array.shape), the model takes \(expected) (or [1] + that)", code: "wrong-shape")
            }
            if let index = CheckedSize.firstNonFinite(array.values) {
                throw BadInput("the array holds a NaN or infinity at value \(index)", code: "non-finite")
            }
            return array.values
        }
        let (image, _) = try decoder.decode([UInt8](data))
        return try preprocessor.tensor(from: image)
    }

    /// Predictions for `urls`, in order, scored in batches; `emit` is called as each batch ends.
    public func predict(_ urls: [URL], emit: (Prediction) -> Void) {
        let per = model.manifest.input.reduce(1, *)
        var pending: [(String, [Float])] = []
        func flush() {
            guard !pending.isEmpty else { return }
            let shape = Shape(n: pending.count, c: model.manifest.input[0], h: model.manifest.input[1], w: model.manifest.input[2])
            let results = model.network.probabilities(batch: pending.flatMap(\.1), shape: shape)
            for ((name, _), p) in zip(pending, results) {
                if CheckedSize.firstNonFinite(p) != nil {
                    emit(Prediction(input: name, probabilities: nil, error: "the model gave a non-finite probability for this input; the model is suspect"))
                } else {
                    emit(Prediction(input: name, probabilities: p, error: nil))
                }
            }
            pending.removeAll()
        }
        for url in urls {
            do {
                let x = try input(for: url)
                guard x.count == per else { throw BadInput("the input has \(x.count) values, the model takes \(per)", code: "wrong-shape") }
                pending.append((url.path, x))
                if pending.count == batchSize { flush() }
            } catch {
                flush() // keep output in input order
                emit(Prediction(input: url.path, probabilities: nil, error: "\(error)"))
            }
        }
        flush()
    }
}
