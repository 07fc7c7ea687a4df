import CDicom
public import Imaging

/// A parsed DICOM object (DCMTK underneath): its top-level elements read and changed as text,
/// written back as a Part 10 file, rendered to 8-bit grey. Owns its C handle; not shared
/// between threads.
public final class DicomObject {
    private let handle: OpaquePointer

    /// Parses a Part 10 file (preamble, "DICM", file meta information) or a bare dataset.
    /// Throws `DicomError` (`unreadable`) for anything DCMTK cannot read.
    public init(bytes: [UInt8]) throws(DicomError) {
        var error = xd_error()
        let parsed = bytes.withUnsafeBufferPointer { xd_parse($0.baseAddress, $0.count, &error) }
        guard let parsed else { throw DicomError(error) }
        handle = parsed
    }

    deinit { xd_free(handle) }

    /// Whether `bytes` look like a Part 10 file: "DICM" after a 128-byte preamble.
    public static func isPart10(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 132 && bytes[128..<132].elementsEqual("DICM".utf8)
    }

    /// The dataset's top-level tags, in order.
    public var tags: [DicomTag] {
        let count = xd_tags(handle, nil, 0)
        var codes = [UInt32](repeating: 0, count: count)
        let written = codes.withUnsafeMutableBufferPointer { xd_tags(handle, $0.baseAddress, $0.count) }
        return codes.prefix(min(count, written)).map { DicomTag(code: $0) }
    }

    /// Whether the top-level element `tag` is a sequence.
    public func isSequence(_ tag: DicomTag) -> Bool { xd_is_sequence(handle, tag.code) == 1 }

    /// The value of a top-level element as text (several values joined by `\`), trimmed of
    /// DICOM's space padding; nil when absent or when the value has no text form.
    public subscript(tag: DicomTag) -> String? {
        let length = xd_string(handle, tag.code, nil, 0)
        guard length >= 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(length) + 1)
        _ = buffer.withUnsafeMutableBufferPointer { xd_string(handle, tag.code, $0.baseAddress, $0.count) }
        let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(text.drop { $0 == " " }.reversed().drop { $0 == " " || $0 == "\0" }.reversed())
    }

    /// Sets (inserting when absent) a top-level element; its VR comes from the DICOM dictionary.
    public func set(_ tag: DicomTag, to value: String) throws(DicomError) {
        var error = xd_error()
        guard xd_set_string(handle, tag.code, value, &error) == 0 else { throw DicomError(error) }
    }

    /// Removes a top-level element; returns whether it was there.
    @discardableResult
    public func remove(_ tag: DicomTag) -> Bool { xd_remove(handle, tag.code) == 1 }

    /// The transfer syntax UID the object was read in ("" when unknown).
    public var transferSyntax: String {
        var buffer = [CChar](repeating: 0, count: 80)
        buffer.withUnsafeMutableBufferPointer { xd_transfer_syntax(handle, $0.baseAddress, $0.count) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The object as a Part 10 file, in the transfer syntax it was read in, with file meta
    /// information made anew from the dataset (so nothing of the sender's meta header remains).
    public func encoded() throws(DicomError) -> [UInt8] {
        var error = xd_error()
        var count = 0
        guard let buffer = xd_write(handle, &count, &error) else { throw DicomError(error) }
        defer { xd_free_buffer(buffer) }
        return Array(UnsafeBufferPointer(start: buffer, count: count))
    }

    /// Renders the single greyscale frame to 8-bit grey, as a viewer shows it: modality LUT or
    /// rescale, then the first VOI LUT, else the first window, else the image's own minimum to
    /// maximum; MONOCHROME1 inverted so that higher is brighter. Refuses objects without pixel
    /// data, multi-frame and colour objects, and more than `maxPixels` pixels before decompressing.
    public func renderGrey8(maxPixels: Int) throws(DicomError) -> (image: GrayImage, info: DicomImageInfo) {
        var error = xd_error()
        var info = xd_image_info()
        guard let pixels = xd_render_grey8(handle, max(0, maxPixels), &info, &error) else { throw DicomError(error) }
        defer { xd_free_buffer(pixels) }
        let width = Int(info.width), height = Int(info.height)
        let image = GrayImage(width: width, height: height,
                              pixels: Array(UnsafeBufferPointer(start: pixels, count: width * height)))
        let voi: DicomImageInfo.Window = switch info.voi {
        case XD_VOI_LUT: .voiLUT
        case XD_WINDOW: .window
        default: .minMax
        }
        return (image, DicomImageInfo(bitsAllocated: Int(info.bits_allocated), bitsStored: Int(info.bits_stored),
                                      signed: info.signed_pixels != 0, monochrome1: info.monochrome1 != 0, window: voi))
    }
}

/// What rendering found in a DICOM image.
public struct DicomImageInfo: Sendable, Equatable {
    /// How stored values became grey levels.
    public enum Window: String, Sendable { case voiLUT = "voi-lut", window, minMax = "min-max" }
    public var bitsAllocated: Int
    public var bitsStored: Int
    public var signed: Bool
    public var monochrome1: Bool
    public var window: Window
}

extension DicomError {
    init(_ error: xd_error) {
        var copy = error
        let message = withUnsafeBytes(of: &copy.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let kind: Kind = switch error.kind {
        case XD_NOT_A_RADIOGRAPH: .notARadiograph
        case XD_TOO_LARGE: .tooLarge
        case XD_CORRUPT_IMAGE: .corruptImage
        case XD_UNWRITABLE: .unwritable
        default: .unreadable
        }
        self.init(kind, message.isEmpty ? "the DICOM library failed without saying why" : message)
    }
}
