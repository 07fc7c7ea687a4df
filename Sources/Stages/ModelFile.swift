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

    /// A freshly initialised model.
    public static func initialized(architecture: Architecture, labels: [String], preprocess: PreprocessSpec,
                                   seed: UInt64) -> ModelFile {
        let network = Network(architecture: architecture, labels: labels.count, inputChannels: preprocess.channels, seed: seed)
        return ModelFile(manifest: ModelManifest(architecture: architecture.rawValue, labels: labels, preprocess: preprocess,
                                                 origin: "init seed \(seed)", createdAt: isoNow()), network: network)
    }

    public func write(to url: URL) throws {
        let json = String(decoding: try JSONEncoder().encode(manifest), as: UTF8.self)
        try SafeTensors.write(SafeTensors.File(tensors: network.stateDict(), metadata: [ModelManifest.metadataKey: json]), to: url)
    }

    /// Reads a model file; throws with the reason if it has no valid manifest or its weights
    /// do not fit the manifest's architecture exactly.
    public static func read(_ url: URL) throws -> ModelFile {
        let file = try SafeTensors.read(url)
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
        let network = Network(architecture: architecture, labels: manifest.labels.count, inputChannels: manifest.input[0])
        try network.load(file.tensors)
        return ModelFile(manifest: manifest, network: network)
    }
}

func isoNow() -> String {
    ISO8601DateFormatter().string(from: Date())
}
