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
                out.baseAddress!.advanced(by: headerSize).copyMemory(from: src.baseAddress!, byteCount: src.count)
            }
        }
        return bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = ByteReader(bytes, what: "tensor")
        try r.expectMagic("XRTN")
        let version = try r.read(UInt16.self)
        guard version == Self.schemaVersion else { throw WireError.unsupportedVersion("tensor", version) }
        let dtype = try r.read(UInt8.self)
        guard dtype == 1 else { throw WireError.invalid("tensor", "dtype \(dtype) is not float32 (1)") }
        let rank = Int(try r.read(UInt8.self))
        var shape: [Int] = []
        var count = 1
        for _ in 0..<rank {
            let d = Int(try r.read(UInt32.self))
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw WireError.invalid("tensor", "shape overflows") }
            shape.append(d)
            count = product
        }
        guard r.remaining == count * 4 else {
            throw WireError.invalid("tensor", "\(r.remaining) value bytes for shape \(shape)")
        }
        let start = r.position
        let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start...]))
            }
            initialized = count
        }
        self.init(shape: shape, values: values)
    }
}
