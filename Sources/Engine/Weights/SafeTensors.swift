import CheckedArithmetic
public import Foundation

/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each tensor name to its dtype, shape and byte range, an optional `__metadata__`
/// object of strings, then the raw little-endian data.
///
/// Reads F32, F16, BF16, F64 (as float32) and I64, I32 (as int64); writes F32 and I64.
public enum SafeTensors {
    /// The largest header this reader accepts (the format's own reference limit).
    static let maxHeaderBytes = 100_000_000

    /// The most dimensions a tensor may have.
    static let maxRank = 8

    public struct File: Sendable {
        public var tensors: [NamedTensor]
        public var metadata: [String: String]
        /// Each tensor's dtype in the file (`F32`, `I64`, ...), by name; empty for a file
        /// built in memory.
        public var dtypes: [String: String] = [:]

        public init(tensors: [NamedTensor], metadata: [String: String] = [:]) {
            self.tensors = tensors; self.metadata = metadata
        }

        /// The tensors by name.
        public var byName: [String: NamedTensor] {
            Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// The file's bytes. Throws only if the header cannot be written as JSON.
    public static func encode(_ file: File) throws -> Data {
        var header: [String: Any] = [:]
        if !file.metadata.isEmpty { header["__metadata__"] = file.metadata }
        var body = Data()
        for t in file.tensors {
            let start = body.count
            switch t.values {
            case .float32(let v): v.withUnsafeBytes { body.append(contentsOf: $0) }
            case .int64(let v): v.withUnsafeBytes { body.append(contentsOf: $0) }
            }
            let dtype = if case .float32 = t.values { "F32" } else { "I64" }
            header[t.name] = ["dtype": dtype, "shape": t.shape, "data_offsets": [start, body.count]] as [String: Any]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(body)
        return out
    }

    public static func decode(_ data: Data) throws -> File {
        guard data.count >= 8 else { throw EngineError.malformed("\(data.count) bytes is too short for safetensors") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(min(maxHeaderBytes, data.count - 8)) else {
            throw EngineError.malformed("safetensors header length \(headerLength) exceeds the file")
        }
        let headerStart = data.startIndex + 8, bodyStart = headerStart + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: data[headerStart..<bodyStart]) as? [String: Any] else {
            throw EngineError.malformed("the safetensors header is not a JSON object")
        }
        var file = File(tensors: [])
        if let metadata = header["__metadata__"] {
            guard let strings = metadata as? [String: String] else {
                throw EngineError.malformed("safetensors __metadata__ must map strings to strings")
            }
            file.metadata = strings
        }
        let bodyLength = data.count - 8 - Int(headerLength)
        for (name, entry) in header where name != "__metadata__" {
            guard let entry = entry as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int],
                  offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= bodyLength,
                  shape.count <= maxRank
            else { throw EngineError.malformed("safetensors entry \(name) is not {dtype, shape, data_offsets} within the file") }
            // Every value must lie in the file, so the product is bounded by its size.
            guard let count = CheckedSize.product(shape, limit: bodyLength) else {
                throw EngineError.malformed("tensor \(name): shape \(shape) is negative or holds more values than the file has bytes")
            }
            let bytes = data[(bodyStart + offsets[0])..<(bodyStart + offsets[1])]
            file.tensors.append(NamedTensor(name: name, shape: shape, values: try values(bytes, dtype: dtype, count: count, name: name)))
            file.dtypes[name] = dtype
        }
        file.tensors.sort { $0.name < $1.name }
        return file
    }

    private static func values(_ bytes: Data, dtype: String, count: Int, name: String) throws -> NamedTensor.Values {
        let width: Int
        switch dtype {
        case "F32", "I32": width = 4
        case "F16", "BF16": width = 2
        case "F64", "I64": width = 8
        default: throw EngineError.unsupported("tensor \(name) has dtype \(dtype); this engine reads F32, F16, BF16, F64, I64, I32")
        }
        guard bytes.count == count * width else {  // count ≤ the file's size: no overflow
            throw EngineError.malformed("tensor \(name): \(bytes.count) bytes for \(count) \(dtype) values")
        }
        return bytes.withUnsafeBytes { raw -> NamedTensor.Values in
            switch dtype {
            case "F32": .float32(LittleEndian.array(raw, as: Float.self))
            case "F64": .float32(LittleEndian.array(raw, as: Double.self).map { Float($0) })
            case "BF16": .float32(LittleEndian.array(raw, as: UInt16.self).map { Float(bitPattern: UInt32($0) << 16) })
            case "F16": .float32(LittleEndian.array(raw, as: UInt16.self).map(halfToFloat))
            case "I64": .int64(LittleEndian.array(raw, as: Int64.self))
            default: .int64(LittleEndian.array(raw, as: Int32.self).map { Int64($0) })
            }
        }
    }

    public static func read(_ url: URL) throws -> File {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw EngineError.malformed("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try decode(data)
    }

    public static func write(_ file: File, to url: URL) throws {
        try encode(file).write(to: url, options: .atomic)
    }
}

/// IEEE 754 half → single precision, including subnormals, infinities and NaN.
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31, exponent = UInt32(h >> 10) & 0x1F, mantissa = UInt32(h) & 0x3FF
    switch exponent {
    case 0:
        let magnitude = Float(mantissa) * 0x1p-24
        return sign != 0 ? -magnitude : magnitude
    case 0x1F:
        return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
    default:
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}
