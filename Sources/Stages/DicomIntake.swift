public import Dicom
public import KafkaIO
import Wire

/// The DICOM edge's one rule, shared by `xray gateway` and `xray publish`: accept only frontal
/// chest radiographs, de-identify before anything leaves the process, and publish the
/// de-identified object to xray.raw keyed by its pseudonymised SOP instance UID.
public struct DicomIntake: Sendable {
    public var topic: String
    public var acceptance: DicomAcceptance
    public var deidentifier: Deidentifier
    /// The largest object accepted, in bytes (the decoder's limit, so nothing is published that
    /// the decoder would refuse for size).
    public var maxBytes: Int
    /// The site named in each record's xray.site header (nil: none).
    public var site: String?

    public init(topic: String, acceptance: DicomAcceptance, deidentifier: Deidentifier, maxBytes: Int = 32 << 20) {
        self.topic = topic
        self.acceptance = acceptance
        self.deidentifier = deidentifier
        self.maxBytes = maxBytes
    }

    /// What to do with one received object.
    public enum Outcome: Sendable {
        /// Publish this record; `deidentification` says what was replaced (for the site's map).
        case publish(OutgoingRecord, deidentification: Deidentification)
        /// A valid object this gateway does not triage (a CT, a lateral view): acknowledged, counted.
        case skip(DicomAcceptance.Skip)
        /// Not readable, or not writable after de-identification: the sender is told it failed.
        /// Nothing of it is published: an object that cannot be de-identified must not leave.
        case refuse(code: String, reason: String)
    }

    /// Filters and de-identifies `bytes`; `labels` and `source` as the sender or the replay
    /// knows them; `now` when the object says nothing of its acquisition time.
    public func prepare(_ bytes: [UInt8], source: String, labels: [String]? = nil, now: Int64 = epochMilliseconds()) -> Outcome {
        guard bytes.count <= maxBytes else {
            return .refuse(code: "too-large", reason: "DICOM object of \(bytes.count) bytes exceeds the \(maxBytes)-byte limit")
        }
        do {
            let object = try DicomObject(bytes: bytes)
            let info = DicomStudyInfo(object)
            if let skip = acceptance.refusal(info) { return .skip(skip) }
            let deidentification = try deidentifier.deidentify(object)
            let value = try object.encoded()
            let id = deidentification.instance ?? deidentifier.pseudonyms.uid("no-sop-instance:\(deidentification.patient):\(now)")
            var metadata = ImageMetadata(imageID: id, source: source, site: site, acquiredAt: info.acquiredAt ?? now, labels: labels,
                                         patientID: deidentification.patient, traceparent: ModalityPublisher.newTraceparent())
            metadata.imageID = id
            var headers = metadata.headerFields.map { KafkaHeader($0.name, $0.value) }
            headers.append(KafkaHeader(HeaderName.contentType, ContentType.dicom))
            headers.append(KafkaHeader(HeaderName.receivedAt, String(now)))
            if let study = deidentification.study { headers.append(KafkaHeader(HeaderName.study, study)) }
            if let series = deidentification.series { headers.append(KafkaHeader(HeaderName.series, series)) }
            if let view = info.viewPosition, !view.isEmpty { headers.append(KafkaHeader(HeaderName.viewPosition, view)) }
            return .publish(OutgoingRecord(topic: topic, key: id, value: value, headers: headers), deidentification: deidentification)
        } catch {
            return .refuse(code: error.reasonCode, reason: error.description)
        }
    }
}
