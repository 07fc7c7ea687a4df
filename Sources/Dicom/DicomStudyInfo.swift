import Foundation

/// What a gateway needs to know of an object before de-identifying it: what it is (for the
/// acceptance filter) and when and of whom it was taken (for the headers and pseudonyms).
public struct DicomStudyInfo: Sendable, Equatable {
    public var sopClassUID: String?
    public var modality: String?
    public var bodyPart: String?
    public var viewPosition: String?
    /// BurnedInAnnotation (0028,0301): "YES" when text such as the name is in the pixels.
    public var burnedInAnnotation: String?
    public var hasPixelData: Bool
    public var patientID: String?
    public var studyUID: String?
    public var seriesUID: String?
    public var instanceUID: String?
    /// Acquisition date and time (else content, else study), milliseconds since the epoch.
    public var acquiredAt: Int64?

    public init(_ object: DicomObject) {
        sopClassUID = object[.sopClassUID]
        modality = object[.modality]?.uppercased()
        bodyPart = object[.bodyPartExamined]?.uppercased()
        viewPosition = object[.viewPosition]?.uppercased()
        burnedInAnnotation = object[.burnedInAnnotation]?.uppercased()
        hasPixelData = object.tags.contains(.pixelData)
        patientID = object[.patientID]
        studyUID = object[.studyInstanceUID]
        seriesUID = object[.seriesInstanceUID]
        instanceUID = object[.sopInstanceUID]
        let offset = object[.timezoneOffsetFromUTC]
        if let dateTime = object[.acquisitionDateTime], let ms = Self.epochMilliseconds(dateTime: dateTime, offset: offset) {
            acquiredAt = ms
        } else {
            acquiredAt = [(DicomTag.acquisitionDate, DicomTag.acquisitionTime), (.contentDate, .contentTime), (.studyDate, .studyTime)]
                .lazy.compactMap { date, time in
                    object[date].flatMap { Self.epochMilliseconds(dateTime: $0 + (object[time] ?? ""), offset: offset) }
                }.first
        }
    }

    /// A DICOM DT value (YYYYMMDDHHMMSS.FFFFFF, the time optional, an offset "&ZZXX" optional),
    /// read as UTC unless it or TimezoneOffsetFromUTC gives an offset; nil when malformed.
    static func epochMilliseconds(dateTime text: String, offset fallback: String?) -> Int64? {
        var value = Substring(text)
        var offset = fallback.map { Substring($0) }
        if let sign = value.lastIndex(where: { $0 == "+" || $0 == "-" }), value.distance(from: sign, to: value.endIndex) == 5 {
            offset = value[sign...]
            value = value[..<sign]
        }
        let parts = value.split(separator: ".", maxSplits: 1)
        guard let whole = parts.first, whole.count >= 8, whole.count % 2 == 0, whole.count <= 14,
              whole.allSatisfy(\.isASCII), whole.allSatisfy(\.isNumber) else { return nil }
        let digits = Array(whole)
        func number(_ at: Int, _ count: Int) -> Int? { at + count <= digits.count ? Int(String(digits[at..<(at + count)])) : nil }
        var components = DateComponents()
        components.year = number(0, 4)
        components.month = number(4, 2)
        components.day = number(6, 2)
        components.hour = number(8, 2) ?? 0
        components.minute = number(10, 2) ?? 0
        components.second = number(12, 2) ?? 0
        guard let month = components.month, (1...12).contains(month), let day = components.day, (1...31).contains(day),
              (0...23).contains(components.hour ?? 0), (0...59).contains(components.minute ?? 0), (0...60).contains(components.second ?? 0)
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        guard let date = calendar.date(from: components) else { return nil }
        var ms = Int64((date.timeIntervalSince1970 * 1000).rounded())
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let fraction = Double("0." + String(parts[1].prefix(6)))
            else { return nil }
            ms += Int64((fraction * 1000).rounded())
        }
        if let offset, offset.count == 5, let hours = Int(offset.dropFirst().prefix(2)), let minutes = Int(offset.suffix(2)) {
            let shift = Int64(hours * 60 + minutes) * 60_000
            ms += offset.first == "-" ? shift : -shift
        }
        return ms
    }
}
