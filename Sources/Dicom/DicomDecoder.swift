public import Imaging

/// Turns a DICOM chest radiograph into 8-bit grey at the working resolution, under the same
/// limits as PNG and JPEG: encoded size, pixel count (checked before decompressing), aspect
/// ratio, longer side. Transfer syntaxes: implicit and explicit VR little endian, explicit big
/// endian, deflated, JPEG baseline, extended and lossless, JPEG-LS, JPEG 2000 and RLE.
public struct DicomDecoder: Sendable {
    public var limits: DecodeLimits

    public init(limits: DecodeLimits = DecodeLimits()) { self.limits = limits }

    /// Whether `bytes` should be read as DICOM: a Part 10 file, or anything sent as
    /// `application/dicom` (old files without the preamble and "DICM" marker among them).
    public static func isDicom(_ bytes: [UInt8], contentType: String?) -> Bool {
        DicomObject.isPart10(bytes) || contentType == "application/dicom"
    }

    /// Decodes one DICOM object. Throws `ImagingError` for size and proportions, `DicomError`
    /// for objects that are not one greyscale radiograph or do not decode.
    public func decode(_ bytes: [UInt8]) throws -> (image: GrayImage, source: SourceImageInfo, dicom: DicomImageInfo) {
        guard !bytes.isEmpty else { throw ImagingError.empty }
        guard bytes.count <= limits.maxEncodedBytes else {
            throw ImagingError.encodedTooLarge(bytes: bytes.count, limit: limits.maxEncodedBytes)
        }
        let object = try DicomObject(bytes: bytes)
        let (image, info) = try object.renderGrey8(maxPixels: limits.maxPixels)
        let fitter = ImageDecoder(limits: limits)
        try fitter.checkProportions(image)
        let source = SourceImageInfo(format: .dicom, width: image.width, height: image.height,
                                     bitDepth: info.bitsStored, channels: 1)
        return (fitter.fitWithin(image, maxSide: limits.maxSide), source, info)
    }
}
