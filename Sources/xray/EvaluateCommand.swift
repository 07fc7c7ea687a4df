import ArgumentParser
import Foundation
import ModelVersions
import Stages

struct EvaluateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Score a labelled dataset folder with a model file (offline) and print per-label AUC, accuracy, sensitivity and specificity.",
        discussion: """
            PATH is a folder (or files) in the NIH layout (give --labels Data_Entry CSV) or the \
            Kermany layout (NORMAL/ and PNEUMONIA/ folders: label Pneumonia). Images are decoded \
            and preprocessed as the model's manifest says. Accuracy, sensitivity and specificity \
            use the manifest's thresholds (default 0.5). --roc writes the ROC curves as a PNG.
            """)

    @Option(help: "A model file.") var model: String
    @Option(help: "NIH label table (Data_Entry_2017 CSV) for NIH images.") var labels: String?
    @Option(help: "Use at most this many images (in scan order).") var limit: Int?
    @Option(help: "Score only the patients this share holds out (the patient-wise split of xray train, trainers and the evaluator).")
    var validation: Double?
    @Option(help: "Images scored together.") var batch: Int = 16
    @Option(help: "Write the ROC curves to this PNG file.") var roc: String?
    @Argument(help: "Dataset folders or files.") var data: [String]

    func run() async throws {
        let file = try ModelFile.read(URL(fileURLWithPath: model))
        let table = try labels.map { try NIHLabelTable(csv: String(contentsOfFile: $0, encoding: .utf8)) }
        var files = try DatasetScanner.scan(data, nihLabels: table).filter { $0.metadata.labels != nil }
        if let validation {
            guard validation > 0 && validation < 1 else { throw ValidationError("--validation must be in (0, 1)") }
            files = PatientSplit(validationFraction: validation).split(files).validation
        }
        if let limit { files = Array(files.prefix(limit)) }
        guard !files.isEmpty else { throw ValidationError("no labelled images under \(data.joined(separator: ", ")) (NIH images need --labels)") }
        let start = ContinuousClock.now
        let evaluation = Evaluation(model: file, files: files, batchSize: batch)
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        print("model \(evaluation.model) (\(file.manifest.architecture)) on \(files.count) labelled images, "
            + String(format: "%.1f s, %.1f images/s", seconds, Double(evaluation.images) / seconds))
        print(evaluation.table)
        for failure in evaluation.failures.prefix(5) { print("unreadable: \(failure.path): \(failure.error)") }
        if let roc {
            let curves = evaluation.labels.compactMap(\.roc)
            try Data(try ROCPlot.png(curves)).write(to: URL(fileURLWithPath: roc))
            let named = evaluation.labels.filter { $0.roc != nil }.enumerated()
                .map { "\($1.label) \(ROCPlot.palette[$0 % ROCPlot.palette.count].name)" }
            print("ROC curves in \(roc): " + named.joined(separator: ", "))
        }
    }
}
