import ArgumentParser
import Engine
import Foundation
import ModelVersions
import Stages

struct PredictCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Score X-ray files with a model file, offline; one JSON line per input.",
        discussion: """
            An input is a PNG or JPEG X-ray (decoded and preprocessed as the model's manifest \
            says) or a .npy float32 array of the model's input shape (taken as is). Each line \
            holds the input's path and the per-label probabilities; an input that cannot be \
            read gets a line with its error instead, and the exit status is 1.
            """)

    @Option(help: "A model file (from `xray model init` or `xray model import`).") var model: String
    @Option(help: "Inputs scored together.") var batch: Int = 8
    @Argument(help: "PNG, JPEG or .npy files.") var inputs: [String]

    func run() async throws {
        let file = try ModelFile.read(URL(fileURLWithPath: model))
        let predictor = OfflinePredictor(model: file, batchSize: batch)
        let labels = file.manifest.labels
        var failures = 0
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        predictor.predict(inputs.map { URL(fileURLWithPath: $0) }) { prediction in
            var line = PredictionLine(input: prediction.input)
            if let p = prediction.probabilities {
                line.probabilities = Dictionary(uniqueKeysWithValues: zip(labels, p.map { (Double($0) * 1e6).rounded() / 1e6 }))
            } else {
                line.error = prediction.error ?? "unknown"
                failures += 1
            }
            // The predictor gives only finite probabilities, so the encoding cannot fail.
            guard let data = try? encoder.encode(line) else { failures += 1; return }
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// One line of `xray predict`'s output.
private struct PredictionLine: Encodable {
    var input: String
    var probabilities: [String: Double]?
    var error: String?
}
