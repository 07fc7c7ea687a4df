/// Appends little-endian fields to a byte array.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func append(_ ascii: StaticString) {
        ascii.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }
    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}

/// Reads little-endian fields from a byte array, throwing `WireError.truncated` past its end.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var position = 0
    let what: String

    init(_ bytes: [UInt8], what: String) {
        self.bytes = bytes
        self.what = what
    }

    var remaining: Int { bytes.count - position }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw WireError.truncated(what, needed: position + size, got: bytes.count) }
        var value: T = 0
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: bytes[position..<position + size]) }
        position += size
        return T(littleEndian: value)
    }

    mutating func expectMagic(_ magic: StaticString) throws {
        let expected = magic.withUTF8Buffer { Array($0) }
        guard remaining >= expected.count, Array(bytes[position..<position + expected.count]) == expected else {
            throw WireError.badMagic(what, expected: "\(magic)")
        }
        position += expected.count
    }
}

/// A record whose bytes do not follow its documented format (see Topics/).
public enum WireError: Error, Equatable, CustomStringConvertible {
    case truncated(String, needed: Int, got: Int)
    case badMagic(String, expected: String)
    case unsupportedVersion(String, UInt16)
    case invalid(String, String)
    /// A value that must be a finite number is NaN or infinite (at `index` of its values).
    case nonFinite(String, index: Int)
    /// A size or count in the record is past what the format allows.
    case tooLarge(String, String)

    public var description: String {
        switch self {
        case .truncated(let what, let needed, let got):
            "\(what) record is truncated: needs \(needed) bytes, has \(got)"
        case .badMagic(let what, let expected):
            "not a \(what) record (expected magic \"\(expected)\"); was it produced to the wrong topic?"
        case .unsupportedVersion(let what, let v):
            "\(what) record has schema version \(v), which this build does not read; upgrade xray"
        case .invalid(let what, let reason):
            "invalid \(what) record: \(reason)"
        case .nonFinite(let what, let index):
            "\(what) record holds a non-finite number (NaN or infinity) at value \(index); nothing downstream can use it"
        case .tooLarge(let what, let reason):
            "\(what) record is too large: \(reason)"
        }
    }

    /// A short, stable name for the kind of fault, for metrics and the `xray.dlq.reason` header.
    public var reasonCode: String {
        switch self {
        case .truncated: "truncated"
        case .badMagic: "wrong-format"
        case .unsupportedVersion: "unsupported-version"
        case .invalid: "malformed"
        case .nonFinite: "non-finite"
        case .tooLarge: "too-large"
        }
    }
}

/// float32 values as little-endian bytes (the raw values of gradient, model-shard and
/// checkpoint records).
public enum FloatBytes {
    public static func encode(_ values: some Collection<Float>) -> [UInt8] {
        precondition(UInt16(1).littleEndian == 1, "big-endian hosts are not supported")
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { out in
            let floats = out.bindMemory(to: Float.self)
            for (i, v) in values.enumerated() { floats[i] = v }
        }
        return bytes
    }

    /// Throws when the byte count is not a multiple of 4.
    public static func decode(_ bytes: [UInt8], what: String) throws -> [Float] {
        guard bytes.count % 4 == 0 else { throw WireError.invalid(what, "\(bytes.count) bytes is not a whole number of float32 values") }
        var values = [Float](repeating: 0, count: bytes.count / 4)
        bytes.withUnsafeBytes { src in values.withUnsafeMutableBytes { $0.copyMemory(from: src) } }
        return values
    }
}
