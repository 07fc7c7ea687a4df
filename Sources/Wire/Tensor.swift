import CheckedArithmetic
/// A float32 tensor: the value of `xray.tensors` (see Topics/xray.tensors.md).
///
/// Layout (little-endian), schema version 1:
/// ```
/// 0   4  magic "XRTN"
/// 4   2  schema version (1)
/// 6   1  dtype (1 = float32)
/// 7   1  rank R
/// 8   4*R dimensions, outermost first (for an image: C, H, W)
/// 8+4R   product(dims) float32 values, row-major
/// ```
public struct Tensor: Sendable, Equatable {
    public static let schemaVersion: UInt16 = 1

    /// Dimensions, outermost first: (C, H, W) for a preprocessed image.
    public var shape: [Int]
    /// Values, row-major.
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "values must match the shape")
        self.shape = shape
        self.values = values
    }

    public func encoded() -> [UInt8] {
        let headerSize = 8 + 4 * shape.count
        var bytes = [UInt8](repeating: 0, count: headerSize + 4 * values.count)
        var w = ByteWriter(capacity: headerSize)
        w.append("XRTN")
        w.append(Self.schemaVersion)
        w.append(UInt8(1))
        w.append(UInt8(shape.count))
        for d in shape { w.append(UInt32(d)) }
        bytes.replaceSubrange(0..<headerSize, with: w.bytes)
        bytes.withUnsafeMutableBytes { out in
            values.withUnsafeBytes { src in
                // float32 bit patterns, little-endian (the host order on every supported platform)
                precondition(UInt16(1).littleEndian == 1, "big-endian hosts are not supported")
                UnsafeMutableRawBufferPointer(rebasing: out[headerSize...]).copyMemory(from: src)
            }
        }
        return bytes
    }

    /// Reads a tensor record. Throws `WireError` for a wrong magic or version, a dtype other
    /// than float32, a rank past `maxRank`, dimensions whose product passes `maxValues` or
    /// does not match the bytes that follow, and any value that is NaN or infinite.
    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes, what: "tensor")
        try r.expectMagic("XRTN")
        let version = try r.read(UInt16.self)
        guard version == Self.schemaVersion else { throw WireError.unsupportedVersion("tensor", version) }
        let dtype = try r.read(UInt8.self)
        guard dtype == 1 else { throw WireError.invalid("tensor", "dtype \(dtype) is not float32 (1)") }
        let rank = Int(try r.read(UInt8.self))
        guard rank <= Self.maxRank else { throw WireError.tooLarge("tensor", "rank \(rank) is above \(Self.maxRank)") }
        var shape: [Int] = []
        for _ in 0..<rank { shape.append(Int(try r.read(UInt32.self))) }
        guard let count = CheckedSize.product(shape, limit: Self.maxValues) else {
            throw WireError.tooLarge("tensor", "shape \(shape) holds more than \(Self.maxValues) values")
        }
        guard r.remaining == count * 4 else {
            throw WireError.invalid("tensor", "\(r.remaining) value bytes for shape \(shape), which needs \(count * 4)")
        }
        let start = r.position
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start...]))
            }
            initialized = count
        }
        if let index = CheckedSize.firstNonFinite(values) { throw WireError.nonFinite("tensor", index: index) }
        self.init(shape: shape, values: values)
    }

    /// The most dimensions a tensor record may have.
    public static let maxRank = 8
    /// The most values a tensor record may hold: what fits the largest record of xray.tensors.
    public static let maxValues = TopicCatalog.tensors.maxRecordBytes / 4
}
