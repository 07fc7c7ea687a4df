/// The names of the record headers that travel with an image from stage to stage
/// (documented in Topics/README.md).
public enum HeaderName {
    /// The image's id; also the record key on image topics.
    public static let imageID = "xray.image-id"
    /// Who sent the image: a modality, gateway or dataset replay.
    public static let source = "xray.source"
    /// The site (hospital, department) the image comes from: what the evaluator measures and
    /// gates per site, and what picks a site's triage thresholds. Letters, digits, `_`, `-`,
    /// at most 64 characters (`ImageMetadata.validSite`); otherwise the image has no site.
    public static let site = "xray.site"
    /// When the image was acquired, milliseconds since the Unix epoch (decimal text).
    public static let acquiredAt = "xray.acquired-at"
    /// Positive findings, comma-separated; empty means labelled with no finding; absent means unlabelled.
    public static let labels = "xray.labels"
    /// The patient, for patient-wise splits.
    public static let patientID = "xray.patient-id"
    /// The MIME type of the value (`image/png`, `image/jpeg`, `application/vnd.xray.decoded`...).
    public static let contentType = "content-type"
    /// The schema version of the value's format.
    public static let schema = "xray.schema"
    /// W3C trace context, carried unchanged from the modality to the last stage.
    public static let traceparent = "traceparent"
    /// The study and series an image belongs to (pseudonymised UIDs for DICOM from the gateway).
    public static let study = "xray.study"
    public static let series = "xray.series"
    /// The view position (PA, AP...) when the sender says it.
    public static let viewPosition = "xray.view-position"
    /// When the DICOM gateway (or `xray publish` of a DICOM file) received the object,
    /// milliseconds since the epoch: where the pipeline's latency starts for DICOM.
    public static let receivedAt = "xray.received-at"
    /// When the decoder finished, milliseconds since the epoch.
    public static let decodedAt = "xray.decoded-at"
    /// When the preprocessor finished, milliseconds since the epoch.
    public static let preprocessedAt = "xray.preprocessed-at"

    /// Dead-letter headers: which stage refused the record, why, and where it came from.
    public enum DeadLetter {
        public static let stage = "xray.dlq.stage"
        public static let error = "xray.dlq.error"
        /// A short, stable code of the kind of fault (`malformed`, `non-finite`, `too-large`...).
        public static let reason = "xray.dlq.reason"
        public static let topic = "xray.dlq.topic"
        public static let partition = "xray.dlq.partition"
        public static let offset = "xray.dlq.offset"
        public static let at = "xray.dlq.at"
        /// The size of the original value; present when the value was cut to fit the topic.
        public static let originalSize = "xray.dlq.original-size"
    }
}

/// Content types of the values on image topics.
public enum ContentType {
    public static let png = "image/png"
    public static let jpeg = "image/jpeg"
    public static let dicom = "application/dicom"
    public static let decodedImage = "application/vnd.xray.decoded-image"
    public static let tensor = "application/vnd.xray.tensor"
    public static let json = "application/json"

    /// Guesses the content type of an encoded image from its first bytes.
    public static func sniff(_ bytes: [UInt8]) -> String? {
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return png }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return jpeg }
        if bytes.count >= 132, bytes[128..<132].elementsEqual("DICM".utf8) { return dicom }
        return nil
    }
}
