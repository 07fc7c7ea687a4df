public import Engine
public import Foundation
public import Wire

/// A model on disk: a safetensors file of the network's state dict (torchvision names) whose
/// metadata holds the `ModelManifest` as JSON.
public struct ModelFile {
    public var manifest: ModelManifest
    public var network: Network

    public init(manifest: ModelManifest, network: Network) {
        self.manifest = manifest
        self.network = network
    }

    /// A model for `network` with a new manifest; throws if the labels, preprocessing and
    /// network do not agree.
    public init(network: Network, labels: [String], preprocess: PreprocessSpec, origin: String) throws {
        guard network.inputChannels == preprocess.channels, network.labelCount == labels.count else {
            throw BadInput("the network takes \(network.inputChannels) channels and has \(network.labelCount) outputs; "
                + "the preprocessing gives \(preprocess.channels) channels and there are \(labels.count) labels")
        }
        let manifest = ModelManifest(architecture: network.architecture.rawValue, labels: labels, preprocess: preprocess,
                                     origin: origin, createdAt: isoNow())
        if let problem = manifest.problem { throw BadInput(problem) }
        self.init(manifest: manifest, network: network)
    }

    /// A freshly initialised model.
    public static func initialized(architecture: Architecture, labels: [String], preprocess: PreprocessSpec,
                                   seed: UInt64) throws -> ModelFile {
        let network = Network(architecture: architecture, labels: labels.count, inputChannels: preprocess.channels, seed: seed)
        return try ModelFile(network: network, labels: labels, preprocess: preprocess, origin: "init seed \(seed)")
    }

    public func write(to url: URL) throws {
        try Data(encoded()).write(to: url, options: .atomic)
    }

    /// Reads a model file; throws with the reason if it has no valid manifest or its weights
    /// do not fit the manifest's architecture exactly.
    public static func read(_ url: URL) throws -> ModelFile {
        try decode(SafeTensors.read(url), name: url.path)
    }

    /// A model from the bytes of a model file (as assembled from xray.models).
    public static func decode(_ bytes: [UInt8], name: String) throws -> ModelFile {
        try decode(SafeTensors.decode(Data(bytes)), name: name)
    }

    /// The bytes of the model file.
    public func encoded() throws -> [UInt8] {
        let json = String(decoding: try JSONEncoder().encode(manifest), as: UTF8.self)
        return [UInt8](try SafeTensors.encode(SafeTensors.File(tensors: network.stateDict(), metadata: [ModelManifest.metadataKey: json])))
    }

    /// A model from a decoded safetensors file. Checks the manifest, that the architecture
    /// takes its input size and that every tensor fits the network exactly; throws
    /// `BadInput` or `EngineError` naming the first problem.
    static func decode(_ file: SafeTensors.File, name: String) throws -> ModelFile {
        let url = URL(fileURLWithPath: name)
        guard let json = file.metadata[ModelManifest.metadataKey] else {
            throw BadInput("\(url.path) has no \(ModelManifest.metadataKey) metadata; bring plain torchvision weights in with `xray model import`")
        }
        let manifest: ModelManifest
        do { manifest = try JSONDecoder().decode(ModelManifest.self, from: Data(json.utf8)) } catch {
            throw BadInput("\(url.path): the manifest is not valid JSON for this version: \(error)")
        }
        if let problem = manifest.problem { throw BadInput("\(url.path): \(problem)") }
        guard let architecture = Architecture(rawValue: manifest.architecture) else {
            throw BadInput("\(url.path): unknown architecture \(manifest.architecture) (known: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if let problem = architecture.inputProblem(height: manifest.input[1], width: manifest.input[2]) {
            throw BadInput("\(url.path): \(problem)")
        }
        // The manifest's checks bound the label and channel counts, so building cannot trap.
        let network = Network(architecture: architecture, labels: manifest.labels.count, inputChannels: manifest.input[0])
        try network.load(file.tensors)
        return ModelFile(manifest: manifest, network: network)
    }
}

/// Now, as ISO 8601 (UTC), as records carry times.
public func isoNow() -> String {
    ISO8601DateFormatter().string(from: Date())
}
