/// De-identification after DICOM PS3.15 Annex E's Basic Application Level Confidentiality
/// Profile, with its Retain UIDs option as pseudonyms: an allow-list rather than a remove-list,
/// so that what the profile does not name (private tags, free text, overlays, any sequence a
/// vendor added) goes too.
///
/// What stays: the image itself (every element of group 0028: pixel module, modality and VOI
/// LUTs, windows), Pixel Data, the character set, the SOP class, modality, image type, body part,
/// view position, laterality and orientation, series and instance numbers, pixel spacings and
/// exposure factors. What is replaced: the study, series, instance and frame-of-reference UIDs
/// (by keyed pseudonyms in 2.25), the patient ID and name (by the patient pseudonym). What is
/// added: Patient Identity Removed = YES and the method. Everything else is removed: names,
/// IDs, birth date, addresses, accession number, institution, physicians, every date and time,
/// descriptions and comments. The file meta information is written anew.
///
/// Not removed: text burned into the pixels (`DicomAcceptance` refuses images that say they
/// have some), and identifiers a device wrote into the pixel data or a retained element against
/// the standard.
public struct Deidentifier: Sendable {
    public var pseudonyms: Pseudonymiser

    public init(pseudonyms: Pseudonymiser) { self.pseudonyms = pseudonyms }

    /// Elements kept as they are (beside all of group 0028 and Pixel Data).
    public static let retained: Set<DicomTag> = [
        .specificCharacterSet, .imageType, .sopClassUID, .modality, .bodyPartExamined, .viewPosition,
        .imageLaterality, .patientOrientation, .seriesNumber, .instanceNumber, .imagerPixelSpacing, .kvp,
        DicomTag(0x0018, 0x1150), DicomTag(0x0018, 0x1152), DicomTag(0x0018, 0x1153),  // exposure time, exposure (mAs, µAs)
        DicomTag(0x0018, 0x1110), DicomTag(0x0018, 0x1111),  // distance source to detector, to patient
        DicomTag(0x0008, 0x0068),  // presentation intent type
        DicomTag(0x0020, 0x0060),  // laterality
    ]

    /// UIDs replaced by keyed pseudonyms.
    public static let pseudonymisedUIDs: [DicomTag] = [.studyInstanceUID, .seriesInstanceUID, .sopInstanceUID, .frameOfReferenceUID]

    /// The method written into DeidentificationMethod (0012,0063).
    public static let method = "XRayStream: PS3.15 E.1 basic profile (allow-list), retain UIDs option as HMAC-SHA-256 pseudonyms"

    /// De-identifies `object` in place; returns the pseudonyms it gave and the originals they
    /// stand for (for a re-identification map kept at the site, never on a topic).
    public func deidentify(_ object: DicomObject) throws(DicomError) -> Deidentification {
        var mapping: [String: String] = [:]
        var result = Deidentification()
        let originalPatient = object[.patientID].flatMap { $0.isEmpty ? nil : $0 }
        for tag in object.tags where !keeps(tag) {
            object.remove(tag)
            result.removed += 1
        }
        for tag in Self.pseudonymisedUIDs {
            guard let original = object[tag], !original.isEmpty else { continue }
            let pseudonym = pseudonyms.uid(original)
            try object.set(tag, to: pseudonym)
            mapping[pseudonym] = original
            switch tag {
            case .studyInstanceUID: result.study = pseudonym
            case .seriesInstanceUID: result.series = pseudonym
            case .sopInstanceUID: result.instance = pseudonym
            default: break
            }
        }
        let patient = originalPatient.map(pseudonyms.patient) ?? "ANON-UNKNOWN"
        if let originalPatient { mapping[patient] = originalPatient }
        try object.set(.patientID, to: patient)
        try object.set(.patientName, to: patient)
        try object.set(.patientIdentityRemoved, to: "YES")
        try object.set(.deidentificationMethod, to: Self.method)
        result.patient = patient
        result.originals = mapping
        return result
    }

    func keeps(_ tag: DicomTag) -> Bool {
        if tag.isPrivate { return false }
        if tag.group == 0x0028 || tag == .pixelData { return true }
        return Self.retained.contains(tag) || Self.pseudonymisedUIDs.contains(tag)
    }
}

/// What de-identifying one object gave.
public struct Deidentification: Sendable, Equatable {
    public var patient = ""
    public var study: String?
    public var series: String?
    public var instance: String?
    /// Elements removed.
    public var removed = 0
    /// Pseudonym → original, for the site's re-identification map.
    public var originals: [String: String] = [:]
}
