/// Why a DICOM object could not be read, rendered or changed. None is retriable: the same
/// bytes fail the same way.
public struct DicomError: Error, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Not DICOM, or DICOM the library cannot parse (truncated, a length that lies).
        case unreadable = "corrupt-dicom"
        /// A DICOM object that is not one greyscale radiograph: no pixels, several frames, colour.
        case notARadiograph = "not-a-radiograph"
        /// More pixels than the limit.
        case tooLarge = "too-large"
        /// Pixel data that does not decode.
        case corruptImage = "corrupt-image"
        /// An element the de-identification could not write.
        case unwritable = "dicom-write"
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
    /// A short, stable name for the kind of fault, for metrics and the `xray.dlq.reason` header.
    public var reasonCode: String { kind.rawValue }
}
