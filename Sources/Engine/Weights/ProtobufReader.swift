/// A minimal reader of the protocol-buffers wire format: enough to walk the messages of an
/// ONNX file without generated code. Fields are visited in file order.
struct ProtobufReader {
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes(ArraySlice<UInt8>)
    }

    private let bytes: ArraySlice<UInt8>
    private var position: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    /// The next field, or nil at the end of the message.
    mutating func next() throws -> (field: Int, value: Value)? {
        guard position < bytes.endIndex else { return nil }
        let key = try varint()
        let field = Int(key >> 3)
        switch key & 7 {
        case 0: return (field, .varint(try varint()))
        case 1: return (field, .fixed64(UInt64(littleEndianBytes: try take(8))))
        case 5: return (field, .fixed32(UInt32(truncatingIfNeeded: UInt64(littleEndianBytes: try take(4)))))
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.endIndex - position) else { throw EngineError.malformed("protobuf field \(field) runs past the end") }
            return (field, .bytes(try take(Int(length))))
        default:
            throw EngineError.malformed("protobuf wire type \(key & 7) (groups are not used by ONNX)")
        }
    }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count <= bytes.endIndex - position else { throw EngineError.malformed("protobuf message truncated") }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    private mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard position < bytes.endIndex, shift < 64 else { throw EngineError.malformed("bad protobuf varint") }
            let byte = bytes[position]
            position += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Packed repeated varints (or a single one).
    static func varints(_ value: Value) throws -> [UInt64] {
        switch value {
        case .varint(let v): return [v]
        case .bytes(let b):
            var reader = ProtobufReader(b), out: [UInt64] = []
            while reader.position < b.endIndex { out.append(try reader.varint()) }
            return out
        default: throw EngineError.malformed("expected a varint field")
        }
    }
}

extension UInt64 {
    init(littleEndianBytes bytes: ArraySlice<UInt8>) {
        var v: UInt64 = 0
        for (i, b) in bytes.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        self = v
    }
}

extension ProtobufReader.Value {
    var string: String {
        if case .bytes(let b) = self { return String(decoding: b, as: UTF8.self) }
        return ""
    }
    var slice: ArraySlice<UInt8>? {
        if case .bytes(let b) = self { return b }
        return nil
    }
}
