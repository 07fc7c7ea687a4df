import Foundation

/// Copies little-endian numbers out of a byte buffer (weight files are little-endian, as is
/// every platform this engine runs on).
enum LittleEndian {
    static func array<T: BitwiseCopyable>(_ bytes: UnsafeRawBufferPointer, as: T.Type) -> [T] {
        precondition(1.littleEndian == 1, "big-endian hosts are not supported")
        let count = bytes.count / MemoryLayout<T>.size
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { memcpy(buffer.baseAddress!, bytes.baseAddress!, count * MemoryLayout<T>.size) }
            initialized = count
        }
    }

    static func array<T: BitwiseCopyable>(_ bytes: ArraySlice<UInt8>, as type: T.Type) -> [T] {
        bytes.withUnsafeBytes { array($0, as: type) }
    }
}
