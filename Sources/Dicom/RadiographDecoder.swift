public import Imaging

/// Any encoded radiograph the pipeline takes — PNG, JPEG or DICOM — to 8-bit grey at the
/// working resolution, under one set of limits.
public struct RadiographDecoder: Sendable {
    let images: ImageDecoder
    let dicom: DicomDecoder

    public init(limits: DecodeLimits = DecodeLimits(), pngReader: PNGReader = .fast) {
        images = ImageDecoder(limits: limits, pngReader: pngReader)
        dicom = DicomDecoder(limits: limits)
    }

    /// Decodes `bytes`: DICOM when they are a Part 10 file or `contentType` says
    /// `application/dicom`, else PNG or JPEG by signature.
    public func decode(_ bytes: [UInt8], contentType: String? = nil) throws -> (image: GrayImage, source: SourceImageInfo) {
        if DicomDecoder.isDicom(bytes, contentType: contentType) {
            let decoded = try dicom.decode(bytes)
            return (decoded.image, decoded.source)
        }
        return try images.decode(bytes)
    }
}
