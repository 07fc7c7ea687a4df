import Engine

/// An ONNX model of a network's weights, as PyTorch's exporter would lay out the parts the
/// importer reads (Conv, BatchNormalization and Gemm nodes with their initializers, in
/// execution order): the seed of the `onnx` fuzz target. Protocol-buffer fields are written
/// by hand; nothing else reads them.
enum ONNXSeed {
    static func model(_ network: Network) -> [UInt8] {
        var nodes: [[UInt8]] = [], initializers: [[UInt8]] = []
        let byName = Dictionary(network.stateDict().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var previous = "input"
        for (index, prefix) in weightPrefixes(network).enumerated() {
            let output = "t\(index)"
            func add(_ suffix: String) -> String? {
                guard let t = byName[prefix + suffix] else { return nil }
                initializers.append(tensor(t))
                return t.name
            }
            if let weight = add(".weight"), byName[prefix + ".running_mean"] == nil {
                let bias = add(".bias")
                let op = (byName[prefix + ".weight"]?.shape.count ?? 0) == 4 ? "Conv" : "Gemm"
                nodes.append(node(op, inputs: [previous, weight] + (bias.map { [$0] } ?? []), output: output,
                                  attributes: op == "Gemm" ? field(5, bytes: field(1, "transB") + field(3, varint: 1) + field(20, varint: 2)) : []))
            } else {
                let inputs = [".weight", ".bias", ".running_mean", ".running_var"].compactMap(add)
                nodes.append(node("BatchNormalization", inputs: [previous] + inputs, output: output, attributes: []))
            }
            previous = output
        }
        return field(7, bytes: nodes.flatMap { field(1, bytes: $0) } + initializers.flatMap { field(5, bytes: $0) })
    }

    /// The state-dict prefixes of the weight-holding layers, in execution order.
    private static func weightPrefixes(_ network: Network) -> [String] {
        var prefixes: [String] = []
        for p in network.parameters {
            let prefix = String(p.name.split(separator: ".").dropLast().joined(separator: "."))
            if prefixes.last != prefix { prefixes.append(prefix) }
        }
        return prefixes
    }

    private static func node(_ op: String, inputs: [String], output: String, attributes: [UInt8]) -> [UInt8] {
        inputs.flatMap { field(1, $0) } + field(2, output) + field(4, op) + attributes
    }

    private static func tensor(_ t: NamedTensor) -> [UInt8] {
        let raw = t.floats.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32($0))) } }
        return t.shape.flatMap { field(1, varint: UInt64($0)) } + field(2, varint: 1) + field(8, t.name) + field(9, bytes: raw)
    }

    private static func varint(_ value: UInt64) -> [UInt8] {
        var v = value, out: [UInt8] = []
        while v > 0x7F { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    private static func field(_ number: Int, varint value: UInt64) -> [UInt8] { varint(UInt64(number) << 3) + varint(value) }
    private static func field(_ number: Int, bytes: [UInt8]) -> [UInt8] { varint(UInt64(number) << 3 | 2) + varint(UInt64(bytes.count)) + bytes }
    private static func field(_ number: Int, _ text: String) -> [UInt8] { field(number, bytes: Array(text.utf8)) }
}
