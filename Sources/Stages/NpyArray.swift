import CheckedArithmetic
public import Foundation
import Wire

/// A NumPy `.npy` array of little-endian float32 in C order (format versions 1-3), the form
/// `numpy.save` writes for `np.float32` arrays.
public struct NpyArray: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }

    public init(_ data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw BadInput("not a .npy file (no \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerLength: Int, start: Int
        switch major {
        case 1: headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; start = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw BadInput(".npy header truncated") }
            headerLength = (8..<12).reduce(0) { $0 | Int(bytes[$1]) << (8 * ($1 - 8)) }; start = 12
        default: throw BadInput(".npy format version \(major) is not supported")
        }
        guard start + headerLength <= bytes.count else { throw BadInput(".npy header truncated") }
        let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
        guard header.contains("'descr': '<f4'") else {
            throw BadInput(".npy array is not little-endian float32 (header \(header.trimmingCharacters(in: .whitespacesAndNewlines))); save it with .astype(np.float32)")
        }
        guard header.contains("'fortran_order': False") else { throw BadInput(".npy array is in Fortran order; save a C-order array") }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw BadInput(".npy header has no shape")
        }
        let dims = header[open.upperBound..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let shape = try dims.map { d -> Int in
            guard let v = Int(d), v >= 0 else { throw BadInput(".npy shape entry \(d) is not a size") }
            return v
        }
        let dataStart = start + headerLength
        guard shape.count <= 8, let count = CheckedSize.product(shape, limit: (bytes.count - dataStart) / 4),
              bytes.count - dataStart == count * 4 else {
            throw BadInput(".npy data is \(bytes.count - dataStart) bytes, which is not what the shape \(shape) needs")
        }
        values = bytes[dataStart...].withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        self.shape = shape
    }
}
