internal import CDeflate
import CheckedArithmetic

/// Decodes the PNGs that radiographs come as (8-bit gray, not interlaced; see `PNGChunks` for
/// exactly which) in about half libpng's time (NIH 1024² PNGs, one core: 7.0 against 12.7 ms):
/// the image data is inflated in one call to libdeflate, whose decompressor is faster than
/// zlib's streaming one, and the row filters are reversed here.
///
/// It gives the same pixels as `PNGDecoder` (libpng) or nothing: a file outside what
/// `PNGChunks` accepts, or one whose data does not inflate to exactly the rows the header
/// promises, or with a filter type PNG does not define, returns nil, and libpng then decodes it
/// or says what is wrong with it. The tests and the `image` fuzz target compare the two.
enum FastPNGDecoder {
    static func decode(_ bytes: [UInt8], maxPixels: Int) -> (GrayImage, SourceImageInfo)? {
        guard let png = PNGChunks.parse(bytes, maxPixels: maxPixels),
              let rowBytes = CheckedSize.product([png.width, png.bytesPerPixel]),
              let lineBytes = CheckedSize.sum(rowBytes, 1),
              let filteredCount = CheckedSize.product([png.height, lineBytes]),
              let rawCount = CheckedSize.product([png.height, rowBytes]),
              let decompressor = libdeflate_alloc_decompressor() else { return nil }
        defer { libdeflate_free_decompressor(decompressor) }

        // (height, 1 + rowBytes): each row's filter type, then its filtered bytes.
        var filtered = uninitialisedBytes(filteredCount)
        let inflated = png.imageData.withUnsafeBytes { input in
            filtered.withUnsafeMutableBytes { output in
                // No actual-size pointer: anything but exactly filteredCount bytes is a failure.
                libdeflate_zlib_decompress(decompressor, input.baseAddress, input.count,
                                           output.baseAddress, output.count, nil)
            }
        }
        guard inflated == LIBDEFLATE_SUCCESS else { return nil }

        // (height, rowBytes): the samples, 16-bit ones big-endian as in the file.
        var raw = uninitialisedBytes(rawCount)
        let unfiltered = filtered.withUnsafeBufferPointer { source in
            raw.withUnsafeMutableBufferPointer { rows in
                PNGRowFilters.unfilter(source, into: rows, rowBytes: rowBytes, height: png.height,
                                       bytesPerPixel: png.bytesPerPixel)
            }
        }
        guard unfiltered else { return nil }
        let sixteenBit = png.bitDepth == 16
        if sixteenBit { swapBytePairs(&raw) }  // to native order, as libpng hands them over
        let gray = PNGDecoder.toGray(raw, pixels: png.width * png.height, channels: png.channels,
                                     sixteenBit: sixteenBit, bgr: false, alphaFirst: false)
        let info = SourceImageInfo(format: .png, width: png.width, height: png.height, bitDepth: png.bitDepth,
                                   channels: png.channels)
        return (GrayImage(width: png.width, height: png.height, pixels: gray), info)
    }

    /// A buffer that the next step writes completely before anything reads it (libdeflate
    /// fills exactly `count` bytes or fails; unfiltering writes every row or fails), so the
    /// megabytes are not zeroed first. Its bytes are never read after a failure.
    private static func uninitialisedBytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { _, initialised in initialised = count }
    }

    /// Big-endian 16-bit samples to this machine's order (x86-64 and arm64: little-endian).
    private static func swapBytePairs(_ bytes: inout [UInt8]) {
        guard UInt16(littleEndian: 1) == 1 else { return }
        var i = 0
        while i + 1 < bytes.count {
            bytes.swapAt(i, i + 1)
            i += 2
        }
    }
}
