import CZlib

/// CRC-32 (IEEE 802.3, zlib's) of a byte buffer, as 8 lower-case hex digits.
public func crc32Hex(_ bytes: some Collection<UInt8>) -> String {
    let value = Array(bytes).withUnsafeBufferPointer { buffer -> UInt in
        crc32(0, buffer.baseAddress, UInt32(buffer.count))
    }
    let hex = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 8 - hex.count)) + hex
}

/// `bytes` cut into pieces of at most `size` bytes (one empty piece for no bytes).
public func chunked(_ bytes: [UInt8], size: Int) -> [[UInt8]] {
    guard !bytes.isEmpty else { return [[]] }
    return stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min(bytes.count, $0 + size)]) }
}

/// The pieces 0..<count joined in order, or nil when any is missing: the inverse of `chunked`.
public func joined(_ pieces: [Int: [UInt8]], count: Int) -> [UInt8]? {
    guard pieces.count == count else { return nil }
    var joined: [UInt8] = []
    for index in 0..<count {
        guard let piece = pieces[index] else { return nil }
        joined += piece
    }
    return joined
}
