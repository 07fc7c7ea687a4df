import ArgumentParser
import Engine
import Foundation
import ModelVersions
import Stages
import Wire

struct ModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Create, import, publish, fetch and promote model files (safetensors with a manifest).",
        subcommands: [Init.self, Import.self, Publish.self, Fetch.self, Promote.self, Rollback.self, List.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a model with fresh weights (torchvision's initialisation, seeded).")

        @Option(help: "Architecture: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).",
                transform: parseArchitecture)
        var arch: Architecture
        @Option(help: "Comma-separated output labels (default: the 14 NIH ChestX-ray14 findings).")
        var labels: String?
        @Option(help: "Where to write the model (.safetensors).") var out: String
        @Option(help: "Initialisation seed.") var seed: UInt64 = 0
        @OptionGroup var preprocessing: PreprocessingOptions

        func run() async throws {
            let model = try ModelFile.initialized(architecture: arch, labels: try parseLabels(labels),
                                              preprocess: try preprocessing.spec(), seed: seed)
            try model.write(to: URL(fileURLWithPath: out))
            print("wrote \(out): \(arch.rawValue), \(model.manifest.labels.count) labels, input \(model.manifest.input), "
                + "\(model.network.store.count) parameters")
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring in weights from an ONNX model or a PyTorch state dict saved as safetensors.",
            discussion: """
                ONNX: the Conv/BatchNormalization/Gemm initializers are matched to the architecture \
                by structure (exporters rename them and fold batch norms into convolutions); the \
                architecture is detected unless --arch is given. Safetensors: the state dict of \
                torchvision's resnet18/resnet50/densenet121 (or our small CNN), by name; --arch is \
                required. A head whose size differs from --labels is replaced by a fresh one \
                (transfer learning from ImageNet).
                """)

        @Argument(help: "An .onnx file or a .safetensors state dict.") var file: String
        @Option(help: "Architecture (detected for ONNX).", transform: parseArchitecture) var arch: Architecture?
        @Option(help: "Comma-separated output labels (default: 14 NIH findings when the head has 14 outputs).")
        var labels: String?
        @Option(help: "Where to write the model.") var out: String
        @Option(help: "Seed for a replaced head.") var seed: UInt64 = 0
        @OptionGroup var preprocessing: PreprocessingOptions

        func run() async throws {
            let url = URL(fileURLWithPath: file)
            let given = try labels.map(parseLabels)
            let network: Network, headOutputs: Int, freshHead: Bool, detail: String
            if url.pathExtension.lowercased() == "onnx" {
                let result = try ONNXImporter.importModel(try Data(contentsOf: url), architecture: arch,
                                                          labels: given?.count, seed: seed)
                (network, headOutputs, freshHead) = (result.network, result.headOutputs, result.keptFreshHead)
                detail = "\(result.foldedBatchNorms) batch norms had been folded into convolutions"
            } else {
                guard let arch else { throw ValidationError("--arch is required for a safetensors state dict") }
                let file = try SafeTensors.read(url)
                let head = file.byName["\(arch.headName).weight"] ?? file.byName["\(arch.headName).0.weight"]
                headOutputs = head?.shape.first ?? 0
                let outputs = given?.count ?? headOutputs
                guard (1...Network.maxLabels).contains(outputs) else {
                    throw ValidationError("the file's head \(arch.headName).weight has \(headOutputs) outputs; name the labels with --labels")
                }
                network = Network(architecture: arch, labels: outputs, seed: seed)
                freshHead = try network.load(file.tensors, allowHeadMismatch: given != nil).keptFreshHead
                detail = "\(file.tensors.count) tensors by name"
            }
            let labelNames: [String]
            if let given { labelNames = given } else if headOutputs == Findings.nih14.count { labelNames = Findings.nih14 } else {
                throw ValidationError("the head has \(headOutputs) outputs; name them with --labels")
            }
            try ModelFile(network: network, labels: labelNames, preprocess: try preprocessing.spec(),
                          origin: "import \(url.lastPathComponent)").write(to: URL(fileURLWithPath: out))
            print("wrote \(out): \(network.architecture.rawValue) from \(url.lastPathComponent) (\(detail)); "
                + (freshHead ? "head replaced: \(headOutputs) → \(labelNames.count) outputs, freshly initialised" : "head kept: \(labelNames.count) outputs"))
        }
    }
}

/// How X-rays become the model's input; recorded in the manifest.
struct PreprocessingOptions: ParsableArguments {
    @Option(help: "Resize the shorter side to this many pixels.") var resize: Int = PreprocessSpec.imagenet224.resize
    @Option(help: "Then take the centre square of this size (the model's input size).") var crop: Int = PreprocessSpec.imagenet224.crop
    @Option(help: "Input channels (the gray image replicated; 3 for ImageNet-pretrained models).") var channels: Int = 3

    func spec() throws -> PreprocessSpec {
        let imagenet = PreprocessSpec.imagenet224
        let mean = channels == 3 ? imagenet.mean : Array(repeating: 0.449, count: channels)
        let std = channels == 3 ? imagenet.std : Array(repeating: 0.226, count: channels)
        let spec = PreprocessSpec(resize: resize, crop: crop, channels: channels, mean: mean, std: std)
        if let problem = spec.problem { throw ValidationError(problem) }
        return spec
    }
}

func parseLabels(_ text: String?) throws -> [String] {
    guard let text else { return Findings.nih14 }
    let labels = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !labels.isEmpty else { throw ValidationError("--labels needs at least one name") }
    guard Set(labels).count == labels.count else { throw ValidationError("--labels has a name twice") }
    return labels
}

func parseArchitecture(_ text: String) throws -> Architecture {
    guard let architecture = Architecture(rawValue: text) else {
        throw ValidationError("unknown architecture \(text); choose one of \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return architecture
}
