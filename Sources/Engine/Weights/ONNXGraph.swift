import CheckedArithmetic
import Foundation

/// The parts of an ONNX model the importer needs: the nodes in order and every constant
/// tensor (initializers and Constant nodes), decoded to float32.
struct ONNXGraph {
    struct Node {
        var opType: String
        var inputs: [String]
        var outputs: [String]
        var floatAttributes: [String: Float] = [:]
        var intAttributes: [String: Int] = [:]
    }

    var nodes: [Node] = []
    var constants: [String: NamedTensor] = [:]

    /// Parses a serialised ModelProto.
    init(_ data: Data) throws {
        let bytes = [UInt8](data)
        var model = ProtobufReader(bytes[...])
        var graph: ArraySlice<UInt8>?
        while let (field, value) = try model.next() {
            if field == 7 { graph = value.slice }
        }
        guard let graph else { throw EngineError.malformed("no graph in the ONNX model (is it an .onnx file?)") }
        var reader = ProtobufReader(graph)
        var aliases: [String: String] = [:]
        while let (field, value) = try reader.next() {
            guard let message = value.slice else { continue }
            switch field {
            case 1:
                let node = try Self.node(message)
                if node.opType == "Constant", let t = try Self.constantValue(message), let out = node.outputs.first {
                    constants[out] = NamedTensor(name: out, shape: t.shape, values: t.values)
                } else if node.opType == "Identity", let from = node.inputs.first, let to = node.outputs.first {
                    aliases[to] = from
                } else {
                    nodes.append(node)
                }
            case 5:
                let t = try Self.tensor(message)
                constants[t.name] = t
            default: continue
            }
        }
        for (alias, original) in aliases { if let t = constants[original] { constants[alias] = t } }
    }

    private static func node(_ bytes: ArraySlice<UInt8>) throws -> Node {
        var reader = ProtobufReader(bytes)
        var node = Node(opType: "", inputs: [], outputs: [])
        while let (field, value) = try reader.next() {
            switch field {
            case 1: node.inputs.append(value.string)
            case 2: node.outputs.append(value.string)
            case 4: node.opType = value.string
            case 5:
                guard let attribute = value.slice else { continue }
                var a = ProtobufReader(attribute)
                var name = "", f: Float?, i: Int?
                while let (af, av) = try a.next() {
                    switch (af, av) {
                    case (1, _): name = av.string
                    case (2, .fixed32(let bits)): f = Float(bitPattern: bits)
                    case (3, .varint(let v)): i = Int(Int64(bitPattern: v))
                    default: continue
                    }
                }
                if let f { node.floatAttributes[name] = f }
                if let i { node.intAttributes[name] = i }
            default: continue
            }
        }
        return node
    }

    private static func constantValue(_ bytes: ArraySlice<UInt8>) throws -> NamedTensor? {
        var reader = ProtobufReader(bytes)
        while let (field, value) = try reader.next() {
            guard field == 5, let attribute = value.slice else { continue }
            var a = ProtobufReader(attribute)
            while let (af, av) = try a.next() {
                if af == 5, let t = av.slice { return try tensor(t) } // AttributeProto.t
            }
        }
        return nil
    }

    /// A TensorProto: dims (1), data_type (2), float_data (4), int64_data (7), name (8),
    /// raw_data (9), double_data (10), data_location (14).
    static func tensor(_ bytes: ArraySlice<UInt8>) throws -> NamedTensor {
        var reader = ProtobufReader(bytes)
        var dims: [Int] = [], dataType: UInt64 = 0, name = ""
        var raw: ArraySlice<UInt8>?, floats: [Float] = [], ints: [Int64] = []
        while let (field, value) = try reader.next() {
            switch field {
            case 1: dims += try ProtobufReader.varints(value).map { Int(Int64(bitPattern: $0)) }
            case 2: dataType = try ProtobufReader.varints(value).first ?? 0
            case 4:
                switch value {
                case .fixed32(let bits): floats.append(Float(bitPattern: bits))
                case .bytes(let b): floats += LittleEndian.array(b, as: Float.self)
                default: break
                }
            case 7: ints += try ProtobufReader.varints(value).map { Int64(bitPattern: $0) }
            case 8: name = value.string
            case 9: raw = value.slice
            case 14:
                if try ProtobufReader.varints(value).first == 1 {
                    throw EngineError.unsupported("tensor \(name) keeps its data in an external file; re-export the ONNX model with the weights inside (under 2 GB)")
                }
            default: continue
            }
        }
        guard dims.count <= SafeTensors.maxRank, let count = CheckedSize.product(dims, limit: bytes.count) else {
            // Every value takes at least one byte of the message, so more values than bytes is a lie.
            throw EngineError.malformed("tensor \(name): dims \(dims) are negative or more than its data holds")
        }
        let width: Int
        switch dataType {
        case 1: width = 4   // FLOAT
        case 10: width = 2  // FLOAT16
        case 7: width = 8   // INT64
        default: return NamedTensor(name: name, shape: [0], values: .float32([]))
        }
        if let raw {
            guard raw.count == count * width else {
                throw EngineError.malformed("tensor \(name): \(raw.count) bytes for \(count) values of \(width) bytes")
            }
            switch dataType {
            case 1: floats = LittleEndian.array(raw, as: Float.self)
            case 10: floats = LittleEndian.array(raw, as: UInt16.self).map(halfToFloat)
            default: ints = LittleEndian.array(raw, as: Int64.self)
            }
        }
        if dataType == 7 {
            guard ints.count == count else { throw EngineError.malformed("tensor \(name): \(ints.count) values for shape \(dims)") }
            return NamedTensor(name: name, shape: dims, values: .int64(ints))
        }
        guard floats.count == count else { throw EngineError.malformed("tensor \(name): \(floats.count) values for shape \(dims)") }
        return NamedTensor(name: name, shape: dims, values: .float32(floats))
    }
}
