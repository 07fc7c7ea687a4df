/// A DICOM attribute's tag, (group,element).
public struct DicomTag: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let group: UInt16
    public let element: UInt16

    public init(_ group: UInt16, _ element: UInt16) {
        self.group = group
        self.element = element
    }

    init(code: UInt32) { self.init(UInt16(truncatingIfNeeded: code >> 16), UInt16(truncatingIfNeeded: code)) }

    var code: UInt32 { UInt32(group) << 16 | UInt32(element) }

    /// Private attributes (odd groups) carry whatever a vendor chose, names included.
    public var isPrivate: Bool { group % 2 == 1 }

    public var description: String {
        func hex(_ v: UInt16) -> String {
            let digits = String(v, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        }
        return "(\(hex(group)),\(hex(element)))"
    }

    public static func < (a: DicomTag, b: DicomTag) -> Bool { a.code < b.code }
}

extension DicomTag {
    public static let specificCharacterSet = DicomTag(0x0008, 0x0005)
    public static let imageType = DicomTag(0x0008, 0x0008)
    public static let sopClassUID = DicomTag(0x0008, 0x0016)
    public static let sopInstanceUID = DicomTag(0x0008, 0x0018)
    public static let studyDate = DicomTag(0x0008, 0x0020)
    public static let contentDate = DicomTag(0x0008, 0x0023)
    public static let acquisitionDate = DicomTag(0x0008, 0x0022)
    public static let acquisitionDateTime = DicomTag(0x0008, 0x002A)
    public static let studyTime = DicomTag(0x0008, 0x0030)
    public static let acquisitionTime = DicomTag(0x0008, 0x0032)
    public static let contentTime = DicomTag(0x0008, 0x0033)
    public static let accessionNumber = DicomTag(0x0008, 0x0050)
    public static let modality = DicomTag(0x0008, 0x0060)
    public static let institutionName = DicomTag(0x0008, 0x0080)
    public static let referringPhysicianName = DicomTag(0x0008, 0x0090)
    public static let timezoneOffsetFromUTC = DicomTag(0x0008, 0x0201)
    public static let patientName = DicomTag(0x0010, 0x0010)
    public static let patientID = DicomTag(0x0010, 0x0020)
    public static let patientBirthDate = DicomTag(0x0010, 0x0030)
    public static let patientSex = DicomTag(0x0010, 0x0040)
    public static let patientAge = DicomTag(0x0010, 0x1010)
    public static let patientIdentityRemoved = DicomTag(0x0012, 0x0062)
    public static let deidentificationMethod = DicomTag(0x0012, 0x0063)
    public static let bodyPartExamined = DicomTag(0x0018, 0x0015)
    public static let kvp = DicomTag(0x0018, 0x0060)
    public static let imagerPixelSpacing = DicomTag(0x0018, 0x1164)
    public static let viewPosition = DicomTag(0x0018, 0x5101)
    public static let studyInstanceUID = DicomTag(0x0020, 0x000D)
    public static let seriesInstanceUID = DicomTag(0x0020, 0x000E)
    public static let seriesNumber = DicomTag(0x0020, 0x0011)
    public static let instanceNumber = DicomTag(0x0020, 0x0013)
    public static let patientOrientation = DicomTag(0x0020, 0x0020)
    public static let frameOfReferenceUID = DicomTag(0x0020, 0x0052)
    public static let imageLaterality = DicomTag(0x0020, 0x0062)
    public static let numberOfFrames = DicomTag(0x0028, 0x0008)
    public static let rows = DicomTag(0x0028, 0x0010)
    public static let columns = DicomTag(0x0028, 0x0011)
    public static let burnedInAnnotation = DicomTag(0x0028, 0x0301)
    public static let pixelData = DicomTag(0x7FE0, 0x0010)
}
