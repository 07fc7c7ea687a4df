internal import CDeflate

/// The parts of a PNG file that the fast decoder needs: the header fields and the image data
/// (every IDAT chunk's payload, in order, as one zlib stream).
///
/// `parse` accepts only files whose pixels need no colour handling: 8-bit gray, gray + alpha,
/// RGB or RGBA, or 16-bit gray or RGB; not interlaced; with no chunk that changes pixel values
/// in libpng's simplified reader (iCCP, cHRM, sBIT, tRNS, PLTE, a gAMA other than sRGB's, ...;
/// in an 8-bit file an sRGB chunk or gAMA 45455 is what the reader's sRGB output assumes
/// anyway). The critical chunks' CRCs must be right. For anything else it returns nil and
/// libpng decides, so a file either decodes here exactly as libpng decodes it or goes to libpng.
struct PNGChunks {
    var width: Int
    var height: Int
    /// 8 or 16.
    var bitDepth: Int
    /// Samples per pixel: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
    var channels: Int
    /// The concatenated IDAT payloads (a zlib stream).
    var imageData: [UInt8]

    /// Bytes per complete pixel, the distance the Sub, Average and Paeth filters look back.
    var bytesPerPixel: Int { channels * bitDepth / 8 }

    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Ancillary chunks that libpng's simplified reader does not apply to the pixels.
    private static let ignorable: Set<String> = ["tIME", "tEXt", "zTXt", "iTXt", "pHYs"]

    /// The chunks of `bytes`, or nil when the file is not one the fast decoder takes (or is
    /// malformed: libpng then reports why). `maxPixels` is checked before anything is copied.
    static func parse(_ bytes: [UInt8], maxPixels: Int) -> PNGChunks? {
        guard bytes.starts(with: signature) else { return nil }
        var offset = signature.count
        var header: PNGChunks?
        var dataChunks: [Range<Int>] = []
        while true {
            // length (4) + type (4) + data (length) + CRC (4), all inside the file.
            guard let length = readUInt32(bytes, at: offset), length <= 0x7FFF_FFFF,
                  offset <= bytes.count - 12, Int(length) <= bytes.count - 12 - offset else { return nil }
            let typeRange = offset + 4 ..< offset + 8
            let data = offset + 8 ..< offset + 8 + Int(length)
            let type = String(decoding: bytes[typeRange], as: UTF8.self)
            let isCritical = bytes[typeRange.lowerBound] & 0x20 == 0
            if isCritical {
                guard let crc = readUInt32(bytes, at: data.upperBound),
                      crc == crc32(bytes, typeRange.lowerBound ..< data.upperBound) else { return nil }
            }
            offset = data.upperBound + 4
            switch type {
            case "IHDR":
                guard header == nil, offset == signature.count + 25,
                      let parsed = parseHeader(bytes[data], maxPixels: maxPixels) else { return nil }
                header = parsed
            case "IDAT":
                guard header != nil else { return nil }
                if let last = dataChunks.last, last.upperBound + 12 != data.lowerBound { return nil }  // IDATs must be consecutive
                dataChunks.append(data)
            case "IEND":
                guard var result = header, !dataChunks.isEmpty else { return nil }
                var stream = [UInt8]()
                stream.reserveCapacity(dataChunks.reduce(0) { $0 + $1.count })
                for chunk in dataChunks { stream.append(contentsOf: bytes[chunk]) }
                result.imageData = stream
                return result
            case "sRGB":
                // The simplified reader's 8-bit output is sRGB: an 8-bit sRGB file needs no
                // conversion (its 16-bit output is linear, so a 16-bit one would).
                guard header?.bitDepth == 8, data.count == 1 else { return nil }
            case "gAMA":
                // Nor does sRGB's own gamma (1/2.2, stored as 45455); any other would.
                guard header?.bitDepth == 8, data.count == 4, readUInt32(bytes, at: data.lowerBound) == 45455 else { return nil }
            default:
                guard header != nil, ignorable.contains(type) else { return nil }
            }
        }
    }

    /// IHDR: width, height, bit depth, colour type, compression, filter method, interlace.
    private static func parseHeader(_ data: ArraySlice<UInt8>, maxPixels: Int) -> PNGChunks? {
        let bytes = Array(data)
        guard bytes.count == 13, let w = readUInt32(bytes, at: 0), let h = readUInt32(bytes, at: 4),
              w > 0, h > 0, w <= 0x7FFF_FFFF, h <= 0x7FFF_FFFF else { return nil }
        let width = Int(w), height = Int(h)
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxPixels else { return nil }
        let bitDepth = Int(bytes[8]), colourType = bytes[9]
        guard bytes[10] == 0, bytes[11] == 0, bytes[12] == 0 else { return nil }  // deflate, adaptive filters, not interlaced
        let channels: Int
        switch (bitDepth, colourType) {
        case (8, 0), (16, 0): channels = 1
        case (8, 2), (16, 2): channels = 3
        case (8, 4): channels = 2
        case (8, 6): channels = 4
        default: return nil  // palettes, depths below 8, and 16-bit alpha (libpng premultiplies it)
        }
        return PNGChunks(width: width, height: height, bitDepth: bitDepth, channels: channels, imageData: [])
    }

    private static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32? {
        guard offset >= 0, offset <= bytes.count - 4 else { return nil }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
            | UInt32(bytes[offset + 3])
    }

    private static func crc32(_ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return 0 }
            return libdeflate_crc32(0, base + range.lowerBound, range.count)
        }
    }
}
